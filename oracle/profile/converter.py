"""Converter from float classifiers to integer-profile ONNX by fixed-point scaling.

It reads the float ONNX graph (what skl2onnx or torch.onnx export), reduces it to a chain of dense
layers ``z = a @ W + b`` with ReLU between them, drops the final monotone activation (Softmax,
Sigmoid: the arg-max does not change) and everything after it, and writes an integer graph:

``input -> [MatMul, Add, Div(2^e), Max(0)] per hidden layer -> MatMul, Add -> ArgMax -> label``

Scaling: an activation tensor ``A`` holds ``round(a * 2^f)``. A layer's weights are stored as
``round(W[:, j] * 2^s_j)`` with ``s_j`` the largest power of two keeping column ``j`` inside the weight
width (int8 by default, so the on-chain verifier reads one byte per weight), biases at scale
``2^(f + s_j)``, and a truncating ``Div`` by ``2^(f + s_j - f')`` brings every column back to the
common activation scale ``2^f'``. The last layer uses one scale for all columns and no rescale, since
ArgMax only compares. Input features are quantized client side by a :class:`Quantizer`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from oracle.errors import ProfileError
from oracle.profile.codec import IntArray, encode_tensor, width_range
from oracle.profile.compiler import compile_onnx
from oracle.profile.float_network import TERMINAL_OPS as TERMINAL_OPS
from oracle.profile.float_network import DenseLayer as DenseLayer
from oracle.profile.float_network import FloatArray as FloatArray
from oracle.profile.float_network import FloatNetwork as FloatNetwork
from oracle.profile.float_network import extract_network as extract_network
from oracle.profile.program import Program
from oracle.profile.reference import run, trunc_div

OPSET = 17
IR_VERSION = 9


# --------------------------------------------------------------------------------------------------
# Input quantization
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quantizer:
    """How a client turns float features into the model's canonical input integers.

    ``q = clip(rint((x - offset) * scale), lo, hi)`` per feature, where ``rint`` rounds half to even
    (IEEE default, ``numpy.rint``) and ``[lo, hi]`` is the range of the input width. Scales are
    powers of two, so the multiplication is exact in float64.
    """

    offset: tuple[float, ...]
    scale: tuple[float, ...]
    width: int
    shape: tuple[int, ...]

    @classmethod
    def identity(cls, n_features: int, width: int, shape: Sequence[int] | None = None) -> Quantizer:
        """Features that already are integers (e.g. pixel intensities 0..16)."""
        return cls((0.0,) * n_features, (1.0,) * n_features, width, tuple(shape or (1, n_features)))

    @classmethod
    def calibrate(cls, x: npt.ArrayLike, width: int, headroom: float = 2.0) -> Quantizer:
        """Center each feature on its calibration range and scale by a power of two so the range uses
        ``1/headroom`` of the input width (values beyond are clipped)."""
        arr = np.asarray(x, dtype=np.float64)
        lo, hi = arr.min(axis=0), arr.max(axis=0)
        center = (lo + hi) / 2.0
        half = (hi - lo) / 2.0
        qmax = width_range(width)[1]
        scales = []
        for h in half:
            if h <= 0:
                scales.append(1.0)
            else:
                scales.append(float(2.0 ** math.floor(math.log2(qmax / (headroom * float(h))))))
        return cls(tuple(float(c) for c in center), tuple(scales), width, (1, int(arr.shape[1])))

    @property
    def n_features(self) -> int:
        return len(self.scale)

    def quantize(self, x: npt.ArrayLike) -> IntArray:
        """Quantize a batch ``[N, F]`` (or one sample ``[F]``) of float features to int64."""
        arr = np.asarray(x, dtype=np.float64)
        lo, hi = width_range(self.width)
        q = np.rint((arr - np.asarray(self.offset)) * np.asarray(self.scale))
        result: IntArray = np.clip(q, lo, hi).astype(np.int64)
        return result

    def encode(self, sample: npt.ArrayLike) -> bytes:
        """Canonical input bytes of one float sample."""
        q = self.quantize(np.asarray(sample, dtype=np.float64).reshape(-1)).reshape(self.shape)
        return encode_tensor(q, self.width)

    def to_dict(self) -> dict[str, Any]:
        return {
            "formula": "clip(rint((x - offset) * scale), -2^(8*width-1), 2^(8*width-1)-1)",
            "offset": list(self.offset),
            "scale": list(self.scale),
            "width": self.width,
            "shape": list(self.shape),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Quantizer:
        return cls(
            tuple(float(v) for v in d["offset"]),
            tuple(float(v) for v in d["scale"]),
            int(d["width"]),
            tuple(int(v) for v in d["shape"]),
        )


# --------------------------------------------------------------------------------------------------
# Fixed-point network
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IntLayer:
    """One integer layer as emitted: ``Z = A @ weight + bias``, then ``Div(divisor)``, then ``Max(0)``."""

    weight: IntArray
    bias: IntArray
    divisor: IntArray | None
    relu: bool


@dataclass(frozen=True)
class IntNetwork:
    layers: tuple[IntLayer, ...]
    weight_width: int
    activation_bits: tuple[int, ...]  # fractional bits f of each layer's input

    def predict_index(self, q: IntArray) -> npt.NDArray[np.int64]:
        """Vectorised integer forward pass over a batch; identical arithmetic to the emitted graph."""
        a = np.asarray(q, dtype=np.int64)
        for layer in self.layers:
            a = a @ layer.weight + layer.bias
            if layer.divisor is not None:
                a = trunc_div(a, np.broadcast_to(layer.divisor, a.shape))
            if layer.relu:
                a = np.maximum(a, 0)
        result: npt.NDArray[np.int64] = np.argmax(a, axis=1).astype(np.int64)
        return result


def quantize_network(
    net: FloatNetwork, quantizer: Quantizer, weight_width: int, activation_bits: int = 16
) -> IntNetwork:
    """Fixed-point version of ``net`` for inputs quantized by ``quantizer`` (see module doc)."""
    wmax = width_range(weight_width)[1]
    offset = np.asarray(quantizer.offset)
    scale = np.asarray(quantizer.scale)
    layers: list[IntLayer] = []
    bits: list[int] = []
    f = 0  # the quantized input is the integer itself
    for index, layer in enumerate(net.layers):
        w, b = layer.weight, layer.bias
        if index == 0:
            # x ~ q / scale + offset, so z = q @ (W / scale) + (offset @ W + b).
            b = offset @ w + b
            w = w / scale[:, None]
        last = index == len(net.layers) - 1
        colmax = np.abs(w).max(axis=0)
        if last:
            top = float(colmax.max())
            shifts = np.full(w.shape[1], _shift(top, wmax))
        else:
            shifts = np.array([_shift(float(m), wmax) for m in colmax])
        w_int = np.clip(np.rint(w * np.exp2(shifts)), -wmax, wmax).astype(np.int64)
        b_int = np.rint(b * np.exp2(f + shifts)).astype(np.int64)
        bits.append(f)
        divisor: IntArray | None = None
        if not last:
            f_next = int(min(activation_bits, int((f + shifts).min())))
            exps = (f + shifts - f_next).astype(np.int64)
            if exps.max() > 0:
                divisor = (np.int64(1) << exps).reshape(1, -1)
            f = f_next
        layers.append(IntLayer(w_int, b_int.reshape(1, -1), divisor, layer.relu))
    return IntNetwork(tuple(layers), weight_width, tuple(bits))


def _shift(colmax: float, wmax: int) -> int:
    """Largest ``s`` with ``colmax * 2^s <= wmax`` (capped so all-zero columns stay finite)."""
    if colmax <= 0:
        return 24
    return min(24, math.floor(math.log2(wmax / colmax)))


def to_onnx(net: IntNetwork, quantizer: Quantizer) -> onnx.ModelProto:
    """The integer-profile ONNX graph of ``net`` (int64 everywhere, ArgMax output ``[1]``)."""
    nodes: list[onnx.NodeProto] = []
    inits: list[TensorProto] = []
    if any(layer.relu for layer in net.layers):
        inits.append(numpy_helper.from_array(np.array(0, dtype=np.int64), "zero"))
    cur = "input"
    for i, layer in enumerate(net.layers):
        p = f"layer{i}"
        inits.append(numpy_helper.from_array(layer.weight.astype(np.int64), f"{p}.weight"))
        inits.append(numpy_helper.from_array(layer.bias.astype(np.int64), f"{p}.bias"))
        nodes.append(helper.make_node("MatMul", [cur, f"{p}.weight"], [f"{p}.matmul"], name=f"{p}/MatMul"))
        nodes.append(helper.make_node("Add", [f"{p}.matmul", f"{p}.bias"], [f"{p}.add"], name=f"{p}/Add"))
        cur = f"{p}.add"
        if layer.divisor is not None:
            inits.append(numpy_helper.from_array(layer.divisor.astype(np.int64), f"{p}.divisor"))
            nodes.append(
                helper.make_node("Div", [cur, f"{p}.divisor"], [f"{p}.rescale"], name=f"{p}/Rescale")
            )
            cur = f"{p}.rescale"
        if layer.relu:
            nodes.append(helper.make_node("Max", [cur, "zero"], [f"{p}.relu"], name=f"{p}/Relu"))
            cur = f"{p}.relu"
    nodes.append(helper.make_node("ArgMax", [cur], ["label"], name="ArgMax", axis=1, keepdims=0))
    graph = helper.make_graph(
        nodes,
        "integer_profile",
        [helper.make_tensor_value_info("input", TensorProto.INT64, list(quantizer.shape))],
        [helper.make_tensor_value_info("label", TensorProto.INT64, [quantizer.shape[0]])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="oracle.profile.converter",
    )
    onnx.checker.check_model(model)
    return model


# --------------------------------------------------------------------------------------------------
# Conversion with accuracy report
# --------------------------------------------------------------------------------------------------


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
