"""Converter from float convolutional networks (ONNX) to integer-profile ONNX, using only MatMul, Add,
Div, Max and ArgMax, so the existing compiler and on-chain verifier run it unchanged.

:mod:`oracle.profile.cnn_lowering` turns the float graph into stages ``relu?(max_j(a @ W_j + b_j))``
over flat activations (a convolution is a dense Toeplitz matrix; a k x k MaxPool is k^2 of them, one
per window offset). Each stage becomes::

    MatMul(a, W_j) [+ b_j]  for every branch j     (int8/16/32 weights, per-column power-of-two scale)
    Max over the branches, + b, Div 2^e per column  (back to the common activation scale 2^f)
    Max(., 0)                                       (Relu, when the stage has one)

and the last stage ends in ArgMax. Fixed-point scaling is the MLP converter's
(:func:`oracle.profile.fixed_point.quantize_network`), applied to all branches of a stage with one shift
per output column. ``Max`` and the truncating ``Div`` by a positive constant commute exactly, so the
Div may come before the Max (per branch) when that is what keeps the Max operands inside int32; the
integer results are identical either way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from oracle.errors import ProfileError
from oracle.profile.cnn_lowering import FloatCNN, extract_cnn
from oracle.profile.codec import IntArray, narrowest_width, width_range
from oracle.profile.compiler import compile_onnx
from oracle.profile.converter import AccuracyReport, Conversion
from oracle.profile.fixed_point import IR_VERSION, OPSET, rescale, weight_shift
from oracle.profile.program import Program, macs
from oracle.profile.quantizer import Quantizer
from oracle.profile.reference import run, trunc_div

__all__ = ["IntCNN", "IntStage", "convert_cnn", "is_cnn", "program_macs", "quantize_cnn", "to_onnx"]


@dataclass(frozen=True)
class IntStage:
    weights: tuple[IntArray, ...]
    biases: tuple[IntArray, ...]  # [1, n_out] per branch
    divisor: IntArray | None  # [1, n_out] powers of two
    relu: bool

    @property
    def shared_bias(self) -> bool:
        return all(np.array_equal(b, self.biases[0]) for b in self.biases)


@dataclass(frozen=True)
class IntCNN:
    stages: tuple[IntStage, ...]
    weight_width: int
    activation_bits: tuple[int, ...]

    def scores(self, q: IntArray) -> IntArray:
        """Vectorised integer forward pass; the same integers as the emitted graph in either layout."""
        a = np.asarray(q, dtype=np.int64)
        for st in self.stages:
            z = np.max([a @ w + b for w, b in zip(st.weights, st.biases, strict=True)], axis=0)
            if st.divisor is not None:
                z = trunc_div(z, np.broadcast_to(st.divisor, z.shape))
            a = np.maximum(z, 0) if st.relu else z
        return a

    def predict_index(self, q: IntArray) -> npt.NDArray[np.int64]:
        return np.asarray(np.argmax(self.scores(q), axis=1), dtype=np.int64)


def quantize_cnn(net: FloatCNN, quantizer: Quantizer, weight_width: int, activation_bits: int = 16) -> IntCNN:
    """Fixed-point version of ``net`` for inputs quantized by ``quantizer`` (MLP converter's scheme)."""
    wmax = width_range(weight_width)[1]
    offset, scale = np.asarray(quantizer.offset), np.asarray(quantizer.scale)
    stages: list[IntStage] = []
    bits: list[int] = []
    f = 0
    for index, st in enumerate(net.stages):
        ws, bs = list(st.weights), list(st.biases)
        if index == 0:  # x ~ q / scale + offset
            bs = [offset @ w + b for w, b in zip(ws, bs, strict=True)]
            ws = [w / scale[:, None] for w in ws]
        last = index == len(net.stages) - 1
        colmax = np.max([np.abs(w).max(axis=0) for w in ws], axis=0)
        if last:
            shifts = np.full(colmax.shape, weight_shift(float(colmax.max()), wmax))
        else:
            shifts = np.array([weight_shift(float(c), wmax) for c in colmax])
        w_int = tuple(np.clip(np.rint(w * np.exp2(shifts)), -wmax, wmax).astype(np.int64) for w in ws)
        b_int = tuple(np.rint(b * np.exp2(f + shifts)).astype(np.int64).reshape(1, -1) for b in bs)
        bits.append(f)
        divisor, f = rescale(f, shifts, activation_bits, last)
        stages.append(IntStage(w_int, b_int, divisor, st.relu))
    return IntCNN(tuple(stages), weight_width, tuple(bits))


def to_onnx(net: IntCNN, quantizer: Quantizer, rescale_first: bool = False) -> onnx.ModelProto:
    """Integer-profile graph of ``net``: int64 input ``quantizer.shape``, ArgMax label ``[1]``.

    ``rescale_first`` divides every branch before the Max (smaller Max operands, k^2 Divs instead of 1).
    """
    nodes: list[onnx.NodeProto] = []
    inits: list[TensorProto] = [numpy_helper.from_array(np.array(0, dtype=np.int64), "zero")]

    def node(op: str, ins: list[str], out: str) -> str:
        nodes.append(helper.make_node(op, ins, [out], name=out))
        return out

    def init(name: str, value: IntArray) -> str:
        width = narrowest_width(value)
        if width == 8 or value.size < 64:
            inits.append(numpy_helper.from_array(value.astype(np.int64), name))
            return name
        # Big narrow constants (the Toeplitz weights) are stored narrow and widened by a Cast, which the
        # compiler folds into the same program constant: the ONNX file shrinks ~8x, the program does not change.
        inits.append(numpy_helper.from_array(value.astype(f"int{8 * width}"), f"{name}.narrow"))
        nodes.append(helper.make_node("Cast", [f"{name}.narrow"], [name], name=f"{name}/Cast", to=TensorProto.INT64))
        return name

    cur = "input"
    for i, st in enumerate(net.stages):
        p = f"stage{i}"
        shared = st.shared_bias and not rescale_first
        div = init(f"{p}.divisor", st.divisor) if st.divisor is not None else None
        bias_names = [init(f"{p}.bias", st.biases[0])] if st.shared_bias else []
        branches = []
        for j, (w, b) in enumerate(zip(st.weights, st.biases, strict=True)):
            z = node("MatMul", [cur, init(f"{p}.weight{j}", w)], f"{p}/branch{j}/MatMul")
            if not shared:
                bias = bias_names[0] if bias_names else init(f"{p}.bias{j}", b)
                z = node("Add", [z, bias], f"{p}/branch{j}/Add")
                if rescale_first and div is not None:
                    z = node("Div", [z, div], f"{p}/branch{j}/Rescale")
            branches.append(z)
        z = branches[0]
        for j in range(1, len(branches)):
            z = node("Max", [z, branches[j]], f"{p}/Pool{j}")
        if shared:
            z = node("Add", [z, bias_names[0]], f"{p}/Add")
        if div is not None and not rescale_first:
            z = node("Div", [z, div], f"{p}/Rescale")
        if st.relu:
            z = node("Max", [z, "zero"], f"{p}/Relu")
        cur = z
    nodes.append(helper.make_node("ArgMax", [cur], ["label"], name="ArgMax", axis=1, keepdims=0))
    graph = helper.make_graph(
        nodes, "integer_profile_cnn",
        [helper.make_tensor_value_info("input", TensorProto.INT64, list(quantizer.shape))],
        [helper.make_tensor_value_info("label", TensorProto.INT64, [quantizer.shape[0]])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                              producer_name="oracle.profile.cnn")
    onnx.checker.check_model(model)
    return model


program_macs = macs


def is_cnn(model: onnx.ModelProto | bytes) -> bool:
    """Whether a float graph has convolution or pooling nodes (so it needs this converter)."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load_model_from_string(bytes(model))
    return any(n.op_type in ("Conv", "MaxPool", "AveragePool") for n in model.graph.node)


def _fit(net: FloatCNN, quantizer: Quantizer, weight_width: int,
         activation_bits: int) -> tuple[IntCNN, onnx.ModelProto, Program]:
    """Quantize and compile, first with the Max before the rescale, then after it, then fewer bits."""
    output_width = 1 if net.stages[-1].weights[0].shape[1] <= 128 else 2
    last_error: ProfileError | None = None
    for bits in range(activation_bits, -41, -2):
        int_net = quantize_cnn(net, quantizer, weight_width, bits)
        for rescale_first in (False, True):
            model = to_onnx(int_net, quantizer, rescale_first)
            try:
                return int_net, model, compile_onnx(model, quantizer.width, output_width)
            except ProfileError as exc:
                last_error = exc
    assert last_error is not None
    raise ProfileError(f"no fixed-point scaling of this CNN fits the profile with {quantizer.width}-byte inputs "
                       f"and {weight_width}-byte weights ({last_error}); use a narrower input width",
                       node=last_error.node)


def float_predict_cnn(model: onnx.ModelProto | bytes, x: npt.ArrayLike, net: FloatCNN) -> npt.NDArray[np.int64]:
    """Class indices onnxruntime computes with the original float graph (flat samples reshaped)."""
    import onnxruntime as ort

    data = model if isinstance(model, bytes) else model.SerializeToString()
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    dtype = np.float64 if inp.type == "tensor(double)" else np.float32
    xs = np.asarray(x, dtype=dtype).reshape(-1, *net.input_shape)
    step = len(xs) if not isinstance(inp.shape[0], int) else 1
    out = np.concatenate([np.asarray(sess.run(None, {inp.name: xs[i : i + step]})[0]) for i in range(0, len(xs), step)])
    if np.issubdtype(out.dtype, np.integer):
        return np.asarray(out.reshape(-1), dtype=np.int64)
    return np.asarray(np.argmax(out.reshape(len(xs), -1), axis=1), dtype=np.int64)


def convert_cnn(
    float_model: onnx.ModelProto | bytes,
    x_calib: npt.ArrayLike,
    y_calib: npt.ArrayLike,
    x_test: npt.ArrayLike | None = None,
    y_test: npt.ArrayLike | None = None,
    input_width: int = 1,
    quantizer: Quantizer | None = None,
    weight_width: int | None = None,
    activation_bits: int = 16,
    max_calib_drop: float = 0.005,
    progress: Callable[[str], None] | None = None,
) -> Conversion:
    """Convert a float CNN graph (flat samples ``[N, C*H*W]``) into integer-profile ONNX with a report.

    Same contract as :func:`oracle.profile.converter.convert_onnx`: ``weight_width`` ``None`` tries 1,
    2 then 4 bytes and keeps the first within ``max_calib_drop`` of the float calibration accuracy; the
    report runs the compiled program with the reference interpreter on the test samples.
    """
    say = progress or (lambda _msg: None)
    model = float_model if isinstance(float_model, onnx.ModelProto) else onnx.load_model_from_string(float_model)
    say("lowering convolutions and pools to dense stages")
    net = extract_cnn(model)
    xc = np.asarray(x_calib, dtype=np.float64).reshape(-1, net.n_features)
    yc = np.asarray(y_calib).astype(np.int64)
    ref_pred = float_predict_cnn(model, xc, net)
    agree = float(np.mean(net.predict_index(xc) == ref_pred))
    if agree < 0.99:
        raise ProfileError(f"the lowered network agrees with the float model on only {agree:.1%} of the "
                           "calibration samples; the graph has structure the converter does not understand")
    if quantizer is None:
        quantizer = Quantizer.calibrate(xc, input_width)
    if quantizer.n_features != net.n_features:
        raise ProfileError(f"quantizer has {quantizer.n_features} features, model has {net.n_features}")
    float_calib = float(np.mean(ref_pred == yc))
    fitted = None
    for width in (weight_width,) if weight_width is not None else (1, 2, 4):
        say(f"quantizing with {width}-byte weights and compiling")
        fitted = _fit(net, quantizer, width, activation_bits)
        if float(np.mean(fitted[0].predict_index(quantizer.quantize(xc)) == yc)) >= float_calib - max_calib_drop:
            break
    assert fitted is not None
    chosen, int_model, program = fitted
    xt = xc if x_test is None else np.asarray(x_test, dtype=np.float64).reshape(-1, net.n_features)
    yt = yc if y_test is None else np.asarray(y_test).astype(np.int64)
    say(f"scoring {len(xt)} samples with the reference interpreter")
    q = quantizer.quantize(xt)
    int_pred = np.array([int(run(program, q[i].reshape(quantizer.shape))[0]) for i in range(len(q))])
    flt_pred = float_predict_cnn(model, xt, net)
    say(f"{program_macs(program)} MACs, {len(program.ops)} ops")
    report = AccuracyReport(
        float_accuracy=float(np.mean(flt_pred == yt)),
        int_accuracy=float(np.mean(int_pred == yt)),
        agreement=float(np.mean(int_pred == flt_pred)),
        n_samples=len(yt),
        weight_width=chosen.weight_width,
        activation_bits=chosen.activation_bits,
        notes=(f"macs={program_macs(program)}",),
    )
    return Conversion(int_model, quantizer, report)
