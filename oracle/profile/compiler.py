"""Compiler from an integer-profile ONNX graph to the canonical program.

It validates the graph against ``docs/integer-profile.md`` (supported ops, int64 input and output,
static shapes, integer constants, no external data), folds everything that is constant (Constant
nodes, Cast of initializers, Clip bounds, Reshape targets, ops on constants only), refuses nodes and
initializers that do not reach the output (onnxruntime runs every node of a file, so the file must compute
exactly what the program does), numbers tensors canonically (input 0, constants in first-use order, then op
outputs in node order), picks the narrowest storage width for each constant, and finally runs the
interval analysis. Every rejection is a :class:`ProfileError` naming the offending node. Reading ONNX protos
is :mod:`oracle.profile.onnx_read`; lowering each node to an op is :mod:`oracle.profile.node_lowering`.

The program keeps one op per surviving ONNX node, and :class:`Compilation` records the ONNX tensor
name of every program tensor, so per-op outputs can be read back from onnxruntime for bisection.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import onnx
from onnx import TensorProto

from oracle.errors import ProfileError
from oracle.profile.codec import WIDTHS, IntArray, narrowest_width
from oracle.profile.intervals import analyze
from oracle.profile.node_lowering import NodeLowering, Value
from oracle.profile.onnx_read import load_model, static_shape, type_name
from oracle.profile.program import Constant, Op, Program, commitment, encode

MIN_OPSET = 13
MAX_OPSET = 23


@dataclass(frozen=True)
class Compilation:
    """A compiled program plus the ONNX names behind it (not part of the committed bytes)."""

    program: Program
    node_names: tuple[str, ...]  # ONNX node name of each program op
    tensor_names: tuple[str, ...]  # ONNX tensor name of each program tensor id


class _GraphCompiler:
    """One pass over the ONNX nodes in order; state lives here rather than in module globals."""

    def __init__(self, model: onnx.ModelProto, input_width: int, output_width: int) -> None:
        self.model = model
        self.graph = model.graph
        self.input_width = input_width
        self.output_width = output_width
        self.nodes = NodeLowering(self.graph)
        self.initializers = self.nodes.initializers

    def compile(self) -> Compilation:
        self._check_model()
        input_name = self._bind_input()
        for index, node in enumerate(self.graph.node):
            self.nodes.lower(node, node.name or f"{node.op_type}#{index}({','.join(node.output)})")
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
                f"input {vi.name!r} has element type {type_name(elem)}; EXACT models take int64 "
                "(float models must be converted with `oracle model convert`)",
                node=vi.name,
            )
        self.nodes.env[vi.name] = Value(static_shape(vi, "input"), TensorProto.INT64)
        return str(vi.name)

    def _output(self) -> str:
        if len(self.graph.output) != 1:
            raise ProfileError(f"the model must have exactly one output, found {len(self.graph.output)}")
        vi = self.graph.output[0]
        val = self.nodes.value(vi.name, f"graph output {vi.name!r}")
        if val.dtype != TensorProto.INT64 or vi.type.tensor_type.elem_type != TensorProto.INT64:
            raise ProfileError(f"output {vi.name!r} must be int64", node=vi.name)
        if val.const is not None:
            raise ProfileError(f"output {vi.name!r} does not depend on the input", node=vi.name)
        tt = vi.type.tensor_type
        if tt.HasField("shape"):
            declared = static_shape(vi, "output")
            if declared != val.shape:
                raise ProfileError(
                    f"output {vi.name!r} is declared {list(declared)} but computes {list(val.shape)}",
                    node=vi.name,
                )
        return str(vi.name)

    def _emit(self, input_name: str, output_name: str) -> Compilation:
        producers = {op.output: k for k, op in enumerate(self.nodes.ops)}
        live: set[int] = set()
        stack = [output_name]
        while stack:
            name = stack.pop()
            k = producers.get(name)
            if k is None or k in live:
                continue
            live.add(k)
            stack.extend(self.nodes.ops[k].inputs)
        ops = [op for k, op in enumerate(self.nodes.ops) if k in live]

        ids: dict[str, int] = {input_name: 0}
        names: list[str] = [input_name]
        constants: list[tuple[str, IntArray]] = []
        for op in ops:
            for name in op.inputs:
                val = self.nodes.env[name]
                if val.const is not None and name not in ids:
                    ids[name] = len(names)
                    names.append(name)
                    constants.append((name, val.const))
        for op in ops:
            ids[op.output] = len(names)
            names.append(op.output)
        shapes = tuple(self.nodes.env[n].shape for n in names)
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
    return _GraphCompiler(load_model(model), input_width, output_width).compile()


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
