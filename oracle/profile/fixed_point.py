"""Fixed-point scaling of a float dense network, and the integer-profile ONNX graph it becomes.

``input -> [MatMul, Add, Div(2^e), Max(0)] per hidden layer -> MatMul, Add -> ArgMax -> label``

Scaling: an activation tensor ``A`` holds ``round(a * 2^f)``. A layer's weights are stored as
``round(W[:, j] * 2^s_j)`` with ``s_j`` the largest power of two keeping column ``j`` inside the weight
width (int8 by default, so the on-chain verifier reads one byte per weight), biases at scale
``2^(f + s_j)``, and a truncating ``Div`` by ``2^(f + s_j - f')`` brings every column back to the
common activation scale ``2^f'``. The last layer uses one scale for all columns and no rescale, since
ArgMax only compares. Input features are quantized client side by a :class:`~oracle.profile.quantizer.Quantizer`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from oracle.profile.codec import IntArray, width_range
from oracle.profile.float_network import FloatNetwork
from oracle.profile.quantizer import Quantizer
from oracle.profile.reference import trunc_div

#: ONNX opset and IR version of every integer graph the converters write.
OPSET = 17
IR_VERSION = 9


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
            shifts = np.full(w.shape[1], weight_shift(top, wmax))
        else:
            shifts = np.array([weight_shift(float(m), wmax) for m in colmax])
        w_int = np.clip(np.rint(w * np.exp2(shifts)), -wmax, wmax).astype(np.int64)
        b_int = np.rint(b * np.exp2(f + shifts)).astype(np.int64)
        bits.append(f)
        divisor, f = rescale(f, shifts, activation_bits, last)
        layers.append(IntLayer(w_int, b_int.reshape(1, -1), divisor, layer.relu))
    return IntNetwork(tuple(layers), weight_width, tuple(bits))


def rescale(f: int, shifts: npt.NDArray[np.int64], activation_bits: int, last: bool) -> tuple[IntArray | None, int]:
    """After a layer whose output column j is at scale ``2^(f + shifts[j])``: the per-column power-of-two
    divisor ([1, N], None when no column needs one) that brings it to the next layer's ``f_next`` fractional
    bits (at most ``activation_bits``), and ``f_next``. The last layer keeps its scale (no divisor)."""
    if last:
        return None, f
    f_next = int(min(activation_bits, int((f + shifts).min())))
    exps = (f + shifts - f_next).astype(np.int64)
    return ((np.int64(1) << exps).reshape(1, -1) if exps.max() > 0 else None), f_next


def weight_shift(colmax: float, wmax: int) -> int:
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
        producer_name="oracle.profile.converter",  # as the shipped models were built: part of their onnx hash
    )
    onnx.checker.check_model(model)
    return model
