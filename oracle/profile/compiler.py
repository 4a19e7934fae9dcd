"""Compiler from an integer-profile ONNX graph to the canonical program.

It validates the graph against ``docs/integer-profile.md`` (supported ops, int64 input and output,
static shapes, integer constants, no external data), folds everything that is constant (Constant
nodes, Cast of initializers, Clip bounds, Reshape targets, ops on constants only), refuses nodes and
initializers that do not reach the output (onnxruntime runs every node of a file, so the file must compute
exactly what the program does), numbers tensors canonically (input 0, constants in first-use order, then op
outputs in node order), picks the narrowest storage width for each constant, and finally runs the
interval analysis. Every rejection is a :class:`ProfileError` naming the offending node.

The program keeps one op per surviving ONNX node, and :class:`Compilation` records the ONNX tensor
name of every program tensor, so per-op outputs can be read back from onnxruntime for bisection.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, numpy_helper

from oracle.errors import ProfileError
from oracle.profile.codec import INT64_MAX, INT64_MIN, WIDTHS, IntArray, Shape, narrowest_width, numel, width_range
from oracle.profile.intervals import Bounds, analyze, op_bounds
from oracle.profile.opcodes import MAX_RANK, Opcode, argmax_shape, broadcast_shape, matmul_shape, padded_perm
from oracle.profile.program import Constant, Op, Program, commitment, encode
from oracle.profile.reference import run_op

MIN_OPSET = 13
MAX_OPSET = 23

#: Signed integer element types a non-constant tensor may have, with their widths in bytes.
SIGNED_WIDTH: dict[int, int] = {
    TensorProto.INT8: 1,
    TensorProto.INT16: 2,
    TensorProto.INT32: 4,
    TensorProto.INT64: 8,
}
#: Element types accepted for initializers and Constant nodes (values are range-checked into int64).
CONST_TYPES = frozenset(
    {*SIGNED_WIDTH, TensorProto.UINT8, TensorProto.UINT16, TensorProto.UINT32, TensorProto.UINT64}
)

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


@dataclass(frozen=True)
class Compilation:
    """A compiled program plus the ONNX names behind it (not part of the committed bytes)."""

    program: Program
    node_names: tuple[str, ...]  # ONNX node name of each program op
    tensor_names: tuple[str, ...]  # ONNX tensor name of each program tensor id


@dataclass
class _Val:
    """What the compiler knows about one ONNX tensor."""

    shape: Shape
    dtype: int
    const: IntArray | None = None


@dataclass
class _PendingOp:
    opcode: Opcode
    inputs: list[str]
    output: str
    attrs: tuple[int, ...]
    node: str


def _type_name(elem_type: int) -> str:
    try:
        return str(TensorProto.DataType.Name(elem_type))
    except ValueError:
        return f"type {elem_type}"


def _load(model: onnx.ModelProto | bytes) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        return model
    try:
        return onnx.load_model_from_string(bytes(model))
    except Exception as exc:  # protobuf raises its own DecodeError family
        raise ProfileError(f"not a valid ONNX model: {exc}") from None


def _const_array(tensor: TensorProto, where: str) -> IntArray:
    """Integer tensor proto -> int64 array, refusing external data and values outside int64."""
    if tensor.data_location == TensorProto.EXTERNAL or tensor.external_data:
        raise ProfileError(
            f"tensor {tensor.name!r} uses external data; embed all weights in the ONNX file", node=where
        )
    if tensor.data_type not in CONST_TYPES:
        raise ProfileError(
            f"constant {tensor.name!r} has element type {_type_name(tensor.data_type)}; the integer "
            "profile needs integer constants (convert float models with `oracle model convert`)",
            node=where,
        )
    arr = numpy_helper.to_array(tensor)
    if arr.size and arr.dtype == np.uint64 and int(arr.max()) > INT64_MAX:
        raise ProfileError(f"constant {tensor.name!r} has values above int64 max", node=where)
    return np.ascontiguousarray(arr.astype(np.int64))


def _static_shape(vi: onnx.ValueInfoProto, what: str) -> Shape:
    tt = vi.type.tensor_type
    if not vi.type.HasField("tensor_type") or not tt.HasField("shape"):
        raise ProfileError(f"{what} {vi.name!r} has no static shape", node=vi.name)
    dims: list[int] = []
    for d in tt.shape.dim:
        if not d.HasField("dim_value") or d.dim_value < 1:
            shown = d.dim_param or "?"
            raise ProfileError(
                f"{what} {vi.name!r} has a dynamic shape (dimension {shown!r}); fix every dimension, "
                "batch size included",
                node=vi.name,
            )
        dims.append(int(d.dim_value))
    if len(dims) > MAX_RANK:
        raise ProfileError(f"{what} {vi.name!r} has rank {len(dims)} > {MAX_RANK}", node=vi.name)
    return tuple(dims)


def _attrs(node: onnx.NodeProto) -> dict[str, object]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _reshape_target(src: Shape, target: IntArray, allowzero: int, where: str) -> Shape:
    """ONNX Reshape shape semantics (0 copies a dimension unless allowzero, one -1 is inferred)."""
    dims = [int(d) for d in target.reshape(-1)]
    out: list[int] = []
    infer = -1
    for i, d in enumerate(dims):
        if d == 0 and not allowzero:
            if i >= len(src):
                raise ProfileError(f"Reshape target {dims} copies a missing dimension {i}", node=where)
            out.append(src[i])
        elif d == -1:
            if infer >= 0:
                raise ProfileError(f"Reshape target {dims} has more than one -1", node=where)
            infer = i
            out.append(1)
        elif d < 1:
            raise ProfileError(f"Reshape target {dims} has an empty or negative dimension", node=where)
        else:
            out.append(d)
    if infer >= 0:
        rest = numel(tuple(out))
        if numel(src) % rest:
            raise ProfileError(f"Reshape {list(src)} -> {dims} does not divide evenly", node=where)
        out[infer] = numel(src) // rest
    if numel(tuple(out)) != numel(src):
        raise ProfileError(f"Reshape {list(src)} -> {out} changes the element count", node=where)
    return tuple(out)


class _GraphCompiler:
    """One pass over the ONNX nodes in order; state lives here rather than in module globals."""

    def __init__(self, model: onnx.ModelProto, input_width: int, output_width: int) -> None:
        self.model = model
        self.graph = model.graph
        self.input_width = input_width
        self.output_width = output_width
        self.env: dict[str, _Val] = {}
        self.ops: list[_PendingOp] = []
        self.initializers = {t.name: t for t in self.graph.initializer}

    # -- graph level ------------------------------------------------------------------------------

    def compile(self) -> Compilation:
        self._check_model()
        input_name = self._bind_input()
        for index, node in enumerate(self.graph.node):
            self._node(node, node.name or f"{node.op_type}#{index}({','.join(node.output)})")
        output_name = self._output()
        self._refuse_dead(output_name)
        return self._emit(input_name, output_name)

    def _refuse_dead(self, output_name: str) -> None:
        """Refuse nodes and initializers that do not contribute to the output.

        The program keeps only what reaches the output, but onnxruntime runs every node of the file: a dead
        ``Div(x, -1)`` on int64 input never passes the interval analysis and still crashes onnxruntime on
        ``INT64_MIN`` (SIGFPE). The file an operator runs must compute exactly what the program does.
        """
        producers = {out: k for k, node in enumerate(self.graph.node) for out in node.output if out}
        live: set[int] = set()
        used: set[str] = set()
        stack = [output_name]
        while stack:
            name = stack.pop()
            used.add(name)
            k = producers.get(name)
            if k is None or k in live:
                continue
            live.add(k)
            stack.extend(n for n in self.graph.node[k].input if n)
        for k, node in enumerate(self.graph.node):
            if k not in live:
                where = node.name or f"{node.op_type}#{k}({','.join(node.output)})"
                raise ProfileError(
                    f"{node.op_type} does not contribute to the output (dead node); onnxruntime would still "
                    "run it, so the file would compute more than the program: remove it",
                    node=where,
                )
        for t in self.graph.initializer:
            if t.name not in used:
                raise ProfileError(
                    f"initializer {t.name!r} is not used by any node reaching the output; remove it",
                    node=t.name,
                )

    def _check_model(self) -> None:
        for w, what in ((self.input_width, "input"), (self.output_width, "output")):
            if w not in WIDTHS:
                raise ProfileError(f"{what} width must be one of {WIDTHS} bytes, got {w}")
        for t in self.graph.initializer:
            if t.data_location == TensorProto.EXTERNAL or t.external_data:
                raise ProfileError(
                    f"initializer {t.name!r} uses external data; embed all weights in the ONNX file",
                    node=t.name,
                )
        if len(self.graph.sparse_initializer):
            raise ProfileError(
                "sparse initializers are not supported", node=self.graph.sparse_initializer[0].values.name
            )
        opset = None
        for imp in self.model.opset_import:
            if imp.domain in ("", "ai.onnx"):
                opset = imp.version
        if opset is None or not MIN_OPSET <= opset <= MAX_OPSET:
            raise ProfileError(
                f"default-domain opset {opset} unsupported; export with an opset in {MIN_OPSET}..{MAX_OPSET}"
            )
        try:
            onnx.checker.check_model(self.model)
        except Exception as exc:  # the checker raises ValidationError and friends
            raise ProfileError(f"ONNX checker rejected the model: {exc}") from None

    def _bind_input(self) -> str:
        inputs = [vi for vi in self.graph.input if vi.name not in self.initializers]
        if len(inputs) != 1:
            raise ProfileError(f"the model must have exactly one input, found {len(inputs)}")
        vi = inputs[0]
        elem = vi.type.tensor_type.elem_type
        if elem != TensorProto.INT64:
            raise ProfileError(
                f"input {vi.name!r} has element type {_type_name(elem)}; EXACT models take int64 "
                "(float models must be converted with `oracle model convert`)",
                node=vi.name,
            )
        self.env[vi.name] = _Val(_static_shape(vi, "input"), TensorProto.INT64)
        return str(vi.name)

    def _output(self) -> str:
        if len(self.graph.output) != 1:
            raise ProfileError(f"the model must have exactly one output, found {len(self.graph.output)}")
        vi = self.graph.output[0]
        val = self._get(vi.name, f"graph output {vi.name!r}")
        if val.dtype != TensorProto.INT64 or vi.type.tensor_type.elem_type != TensorProto.INT64:
            raise ProfileError(f"output {vi.name!r} must be int64", node=vi.name)
        if val.const is not None:
            raise ProfileError(f"output {vi.name!r} does not depend on the input", node=vi.name)
        tt = vi.type.tensor_type
        if tt.HasField("shape"):
            declared = _static_shape(vi, "output")
            if declared != val.shape:
                raise ProfileError(
                    f"output {vi.name!r} is declared {list(declared)} but computes {list(val.shape)}",
                    node=vi.name,
                )
        return str(vi.name)

    # -- nodes --------------------------------------------------------------------------------------

    def _get(self, name: str, where: str) -> _Val:
        if name in self.env:
            return self.env[name]
        if name in self.initializers:
            tensor = self.initializers[name]
            arr = _const_array(tensor, where)
            val = _Val(tuple(arr.shape), tensor.data_type, arr)
            if len(val.shape) > MAX_RANK:
                raise ProfileError(f"initializer {name!r} has rank > {MAX_RANK}", node=where)
            self.env[name] = val
            return val
        raise ProfileError(
            f"reads {name!r}, which is not defined earlier (graph not topologically sorted?)", node=where
        )

    def _define(self, name: str, val: _Val, where: str) -> None:
        if name in self.env or name in self.initializers:
            raise ProfileError(f"tensor {name!r} is assigned twice", node=where)
        if len(val.shape) > MAX_RANK:
            raise ProfileError(f"output {name!r} has rank {len(val.shape)} > {MAX_RANK}", node=where)
        if any(d < 1 for d in val.shape):
            raise ProfileError(f"output {name!r} has an empty dimension {list(val.shape)}", node=where)
        self.env[name] = val

    def _node(self, node: onnx.NodeProto, where: str) -> None:
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
        ins = [self._get(n, where) if n else None for n in node.input]
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
                    f"{node.op_type} operand {name!r} is {_type_name(v.dtype)}; every operand must be int64 "
                    "(Cast narrow values back to int64 first)",
                    node=where,
                )
        attrs = _attrs(node)
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
            out = _reshape_target(data.shape, target.const, allowzero, where)
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

    def _reduce(self, node: onnx.NodeProto, vals: list[_Val], attrs: dict[str, object], where: str) -> None:
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
    def _expect_inputs(node: onnx.NodeProto, vals: Sequence[_Val], n: int, where: str) -> None:
        if len(vals) != n:
            raise ProfileError(f"{node.op_type} takes {n} inputs here, got {len(vals)}", node=where)

    def _binary(self, node: onnx.NodeProto, vals: list[_Val], where: str) -> None:
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
            arr = _const_array(attr.t, where)
            dtype = attr.t.data_type
        elif attr.name == "value_int":
            arr, dtype = np.array(attr.i, dtype=np.int64), TensorProto.INT64
        else:
            arr, dtype = np.array(list(attr.ints), dtype=np.int64), TensorProto.INT64
        self._define(node.output[0], _Val(tuple(arr.shape), dtype, arr), where)

    def _clip(self, node: onnx.NodeProto, ins: list[_Val | None], where: str) -> None:
        if not ins or ins[0] is None or len(ins) > 3:
            raise ProfileError("Clip takes X and optional constant min, max", node=where)
        x = ins[0]
        if x.dtype != TensorProto.INT64:
            raise ProfileError(f"Clip operand is {_type_name(x.dtype)}, must be int64", node=where)
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

    def _cast(self, node: onnx.NodeProto, ins: list[_Val | None], where: str) -> None:
        if len(ins) != 1 or ins[0] is None:
            raise ProfileError("Cast takes one input", node=where)
        x = ins[0]
        to = int(_attrs(node).get("to", -1))  # type: ignore[call-overload]
        if to not in SIGNED_WIDTH:
            raise ProfileError(
                f"Cast to {_type_name(to)} is outside the profile (only int8/16/32/64)", node=where
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
                    f"{_type_name(dtype)}",
                    node=where,
                )
            value = run_op(opcode, consts, attrs, out_shape)
            self._define(node.output[0], _Val(out_shape, dtype, value), where)
            return
        self._define(node.output[0], _Val(out_shape, dtype), where)
        self.ops.append(_PendingOp(opcode, inputs, node.output[0], attrs, where))

    # -- emission -----------------------------------------------------------------------------------

    def _emit(self, input_name: str, output_name: str) -> Compilation:
        producers = {op.output: k for k, op in enumerate(self.ops)}
        live: set[int] = set()
        stack = [output_name]
        while stack:
            name = stack.pop()
            k = producers.get(name)
            if k is None or k in live:
                continue
            live.add(k)
            stack.extend(self.ops[k].inputs)
        ops = [op for k, op in enumerate(self.ops) if k in live]

        ids: dict[str, int] = {input_name: 0}
        names: list[str] = [input_name]
        constants: list[tuple[str, IntArray]] = []
        for op in ops:
            for name in op.inputs:
                val = self.env[name]
                if val.const is not None and name not in ids:
                    ids[name] = len(names)
                    names.append(name)
                    constants.append((name, val.const))
        for op in ops:
            ids[op.output] = len(names)
            names.append(op.output)
        shapes = tuple(self.env[n].shape for n in names)
        program = Program(
            input_width=self.input_width,
            output_width=self.output_width,
            shapes=shapes,
            input_id=0,
            output_id=ids[output_name],
            constants=tuple(Constant(ids[n], narrowest_width(v), v) for n, v in constants),
            ops=tuple(
                Op(op.opcode, tuple(ids[i] for i in op.inputs), ids[op.output], op.attrs) for op in ops
            ),
        )
        node_names = tuple(op.node for op in ops)
        analyze(program, node_names)
        return Compilation(program, node_names, tuple(names))


def compile_detailed(model: onnx.ModelProto | bytes, input_width: int, output_width: int) -> Compilation:
    """Compile and also return the ONNX names of ops and tensors (for error reports and bisection)."""
    return _GraphCompiler(_load(model), input_width, output_width).compile()


def compile_onnx(model: onnx.ModelProto | bytes, input_width: int, output_width: int) -> Program:
    """Validate an integer-profile ONNX model and compile it into its canonical program."""
    return compile_detailed(model, input_width, output_width).program


def commitment_of_file(
    path: str | os.PathLike[str], input_width: int, output_width: int
) -> tuple[bytes, str]:
    """Program bytes and ``0x``-prefixed keccak256 commitment of an ONNX file, as the registry stores."""
    with open(path, "rb") as fh:
        data = fh.read()
    program_bytes = encode(compile_onnx(data, input_width, output_width))
    return program_bytes, "0x" + commitment(program_bytes).hex()
