"""The CNN converter: the dense lowering equals onnxruntime's float Conv/Pool, the integer program is
bit-exact between onnxruntime and the reference, accuracy holds, unsupported models are refused."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper
from profile_helpers import ort_session

from oracle.errors import ProfileError
from oracle.profile.cnn import convert_cnn, is_cnn, program_macs, quantize_cnn, to_onnx
from oracle.profile.cnn_lowering import extract_cnn
from oracle.profile.codec import width_range
from oracle.profile.compiler import compile_onnx
from oracle.profile.datasets import load_split
from oracle.profile.models import load_manifest, model_bytes, program_bytes
from oracle.profile.program import decode
from oracle.profile.quantizer import Quantizer
from oracle.profile.reference import run

RNG = np.random.default_rng(11)


def float_graph(layers: list[tuple[str, dict[str, Any]]], in_shape: tuple[int, int, int], out_dims: int = 4,
                seed: int = 0) -> onnx.ModelProto:
    """A float32 chain ``input [N,C,H,W] -> layers -> output``. Layer params: Conv ``co``/attrs,
    BatchNormalization, Relu, MaxPool/AveragePool attrs, Flatten, Gemm ``n``, any other op as is."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    cur, c = "input", in_shape[0]
    flat = None
    for i, (op, kw) in enumerate(layers):
        kw = dict(kw)
        out = f"t{i}"
        ins = [cur]
        if op == "Conv":
            co = kw.pop("co")
            k = kw.get("kernel_shape", [3, 3])
            groups = kw.get("group", 1)
            w = rng.normal(0, 0.5, size=(co, c // groups, *k)).astype(np.float32)
            inits.append(numpy_helper.from_array(w, f"w{i}"))
            ins.append(f"w{i}")
            if kw.pop("bias", True):
                inits.append(numpy_helper.from_array(rng.normal(0, 0.5, size=co).astype(np.float32), f"b{i}"))
                ins.append(f"b{i}")
            c = co
        elif op == "BatchNormalization":
            for name, val in (("g", rng.uniform(-1.5, 1.5, c)), ("beta", rng.normal(0, 1, c)),
                              ("mean", rng.normal(0, 1, c)), ("var", rng.uniform(0.5, 2, c))):
                inits.append(numpy_helper.from_array(val.astype(np.float32), f"{name}{i}"))
                ins.append(f"{name}{i}")
        elif op == "Gemm":
            n = kw.pop("n")
            inits.append(numpy_helper.from_array(rng.normal(0, 0.3, size=(n, flat)).astype(np.float32), f"w{i}"))
            inits.append(numpy_helper.from_array(rng.normal(0, 0.3, size=n).astype(np.float32), f"b{i}"))
            ins += [f"w{i}", f"b{i}"]
            kw["transB"] = 1
        elif op == "Flatten":
            flat = -1
        nodes.append(helper.make_node(op, ins, [out], name=f"/{op}{i}", **kw))
        cur = out
        if op == "Flatten":
            flat = None  # filled below by shape inference
            model = _model(nodes, inits, in_shape, cur, out_dims)
            inferred = onnx.shape_inference.infer_shapes(model)
            for vi in inferred.graph.value_info:
                if vi.name == cur:
                    flat = vi.type.tensor_type.shape.dim[1].dim_value
    return _model(nodes, inits, in_shape, cur, out_dims)


def _model(nodes: list, inits: list, in_shape: tuple, cur: str, out_dims: int) -> onnx.ModelProto:
    nodes = nodes + [helper.make_node("Identity", [cur], ["output"], name="/out")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *in_shape])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, None)], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def ort_float(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return np.asarray(ort_session(model).run(None, {"input": x.astype(np.float32)})[0])


# ----------------------------------------------------------------------------- float lowering


LOWERING_CASES = {
    "conv_pad1_maxpool2": [("Conv", {"co": 3, "kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}),
                           ("MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2]})],
    "conv_valid_stride2_nobias": [("Conv", {"co": 4, "kernel_shape": [3, 3], "strides": [2, 2], "bias": False})],
    "conv_asym_pads_5x3": [("Conv", {"co": 2, "kernel_shape": [5, 3], "pads": [2, 0, 1, 1]})],
    "conv_same_upper_stride2": [("Conv", {"co": 2, "kernel_shape": [3, 3], "auto_pad": "SAME_UPPER",
                                          "strides": [2, 2]})],
    "bn_relu_maxpool3_stride2_pad1": [("Conv", {"co": 3, "kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}),
                                      ("BatchNormalization", {}), ("Relu", {}),
                                      ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2],
                                                   "pads": [1, 1, 1, 1]})],
    "maxpool_overlapping_stride1": [("MaxPool", {"kernel_shape": [2, 2], "strides": [1, 1]})],
    "avgpool_pads_exclude": [("Conv", {"co": 2, "kernel_shape": [3, 3]}),
                             ("AveragePool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]})],
    "avgpool_pads_include": [("AveragePool", {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [1, 1, 0, 0],
                                              "count_include_pad": 1})],
    "two_blocks_gemm": [("Conv", {"co": 4, "kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}), ("Relu", {}),
                        ("MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2]}),
                        ("Conv", {"co": 3, "kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}),
                        ("BatchNormalization", {}), ("MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2]}),
                        ("Relu", {}), ("AveragePool", {"kernel_shape": [2, 2], "strides": [1, 1]}),
                        ("Flatten", {}), ("Gemm", {"n": 5})],
}


@pytest.mark.parametrize("case", sorted(LOWERING_CASES))
def test_dense_lowering_equals_onnxruntime_float(case: str) -> None:
    in_shape = (2, 9, 8)
    model = float_graph(LOWERING_CASES[case], in_shape)
    x = RNG.normal(0, 1, size=(16, *in_shape))
    want = ort_float(model, x).reshape(16, -1)
    got = extract_cnn(model).scores(x.reshape(16, -1))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@settings(derandomize=True, max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_dense_lowering_equals_onnxruntime_for_random_conv_and_pool_shapes(data: st.DataObject) -> None:
    h, w, c = data.draw(st.integers(3, 9)), data.draw(st.integers(3, 9)), data.draw(st.integers(1, 3))
    kh, kw = data.draw(st.integers(1, min(h, 4))), data.draw(st.integers(1, min(w, 4)))
    conv = {"co": data.draw(st.integers(1, 3)), "kernel_shape": [kh, kw],
            "strides": [data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2))],
            "pads": [data.draw(st.integers(0, k - 1)) for k in (kh, kw, kh, kw)],
            "bias": data.draw(st.booleans())}
    ho = (h + conv["pads"][0] + conv["pads"][2] - kh) // conv["strides"][0] + 1
    wo = (w + conv["pads"][1] + conv["pads"][3] - kw) // conv["strides"][1] + 1
    pk = [data.draw(st.integers(1, min(ho, 3))), data.draw(st.integers(1, min(wo, 3)))]
    pool = {"kernel_shape": pk, "strides": [data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2))],
            "pads": [data.draw(st.integers(0, k - 1)) for k in (pk[0], pk[1], pk[0], pk[1])]}
    kind = data.draw(st.sampled_from(["MaxPool", "AveragePool"]))
    if kind == "AveragePool":
        pool["count_include_pad"] = data.draw(st.integers(0, 1))
    layers = [("Conv", conv), ("Relu", {}), (kind, pool)]
    model = float_graph(layers, (c, h, w), seed=data.draw(st.integers(0, 1000)))
    x = RNG.normal(0, 1, size=(4, c, h, w))
    want = ort_float(model, x).reshape(4, -1)
    np.testing.assert_allclose(extract_cnn(model).scores(x.reshape(4, -1)), want, rtol=1e-4, atol=1e-4)


def test_shipped_float_cnn_lowers_exactly_to_its_predictions() -> None:
    model = onnx.load_model_from_string(model_bytes("digits_cnn_float"))
    split = load_split("digits")
    net = extract_cnn(model)
    assert [len(s.weights) for s in net.stages] == [4, 4, 1]  # two fused Conv+MaxPool stages, the Gemm
    probs = ort_float(model, split.x_test.reshape(-1, 1, 8, 8))
    np.testing.assert_array_equal(net.predict_index(split.x_test), probs.argmax(axis=1))
    assert is_cnn(model) and not is_cnn(model_bytes("digits_float"))


# ----------------------------------------------------------------------------- the shipped EXACT model


def test_shipped_digits_cnn_accuracy_within_one_point_and_report_recomputes() -> None:
    entry = load_manifest()["models"]["digits_cnn"]
    assert entry["int_accuracy"] >= entry["float_accuracy"] - 0.01
    assert entry["float_accuracy"] >= 0.97
    program = decode(program_bytes("digits_cnn"))
    assert entry["macs"] == program_macs(program) == 4 * 64 * 128 + 4 * 128 * 64 + 64 * 10
    split = load_split("digits")
    q = Quantizer.from_dict(entry["quantizer"]).quantize(split.x_test)
    session = ort_session(onnx.load_model_from_string(model_bytes("digits_cnn")))
    ort_pred = np.concatenate([session.run(None, {"input": q[i : i + 1]})[0] for i in range(len(q))])
    assert float(np.mean(ort_pred == split.y_test)) == entry["int_accuracy"]


def test_shipped_digits_cnn_ort_equals_reference_on_random_and_extreme_inputs() -> None:
    program = decode(program_bytes("digits_cnn"))
    session = ort_session(onnx.load_model_from_string(model_bytes("digits_cnn")))
    lo, hi = width_range(1)
    xs = [np.full((1, 64), lo), np.full((1, 64), hi), np.where(np.arange(64) % 2, lo, hi).reshape(1, 64),
          np.zeros((1, 64), dtype=np.int64)]
    xs += [RNG.integers(lo, hi, size=(1, 64), endpoint=True) for _ in range(150)]
    for x in xs:
        x = x.astype(np.int64)
        assert session.run(None, {"input": x})[0].tolist() == run(program, x).tolist()


# ----------------------------------------------------------------------------- conversion end to end


def _tiny_cnn() -> onnx.ModelProto:
    return float_graph([("Conv", {"co": 3, "kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}), ("BatchNormalization", {}),
                        ("Relu", {}), ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
                        ("AveragePool", {"kernel_shape": [2, 2], "strides": [2, 2]}), ("Flatten", {}),
                        ("Gemm", {"n": 4}), ("Softmax", {"axis": 1})], (1, 8, 8), seed=3)


@pytest.fixture(scope="module")
def tiny() -> tuple[onnx.ModelProto, np.ndarray, np.ndarray]:
    model = _tiny_cnn()
    x = load_split("digits").x_train[:300]
    y = ort_float(model, x.reshape(-1, 1, 8, 8)).argmax(axis=1)  # the float model's own labels
    return model, x, y


def test_calibrated_conversion_is_bit_exact_and_agrees_with_float(tiny: Any) -> None:
    model, x, y = tiny
    conv = convert_cnn(model, x, y, input_width=2)  # per-pixel offsets: per-branch biases
    assert conv.report.float_accuracy == 1.0 and conv.report.agreement >= 0.97
    program = compile_onnx(conv.model, 2, 1)
    session = ort_session(conv.model)
    lo, hi = width_range(2)
    for i in range(40):
        q = (conv.quantizer.quantize(x[i]) if i < 20 else RNG.integers(lo, hi, size=64, endpoint=True))
        q = q.reshape(1, 64).astype(np.int64)
        assert session.run(None, {"input": q})[0].tolist() == run(program, q).tolist()


def test_rescale_before_max_gives_identical_integers(tiny: Any) -> None:
    model, x, _ = tiny
    quantizer = Quantizer.identity(64, 1)
    int_net = quantize_cnn(extract_cnn(model), quantizer, 1, 8)
    a, b = (compile_onnx(to_onnx(int_net, quantizer, first), 1, 1) for first in (False, True))
    assert len(b.ops) > len(a.ops)
    q = quantizer.quantize(x)
    for i in range(60):
        xi = q[i].reshape(1, 64)
        assert run(a, xi).tolist() == run(b, xi).tolist() == int_net.predict_index(xi).tolist()


def test_wide_inputs_fall_back_to_rescale_before_max_and_stay_bit_exact(tiny: Any) -> None:
    """int32 inputs: the pooling Max operands would leave int32 unless every branch is rescaled first."""
    model, x, y = tiny
    conv = convert_cnn(model, x, y, input_width=4)
    ops = [n.op_type for n in conv.model.graph.node]
    assert ops.count("Div") == 9 and ops.count("MatMul") == 10  # 9 pool offsets (3x3 MaxPool) + the Gemm
    assert conv.report.agreement >= 0.95
    program = compile_onnx(conv.model, 4, 1)
    session = ort_session(conv.model)
    lo, hi = width_range(4)
    xs = [np.full((1, 64), lo), np.full((1, 64), hi), np.where(np.arange(64) % 2, lo, hi).reshape(1, 64)]
    xs += [RNG.integers(lo, hi, size=(1, 64), endpoint=True) for _ in range(40)]
    for q in xs:
        q = q.astype(np.int64)
        assert session.run(None, {"input": q})[0].tolist() == run(program, q).tolist()


# ----------------------------------------------------------------------------- refusals


REFUSALS = {
    "grouped": ([("Conv", {"co": 2, "group": 2})], (2, 6, 6), r"Conv.*grouped convolution \(group=2\)"),
    "dilated": ([("Conv", {"co": 2, "dilations": [2, 2]})], (1, 6, 6), r"dilations \[2, 2\] are not supported"),
    "ceil_mode": ([("MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1})], (1, 5, 5),
                  r"ceil_mode=1 is not supported"),
    "tanh": ([("Conv", {"co": 2}), ("Tanh", {})], (1, 6, 6), r"float op Tanh is not supported .*Relu"),
    "sigmoid_mid_graph": ([("Conv", {"co": 2}), ("Sigmoid", {}), ("MaxPool", {"kernel_shape": [2, 2]})], (1, 6, 6),
                          r"Sigmoid is only supported as the final activation, but MaxPool '/MaxPool2' follows"),
    "3d_kernel": ([("Conv", {"co": 1, "kernel_shape": [3]})], (1, 6, 6), r"only 2-D convolutions are supported"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_unsupported_models_are_refused_with_the_op_named(case: str) -> None:
    layers, shape, pattern = REFUSALS[case]
    model = _model([helper.make_node(op, ["input"] if i == 0 else [f"t{i - 1}"], [f"t{i}"], name=f"/{op}{i}",
                                     **{k: v for k, v in kw.items() if k not in ("co",)})
                    for i, (op, kw) in enumerate(layers)], [], shape, f"t{len(layers) - 1}", 4)
    if layers[0][0] == "Conv":  # give the Conv its weight
        kw = layers[0][1]
        k = kw.get("kernel_shape", [3, 3])
        w = np.ones((kw["co"], shape[0] // kw.get("group", 1), *k), dtype=np.float32)
        model.graph.initializer.append(numpy_helper.from_array(w, "w"))
        model.graph.node[0].input.append("w")
    with pytest.raises(ProfileError, match=pattern) as info:
        extract_cnn(model)
    assert "\n" not in str(info.value)


def test_residual_branch_is_refused() -> None:
    nodes = [helper.make_node("Relu", ["input"], ["a"], name="/relu"),
             helper.make_node("Add", ["a", "input"], ["b"], name="/residual")]
    model = _model(nodes, [], (1, 4, 4), "b", 4)
    with pytest.raises(ProfileError, match="branching float graphs"):
        extract_cnn(model)


def test_gemm_on_unflattened_activations_is_refused() -> None:
    model = float_graph([("Conv", {"co": 1}), ("Flatten", {}), ("Gemm", {"n": 2})], (1, 5, 5))
    extract_cnn(model)  # fine with the Flatten
    del model.graph.node[1]
    model.graph.node[1].input[0] = "t0"
    with pytest.raises(ProfileError, match="Gemm needs flat activations; add a Flatten"):
        extract_cnn(model)


# ----------------------------------------------------------------------------- CLI


def test_cli_convert_dispatches_cnn_and_refuses_in_one_line(tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from oracle.cli import app

    src = tmp_path / "cnn.onnx"
    src.write_bytes(model_bytes("digits_cnn_float"))
    out = tmp_path / "cnn_int.onnx"
    args = ["model", "convert", str(src), "--dataset", "digits", "--input-width", "1", "--identity-input"]
    result = CliRunner().invoke(app, [*args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == model_bytes("digits_cnn")  # the shipped model is exactly this conversion

    bad = onnx.load_model_from_string(model_bytes("digits_cnn_float"))
    next(a for a in bad.graph.node[0].attribute if a.name == "dilations").ints[:] = [2, 2]
    src.write_bytes(bad.SerializeToString())
    result = CliRunner().invoke(app, [*args, "-o", str(out)])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "/conv0/Conv" in errors[0] and "dilations [2, 2] are not supported" in errors[0]


# ----------------------------------------------------------------------------- the worker's side


def test_worker_accepts_digits_cnn_and_its_session_matches_the_manifest(tmp_path: Any) -> None:
    """The operator's model store validates the file (ops, sizes, I/O) and its onnxruntime settings give
    the manifest's outputs: the narrow weights + Cast layout is what a worker really runs."""
    import onnxruntime as ort
    from eth_utils.crypto import keccak

    from oracle.chain.types import Mode, Model
    from oracle.profile.models import model_entry, model_path
    from oracle.runtime.inference import run_once, session_options
    from oracle.runtime.model_store import ModelStore

    entry = model_entry("digits_cnn")
    data = model_bytes("digits_cnn")
    model = Model(model_id=1, owner="0x" + "00" * 20, retired=False, mode=Mode.EXACT, fee=1, bond=1,
                  input_length=64, output_length=1, onnx_hash=bytes(keccak(data)),
                  program_commitment=bytes.fromhex(entry["program_commitment"][2:]),
                  uri=model_path("digits_cnn").as_uri())
    info = ModelStore(tmp_path, max_model_bytes=2**20, max_tensor_bytes=2**20).get(model)
    session = ort.InferenceSession(data, sess_options=session_options(), providers=["CPUExecutionProvider"])
    for sample in entry["samples"]:
        out = run_once(session, info.input, info.output, bytes.fromhex(sample["input_hex"][2:]))
        assert out == bytes.fromhex(sample["expected_output_hex"][2:])
    assert len(data) < 2 * entry["program_size"]  # int8 weights in the file too, not int64
