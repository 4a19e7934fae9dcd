"""Lowering of ONNX nodes to program ops, one node at a time, for :mod:`oracle.profile.compiler`.

:class:`NodeLowering` checks each node against the integer profile (supported ops and attributes, int64
operands, shapes), folds ops whose operands are all constants into new constants (range-checked against the
declared type), and records every other op with ONNX tensor names; the compiler numbers tensors afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto

from oracle.errors import ProfileError
from oracle.profile.codec import INT64_MAX, INT64_MIN, IntArray, Shape, numel, width_range
from oracle.profile.intervals import Bounds, op_bounds
from oracle.profile.onnx_read import SIGNED_WIDTH, const_array, node_attrs, reshape_target, type_name
from oracle.profile.opcodes import MAX_RANK, Opcode, argmax_shape, broadcast_shape, matmul_shape, padded_perm
from oracle.profile.reference import run_op

_BINARY = {
    "Add": Opcode.ADD,
    "Sub": Opcode.SUB,
    "Mul": Opcode.MUL,
    "Div": Opcode.DIV,
    "Max": Opcode.MAX,
    "Min": Opcode.MIN,
}
_ALLOWED_ATTRS: dict[str, frozenset[str]] = {
    **{op: frozenset() for op in _BINARY},
    "MatMul": frozenset(),
    "Identity": frozenset(),
    "Clip": frozenset(),
    "Reshape": frozenset({"allowzero"}),
    "Flatten": frozenset({"axis"}),
    "Transpose": frozenset({"perm"}),
    "ArgMax": frozenset({"axis", "keepdims", "select_last_index"}),
    "Cast": frozenset({"to", "saturate"}),
    "Constant": frozenset({"value", "value_int", "value_ints"}),
    "Gather": frozenset({"axis"}),
    "ReduceSum": frozenset({"axes", "keepdims", "noop_with_empty_axes"}),
    "ReduceMax": frozenset({"axes", "keepdims", "noop_with_empty_axes"}),
}
_REDUCE = {"ReduceSum": Opcode.REDUCE_SUM, "ReduceMax": Opcode.REDUCE_MAX}
SUPPORTED_OPS = tuple(sorted(_ALLOWED_ATTRS))


@dataclass
class Value:
    """What the compiler knows about one ONNX tensor."""

    shape: Shape
    dtype: int
    const: IntArray | None = None


@dataclass
class PendingOp:
    """An op that reads and writes ONNX tensor names (numbered by the compiler once the graph is walked)."""

    opcode: Opcode
    inputs: list[str]
    output: str
    attrs: tuple[int, ...]
    node: str


class NodeLowering:
    """The compiler's state while it walks the nodes: what it knows of each ONNX tensor, and the ops so far."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.initializers = {t.name: t for t in graph.initializer}
        self.env: dict[str, Value] = {}
        self.ops: list[PendingOp] = []

    def value(self, name: str, where: str) -> Value:
        if name in self.env:
            return self.env[name]
        if name in self.initializers:
            tensor = self.initializers[name]
            arr = const_array(tensor, where)
            val = Value(tuple(arr.shape), tensor.data_type, arr)
            if len(val.shape) > MAX_RANK:
                raise ProfileError(f"initializer {name!r} has rank > {MAX_RANK}", node=where)
            self.env[name] = val
            return val
        raise ProfileError(
            f"reads {name!r}, which is not defined earlier (graph not topologically sorted?)", node=where
        )

    def _define(self, name: str, val: Value, where: str) -> None:
        if name in self.env or name in self.initializers:
            raise ProfileError(f"tensor {name!r} is assigned twice", node=where)
        if len(val.shape) > MAX_RANK:
            raise ProfileError(f"output {name!r} has rank {len(val.shape)} > {MAX_RANK}", node=where)
        if any(d < 1 for d in val.shape):
            raise ProfileError(f"output {name!r} has an empty dimension {list(val.shape)}", node=where)
        self.env[name] = val

    def lower(self, node: onnx.NodeProto, where: str) -> None:
        if node.domain not in ("", "ai.onnx"):
            raise ProfileError(
                f"op {node.domain}.{node.op_type} is not in the integer profile (supported: "
                f"{', '.join(SUPPORTED_OPS)})",
                node=where,
            )
        allowed = _ALLOWED_ATTRS.get(node.op_type)
        if allowed is None:
            raise ProfileError(
                f"op {node.op_type} is not in the integer profile (supported: {', '.join(SUPPORTED_OPS)})",
                node=where,
            )
        for a in node.attribute:
            if a.name not in allowed:
                raise ProfileError(f"{node.op_type} attribute {a.name!r} is not supported", node=where)
            if a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS):
                raise ProfileError("subgraphs are not supported", node=where)
        if len(node.output) != 1 or not node.output[0]:
            raise ProfileError(f"{node.op_type} must have exactly one output", node=where)
        if node.op_type == "Constant":
            self._constant(node, where)
            return
        ins = [self.value(n, where) if n else None for n in node.input]
        if node.op_type == "Clip":
            self._clip(node, ins, where)
            return
        if node.op_type == "Cast":
            self._cast(node, ins, where)
            return
        if any(v is None for v in ins):
            raise ProfileError(f"{node.op_type} has an empty input name", node=where)
        vals = [v for v in ins if v is not None]
        for name, v in zip(node.input, vals, strict=True):
            if v.dtype != TensorProto.INT64:
                raise ProfileError(
                    f"{node.op_type} operand {name!r} is {type_name(v.dtype)}; every operand must be int64 "
                    "(Cast narrow values back to int64 first)",
                    node=where,
                )
        attrs = node_attrs(node)
        op = node.op_type
        out: Shape
        if op in _BINARY:
            self._binary(node, vals, where)
        elif op == "MatMul":
            self._expect_inputs(node, vals, 2, where)
            a, b = vals
            mm = matmul_shape(a.shape, b.shape)
            if mm is None:
                raise ProfileError(
                    f"MatMul takes [M,K]x[K,N], [B,M,K]x[K,N] or [B,M,K]x[B,K,N], got {list(a.shape)} x "
                    f"{list(b.shape)}; reshape the operands to one of these",
                    node=where,
                )
            self._emit_op(node, Opcode.MATMUL, [node.input[0], node.input[1]], (), mm, where)
        elif op == "Gather":
            self._expect_inputs(node, vals, 2, where)
            data, idx = vals
            axis = int(attrs.get("axis", 0))  # type: ignore[call-overload]
            if axis not in (0, -len(data.shape)) or not data.shape:
                raise ProfileError(f"Gather is axis 0 only, got axis {axis}; Transpose the data first", node=where)
            out = idx.shape + data.shape[1:]
            if len(out) > MAX_RANK:
                raise ProfileError(f"Gather output rank {len(out)} > {MAX_RANK}", node=where)
            self._emit_op(node, Opcode.GATHER, [node.input[0], node.input[1]], (), out, where)
        elif op in _REDUCE:
            self._reduce(node, vals, attrs, where)
        elif op == "Identity":
            self._expect_inputs(node, vals, 1, where)
            self._emit_op(node, Opcode.IDENTITY, [node.input[0]], (), vals[0].shape, where)
        elif op == "Transpose":
            self._expect_inputs(node, vals, 1, where)
            shape = vals[0].shape
            perm = [int(p) for p in attrs.get("perm", range(len(shape))[::-1])]  # type: ignore[attr-defined]
            if sorted(perm) != list(range(len(shape))):
                raise ProfileError(f"Transpose perm {perm} is not a permutation of rank {len(shape)}", node=where)
            out = tuple(shape[p] for p in perm)
            if perm == sorted(perm):
                self._emit_op(node, Opcode.IDENTITY, [node.input[0]], (), shape, where)
            elif perm == [1, 0]:
                self._emit_op(node, Opcode.TRANSPOSE, [node.input[0]], (), out, where)
            else:
                self._emit_op(node, Opcode.TRANSPOSE_ND, [node.input[0]], padded_perm(perm), out, where)
        elif op == "Flatten":
            self._expect_inputs(node, vals, 1, where)
            shape = vals[0].shape
            axis = int(attrs.get("axis", 1))  # type: ignore[call-overload]
            if axis < 0:
                axis += len(shape)
            if not 0 <= axis <= len(shape):
                raise ProfileError(f"Flatten axis out of range for rank {len(shape)}", node=where)
            out = (numel(shape[:axis]), numel(shape[axis:]))
            self._emit_op(node, Opcode.FLATTEN, [node.input[0]], (), out, where)
        elif op == "Reshape":
            self._expect_inputs(node, vals, 2, where)
            data, target = vals
            if target.const is None:
                raise ProfileError("Reshape target shape must be a constant", node=where)
            allowzero = int(attrs.get("allowzero", 0))  # type: ignore[call-overload]
            out = reshape_target(data.shape, target.const, allowzero, where)
            self._emit_op(node, Opcode.RESHAPE, [node.input[0]], (), out, where)
        elif op == "ArgMax":
            self._expect_inputs(node, vals, 1, where)
            shape = vals[0].shape
            axis = int(attrs.get("axis", 0))  # type: ignore[call-overload]
            if axis < 0:
                axis += len(shape)
            if not 0 <= axis < len(shape):
                raise ProfileError(f"ArgMax axis out of range for shape {list(shape)}", node=where)
            keepdims = int(attrs.get("keepdims", 1))  # type: ignore[call-overload]
            last = int(attrs.get("select_last_index", 0))  # type: ignore[call-overload]
            if keepdims not in (0, 1) or last not in (0, 1):
                raise ProfileError("ArgMax keepdims and select_last_index must be 0 or 1", node=where)
            out = argmax_shape(shape, axis, keepdims)
            self._emit_op(node, Opcode.ARGMAX, [node.input[0]], (axis, keepdims, last), out, where)
        else:  # pragma: no cover - _ALLOWED_ATTRS and this dispatch list the same ops
            raise ProfileError(f"op {op} is not implemented", node=where)

    def _reduce(self, node: onnx.NodeProto, vals: list[Value], attrs: dict[str, object], where: str) -> None:
        """ReduceSum / ReduceMax over exactly one axis (axes as attribute or as constant input, by opset)."""
        if not 1 <= len(vals) <= 2:
            raise ProfileError(f"{node.op_type} takes data and optional axes", node=where)
        shape = vals[0].shape
        if len(vals) == 2:
            if vals[1].const is None:
                raise ProfileError(f"{node.op_type} axes must be a constant", node=where)
            axes = [int(a) for a in vals[1].const.reshape(-1)]
        else:
            axes = [int(a) for a in attrs.get("axes", [])]  # type: ignore[attr-defined]
        if len(axes) != 1 or not -len(shape) <= axes[0] < len(shape):
            raise ProfileError(
                f"{node.op_type} must reduce exactly one axis of {list(shape)}, got axes {axes}; reduce one "
                "axis per node",
                node=where,
            )
        axis = axes[0] % len(shape)
        keepdims = int(attrs.get("keepdims", 1))  # type: ignore[call-overload]
        if keepdims not in (0, 1):
            raise ProfileError(f"{node.op_type} keepdims must be 0 or 1", node=where)
        out = argmax_shape(shape, axis, keepdims)
        self._emit_op(node, _REDUCE[node.op_type], [node.input[0]], (axis, keepdims), out, where)

    @staticmethod
    def _expect_inputs(node: onnx.NodeProto, vals: Sequence[Value], n: int, where: str) -> None:
        if len(vals) != n:
            raise ProfileError(f"{node.op_type} takes {n} inputs here, got {len(vals)}", node=where)

    def _binary(self, node: onnx.NodeProto, vals: list[Value], where: str) -> None:
        opcode = _BINARY[node.op_type]
        if node.op_type in ("Max", "Min") and len(vals) == 1:
            self._emit_op(node, Opcode.IDENTITY, [node.input[0]], (), vals[0].shape, where)
            return
        if len(vals) != 2:
            raise ProfileError(f"{node.op_type} must have exactly 2 inputs, got {len(vals)}", node=where)
        a, b = vals
        out = broadcast_shape(a.shape, b.shape)
        if out is None:
            raise ProfileError(f"shapes {list(a.shape)} and {list(b.shape)} do not broadcast", node=where)
        if opcode is Opcode.DIV and b.const is not None and not np.all(b.const != 0):
            # A computed divisor is checked by the interval analysis (it must provably exclude 0).
            raise ProfileError("Div divisor has a zero element", node=where)
        self._emit_op(node, opcode, [node.input[0], node.input[1]], (), out, where)

    def _constant(self, node: onnx.NodeProto, where: str) -> None:
        if len(node.attribute) != 1:
            raise ProfileError("Constant needs exactly one of value, value_int, value_ints", node=where)
        attr = node.attribute[0]
        if attr.name == "value":
            arr = const_array(attr.t, where)
            dtype = attr.t.data_type
        elif attr.name == "value_int":
            arr, dtype = np.array(attr.i, dtype=np.int64), TensorProto.INT64
        else:
            arr, dtype = np.array(list(attr.ints), dtype=np.int64), TensorProto.INT64
        self._define(node.output[0], Value(tuple(arr.shape), dtype, arr), where)

    def _clip(self, node: onnx.NodeProto, ins: list[Value | None], where: str) -> None:
        if not ins or ins[0] is None or len(ins) > 3:
            raise ProfileError("Clip takes X and optional constant min, max", node=where)
        x = ins[0]
        if x.dtype != TensorProto.INT64:
            raise ProfileError(f"Clip operand is {type_name(x.dtype)}, must be int64", node=where)
        bounds = [INT64_MIN, INT64_MAX]
        for k, v in enumerate(ins[1:]):
            if v is None:
                continue
            if v.const is None or v.const.size != 1:
                raise ProfileError("Clip min and max must be constant scalars", node=where)
            bounds[k] = int(v.const.reshape(-1)[0])
        if bounds[0] > bounds[1]:
            raise ProfileError(f"Clip min {bounds[0]} > max {bounds[1]}", node=where)
        self._emit_op(node, Opcode.CLIP, [node.input[0]], (bounds[0], bounds[1]), x.shape, where)

    def _cast(self, node: onnx.NodeProto, ins: list[Value | None], where: str) -> None:
        if len(ins) != 1 or ins[0] is None:
            raise ProfileError("Cast takes one input", node=where)
        x = ins[0]
        to = int(node_attrs(node).get("to", -1))  # type: ignore[call-overload]
        if to not in SIGNED_WIDTH:
            raise ProfileError(
                f"Cast to {type_name(to)} is outside the profile (only int8/16/32/64)", node=where
            )
        self._emit_op(node, Opcode.CAST, [node.input[0]], (SIGNED_WIDTH[to],), x.shape, where, dtype=to)

    def _emit_op(
        self,
        node: onnx.NodeProto,
        opcode: Opcode,
        inputs: list[str],
        attrs: tuple[int, ...],
        out_shape: Shape,
        where: str,
        dtype: int = TensorProto.INT64,
    ) -> None:
        """Record the op, or fold it into a constant when all of its operands are constants."""
        vals = [self.env[n] for n in inputs]
        if all(v.const is not None for v in vals):
            consts = [v.const for v in vals if v.const is not None]
            bounds = op_bounds(opcode, [Bounds.point(c) for c in consts], attrs, out_shape)
            lo, hi = width_range(SIGNED_WIDTH[dtype])
            if bounds.min < lo or bounds.max > hi:
                raise ProfileError(
                    f"{opcode.name} on constants gives values [{bounds.min}, {bounds.max}] outside "
                    f"{type_name(dtype)}",
                    node=where,
                )
            value = run_op(opcode, consts, attrs, out_shape)
            self._define(node.output[0], Value(out_shape, dtype, value), where)
            return
        self._define(node.output[0], Value(out_shape, dtype), where)
        self.ops.append(PendingOp(opcode, inputs, node.output[0], attrs, where))
