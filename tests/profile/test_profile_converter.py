"""The float-to-integer converter on what skl2onnx and torch.onnx really emit."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from onnx import helper
from profile_helpers import ort_session

from oracle.errors import ProfileError
from oracle.profile.compiler import compile_onnx
from oracle.profile.converter import convert_onnx, convert_sklearn
from oracle.profile.datasets import Split, load_split
from oracle.profile.float_graphs import torch_style_mlp
from oracle.profile.float_network import extract_network
from oracle.profile.quantizer import Quantizer
from oracle.profile.reference import run


@pytest.fixture(autouse=True)
def _quiet_sklearn() -> None:
    warnings.filterwarnings("ignore", module="sklearn")


@pytest.fixture(scope="module")
def cancer() -> Split:
    return load_split("breast_cancer")


@pytest.fixture(scope="module")
def wine() -> Split:
    return load_split("wine")


def _mlp(split: Split, hidden: tuple[int, ...] = (16,), scaled: bool = True) -> object:
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    mlp = MLPClassifier(hidden_layer_sizes=hidden, max_iter=400, random_state=0)
    est = make_pipeline(StandardScaler(), mlp) if scaled else mlp
    return est.fit(split.x_train, split.y_train)


def _check(model: onnx.ModelProto, quantizer: Quantizer, split: Split) -> None:
    """The integer model compiles, and onnxruntime equals the reference on every held-out sample."""
    program = compile_onnx(model, quantizer.width, 1)
    session = ort_session(model)
    q = quantizer.quantize(split.x_test)
    for row in q:
        x = row.reshape(quantizer.shape)
        assert np.array_equal(session.run(None, {"input": x})[0], run(program, x))


def test_logistic_regression_binary_from_skl2onnx(cancer: Split) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(
        cancer.x_train, cancer.y_train
    )
    float_model, (model, quantizer, report) = convert_sklearn(
        est, cancer.x_train, cancer.y_train, cancer.x_test, cancer.y_test, input_width=2
    )
    assert {n.op_type for n in float_model.graph.node} >= {"Scaler", "LinearClassifier", "ZipMap"}
    assert report.int_accuracy >= report.float_accuracy - 0.01
    assert report.weight_width == 1
    assert [n.op_type for n in model.graph.node] == ["MatMul", "Add", "ArgMax"]
    _check(model, quantizer, cancer)


def test_logistic_regression_multiclass_without_scaler() -> None:
    from sklearn.linear_model import LogisticRegression

    iris = load_split("iris")
    est = LogisticRegression(max_iter=1000).fit(iris.x_train, iris.y_train)
    _, (model, quantizer, report) = convert_sklearn(est, iris.x_train, iris.y_train, iris.x_test, iris.y_test)
    assert report.int_accuracy >= report.float_accuracy - 0.01
    _check(model, quantizer, iris)


def test_mlp_multiclass_from_skl2onnx(wine: Split) -> None:
    _, (model, quantizer, report) = convert_sklearn(
        _mlp(wine), wine.x_train, wine.y_train, wine.x_test, wine.y_test
    )
    assert report.int_accuracy >= report.float_accuracy - 0.01
    assert "Max" in [n.op_type for n in model.graph.node]  # ReLU as Max(x, 0)
    _check(model, quantizer, wine)


def test_mlp_binary_sigmoid_output_from_skl2onnx(cancer: Split) -> None:
    float_model, (model, quantizer, report) = convert_sklearn(
        _mlp(cancer), cancer.x_train, cancer.y_train, cancer.x_test, cancer.y_test
    )
    assert "Sigmoid" in [n.op_type for n in float_model.graph.node]
    assert report.agreement >= 0.98
    assert report.int_accuracy >= report.float_accuracy - 0.01
    _check(model, quantizer, cancer)


@pytest.mark.parametrize("use_matmul", [False, True])
def test_pytorch_style_graph_with_gemm_or_matmul(wine: Split, use_matmul: bool) -> None:
    mlp = _mlp(wine, hidden=(12, 8), scaled=False)
    float_model = torch_style_mlp(mlp.coefs_, mlp.intercepts_, "Softmax", use_matmul=use_matmul)  # type: ignore[attr-defined]
    model, quantizer, report = convert_onnx(float_model, wine.x_train, wine.y_train, wine.x_test, wine.y_test)
    assert report.agreement >= 0.97
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("MatMul") == 3 and "Gemm" not in ops and "Softmax" not in ops
    assert [i.type.tensor_type.elem_type for i in model.graph.output] == [onnx.TensorProto.INT64]
    _check(model, quantizer, wine)


def test_pytorch_style_single_logit_sigmoid(cancer: Split) -> None:
    mlp = _mlp(cancer, hidden=(8,), scaled=False)
    assert mlp.coefs_[-1].shape[1] == 1  # type: ignore[attr-defined]
    float_model = torch_style_mlp(mlp.coefs_, mlp.intercepts_, "Sigmoid")  # type: ignore[attr-defined]
    net = extract_network(float_model)
    assert net.binary_single_logit and net.layers[-1].weight.shape[1] == 2
    model, quantizer, report = convert_onnx(
        float_model, cancer.x_train, cancer.y_train, cancer.x_test, cancer.y_test, input_width=2
    )
    assert report.agreement >= 0.98
    _check(model, quantizer, cancer)


def test_identity_quantizer_and_forced_weight_width(wine: Split) -> None:
    mlp = _mlp(wine, hidden=(8,), scaled=False)
    float_model = torch_style_mlp(mlp.coefs_, mlp.intercepts_, None)  # type: ignore[attr-defined]
    q = Quantizer.identity(13, width=2)
    model, quantizer, report = convert_onnx(
        float_model, np.rint(wine.x_train), wine.y_train, weight_width=2, quantizer=q
    )
    assert quantizer == q and report.weight_width == 2
    assert compile_onnx(model, 2, 1).constants[0].width <= 2


def test_conversion_is_deterministic(wine: Split) -> None:
    mlp = _mlp(wine, hidden=(8,), scaled=False)
    float_model = torch_style_mlp(mlp.coefs_, mlp.intercepts_, "Softmax")  # type: ignore[attr-defined]
    a = convert_onnx(float_model, wine.x_train, wine.y_train).model.SerializeToString(deterministic=True)
    b = convert_onnx(float_model, wine.x_train, wine.y_train).model.SerializeToString(deterministic=True)
    assert a == b


def test_rejects_unsupported_float_op_naming_the_node(wine: Split) -> None:
    mlp = _mlp(wine, hidden=(8,), scaled=False)
    float_model = torch_style_mlp(mlp.coefs_, mlp.intercepts_, "Softmax")  # type: ignore[attr-defined]
    for node in float_model.graph.node:
        if node.op_type == "Relu":
            node.op_type = "Tanh"
    with pytest.raises(ProfileError, match="Tanh is not supported") as info:
        convert_onnx(float_model, wine.x_train, wine.y_train)
    assert info.value.node == "/relu1/Relu"


def test_quantizer_round_trip_and_clipping() -> None:
    x = np.array([[0.0, 10.0], [4.0, -10.0], [2.0, 0.0]])
    q = Quantizer.calibrate(x, width=1)
    assert q.offset == (2.0, 0.0)
    assert q.scale == (16.0, 4.0)  # powers of two using half of int8's range
    assert q.quantize(x).tolist() == [[-32, 40], [32, -40], [0, 0]]
    assert q.quantize([[1000.0, -1000.0]]).tolist() == [[127, -128]]
    assert Quantizer.from_dict(q.to_dict()) == q
    assert q.encode([4.0, -10.0]) == bytes([32, 0xD8])


def test_extract_rejects_branching_graph() -> None:
    w = [np.ones((2, 2)), np.ones((2, 2))]
    model = torch_style_mlp(w, [np.zeros(2), np.zeros(2)], "Softmax")
    model.graph.node.append(helper.make_node("Neg", ["/relu1/Relu_output_0"], ["extra"], name="side"))
    with pytest.raises(ProfileError, match="branching"):
        extract_network(model)
