"""Converter from float classifiers to integer-profile ONNX, with an accuracy report.

It reads the float ONNX graph (what skl2onnx or torch.onnx export), reduces it to a chain of dense
layers ``z = a @ W + b`` with ReLU between them (:mod:`oracle.profile.float_network`), drops the final
monotone activation (Softmax, Sigmoid: the arg-max does not change) and everything after it, scales it to
fixed point and writes the integer graph (:mod:`oracle.profile.fixed_point`), and compares the compiled
program's predictions with the float model's. Input features are quantized client side by a
:class:`~oracle.profile.quantizer.Quantizer`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import onnx

from oracle.errors import ProfileError
from oracle.profile.compiler import compile_onnx
from oracle.profile.fixed_point import IntNetwork, quantize_network, to_onnx
from oracle.profile.float_network import FloatArray, FloatNetwork, extract_network
from oracle.profile.program import Program
from oracle.profile.quantizer import Quantizer
from oracle.profile.reference import run


@dataclass(frozen=True)
class AccuracyReport:
    """How the integer model compares with the float one on held-out data."""

    float_accuracy: float
    int_accuracy: float
    agreement: float  # fraction of samples where both predict the same class
    n_samples: int
    weight_width: int
    activation_bits: tuple[int, ...]
    class_labels: tuple[int, ...] | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "float_accuracy": self.float_accuracy,
            "int_accuracy": self.int_accuracy,
            "agreement": self.agreement,
            "n_samples": self.n_samples,
            "weight_width": self.weight_width,
            "activation_bits": list(self.activation_bits),
        }


class Conversion(NamedTuple):
    """What :func:`convert_onnx` returns: the integer model, its input quantizer, and the report."""

    model: onnx.ModelProto
    quantizer: Quantizer
    report: AccuracyReport


def float_predict(model: onnx.ModelProto | bytes, x: FloatArray, net: FloatNetwork) -> npt.NDArray[np.int64]:
    """Class indices the float model itself predicts (onnxruntime on the original graph)."""
    import onnxruntime as ort

    data = model if isinstance(model, bytes) else model.SerializeToString()
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    dtype = np.float64 if inp.type == "tensor(double)" else np.float32
    batched = not isinstance(inp.shape[0], int)
    xs = np.asarray(x, dtype=dtype)
    if batched:
        out = np.asarray(sess.run(None, {inp.name: xs})[0])
    else:
        out = np.concatenate(
            [np.asarray(sess.run(None, {inp.name: xs[i : i + 1]})[0]) for i in range(len(xs))]
        )
    if np.issubdtype(out.dtype, np.integer):
        labels = out.reshape(-1)
        if net.class_labels is None:
            return labels.astype(np.int64)
        index = {lab: k for k, lab in enumerate(net.class_labels)}
        return np.array([index[int(v)] for v in labels], dtype=np.int64)
    out = out.reshape(len(xs), -1)
    if out.shape[1] == 1:
        threshold = 0.5 if net.final_activation == "Sigmoid" else 0.0
        return (out[:, 0] > threshold).astype(np.int64)
    result: npt.NDArray[np.int64] = np.argmax(out, axis=1).astype(np.int64)
    return result


def _labels_to_index(y: npt.ArrayLike, net: FloatNetwork) -> npt.NDArray[np.int64]:
    arr = np.asarray(y).astype(np.int64)
    if net.class_labels is None:
        return arr
    index = {lab: k for k, lab in enumerate(net.class_labels)}
    return np.array([index[int(v)] for v in arr], dtype=np.int64)


def _fit(
    net: FloatNetwork, quantizer: Quantizer, weight_width: int, activation_bits: int
) -> tuple[IntNetwork, onnx.ModelProto, Program]:
    """Quantize and compile, giving up activation precision until the compiler accepts the graph.

    Fewer fractional bits shrink the worst-case activations, which must stay inside int64 and, where
    they meet ``Max(x, 0)``, inside int32 (see ``intervals.compare_range_problem``).
    """
    n_classes = net.layers[-1].weight.shape[1]
    output_width = 1 if n_classes <= 128 else 2
    last_error: ProfileError | None = None
    # Negative fractional bits scale activations down: only wide inputs with tiny weights need it.
    for bits in range(activation_bits, -41, -2):
        int_net = quantize_network(net, quantizer, weight_width, bits)
        model = to_onnx(int_net, quantizer)
        try:
            return int_net, model, compile_onnx(model, quantizer.width, output_width)
        except ProfileError as exc:
            last_error = exc
    assert last_error is not None
    raise ProfileError(
        f"no fixed-point scaling of this network fits the profile with {quantizer.width}-byte inputs and "
        f"{weight_width}-byte weights ({last_error}); use a narrower input width",
        node=last_error.node,
    )


def convert_onnx(
    float_model: onnx.ModelProto | bytes,
    x_calib: npt.ArrayLike,
    y_calib: npt.ArrayLike,
    x_test: npt.ArrayLike | None = None,
    y_test: npt.ArrayLike | None = None,
    input_width: int = 2,
    quantizer: Quantizer | None = None,
    weight_width: int | None = None,
    activation_bits: int = 16,
    max_calib_drop: float = 0.005,
) -> Conversion:
    """Convert a float classifier graph into integer-profile ONNX.

    ``quantizer`` defaults to one calibrated on ``x_calib`` for ``input_width``. ``weight_width``
    ``None`` tries 1 then 2 then 4 bytes and keeps the first whose calibration accuracy is within
    ``max_calib_drop`` of the float network's (held-out data is never used for that choice).
    The report is computed on ``x_test``/``y_test`` (calibration data if not given) by compiling the
    integer graph and running the reference interpreter sample by sample.
    """
    model = (
        float_model if isinstance(float_model, onnx.ModelProto) else onnx.load_model_from_string(float_model)
    )
    net = extract_network(model)
    xc = np.asarray(x_calib, dtype=np.float64)
    yc = _labels_to_index(y_calib, net)
    # Guard against a misread graph: our float64 forward pass must agree with the real model.
    ref_pred = float_predict(model, xc, net)
    agree = float(np.mean(net.predict_index(xc) == ref_pred))
    if agree < 0.99:
        raise ProfileError(
            f"the extracted dense chain agrees with the float model on only {agree:.1%} of the calibration "
            "samples; the graph has structure the converter does not understand"
        )
    if quantizer is None:
        quantizer = Quantizer.calibrate(xc, input_width)
    if quantizer.n_features != net.n_features:
        raise ProfileError(f"quantizer has {quantizer.n_features} features, model has {net.n_features}")
    float_calib = float(np.mean(ref_pred == yc))
    candidates = (weight_width,) if weight_width is not None else (1, 2, 4)
    fitted: tuple[IntNetwork, onnx.ModelProto, Program] | None = None
    for width in candidates:
        fitted = _fit(net, quantizer, width, activation_bits)
        calib = float(np.mean(fitted[0].predict_index(quantizer.quantize(xc)) == yc))
        if calib >= float_calib - max_calib_drop:
            break
    assert fitted is not None
    chosen, int_model, program = fitted

    xt = xc if x_test is None else np.asarray(x_test, dtype=np.float64)
    yt = yc if y_test is None else _labels_to_index(y_test, net)
    q = quantizer.quantize(xt)
    int_pred = np.array([int(run(program, q[i].reshape(quantizer.shape))[0]) for i in range(len(q))])
    flt_pred = float_predict(model, xt, net)
    report = AccuracyReport(
        float_accuracy=float(np.mean(flt_pred == yt)),
        int_accuracy=float(np.mean(int_pred == yt)),
        agreement=float(np.mean(int_pred == flt_pred)),
        n_samples=len(yt),
        weight_width=chosen.weight_width,
        activation_bits=chosen.activation_bits,
        class_labels=net.class_labels,
    )
    return Conversion(int_model, quantizer, report)


def convert_sklearn(
    estimator: Any,
    x_calib: npt.ArrayLike,
    y_calib: npt.ArrayLike,
    x_test: npt.ArrayLike | None = None,
    y_test: npt.ArrayLike | None = None,
    **kwargs: Any,
) -> tuple[onnx.ModelProto, Conversion]:
    """Export a fitted scikit-learn classifier with skl2onnx, then :func:`convert_onnx` it.

    Returns the float ONNX model too (what an ATTESTED deployment of the same estimator would run).
    """
    from skl2onnx import to_onnx as skl_to_onnx

    xc = np.asarray(x_calib, dtype=np.float32)
    float_model = skl_to_onnx(estimator, xc[:1])
    return float_model, convert_onnx(float_model, x_calib, y_calib, x_test, y_test, **kwargs)
