"""One source of truth for ``EXACT`` models: bind an ONNX file to the committed program, then run the program.

For an ``EXACT`` model the program stored on-chain is the specification: it is what the Solidity verifier
re-executes in a challenge. An ONNX file and a program commitment are two independent registry fields, so
nothing but this module relates them. Every off-chain party goes through it:

- the CLI refuses to register a file with a program it does not compile to (:func:`bind_exact`);
- the worker serves an ``EXACT`` model only after :func:`bind_exact` (run in a limited child process by
  :func:`oracle.runtime.binder.bind_in_child`) proved that the file compiles to exactly the registered
  commitment and to the bytes of the chain's program chunks, and it then answers with :class:`ProgramRunner`
  over that program, never with onnxruntime: the answer *is* the program's answer by construction;
- the challenger uses the same binding to decide whether its onnxruntime fast path may be trusted.

Why run the program rather than the file: compile equality proves the file and the program are the same
model, but onnxruntime is still a different implementation. It has shipped int64 kernels that depend on the
CPU (the AVX Max/Min bug in ``docs/integer-profile.md``), it runs every node of a file, and a result that
differs from the program's in one input costs the operator its bond. :class:`ProgramRunner` uses the same
numpy int64 operations as the reference interpreter (``oracle.profile.reference``) with per-op dispatch,
shape checks and constant decoding done once at load time; ``tests/profile/test_binding.py`` checks it
against the reference bit for bit, and ``bench/binding_bench.py`` measures its cost against bare
onnxruntime (``worker.exact_answer_overhead``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from oracle.errors import OracleError
from oracle.profile.codec import INT64_MAX, INT64_MIN, WIDTHS, IntArray, numel, width_range
from oracle.profile.opcodes import Opcode
from oracle.profile.program import Program, commitment, encode
from oracle.profile.reference import run_op, trunc_div

#: Default limits of the compiler child (a hostile file may try to fold constants into a huge tensor).
BIND_TIMEOUT = 120.0
BIND_MEMORY = 2 * 1024**3


class BindingError(OracleError, ValueError):
    """An ONNX file and a registered program are not the same model (or the file cannot be compiled)."""


class BindingLimitExceeded(BindingError):
    """Compiling the file hit the child's time or memory limit, or the child died: not a verdict on the file
    (a frozen or overloaded machine can cause it too), so callers may try again later."""


@functools.cache
def compiler_version() -> str:
    """Names the compiler that produced a binding verdict: the package version and a keccak256 of every source
    file of :mod:`oracle.profile` (the compiler, the program format, the interval analysis). Any change to
    them gives a new version, so a cached verdict (the worker keeps them across restarts) never outlives the
    code that reached it."""
    from importlib.metadata import PackageNotFoundError, version
    from pathlib import Path

    from eth_utils.crypto import keccak

    try:
        pkg = version("verifiable-inference-oracle")
    except PackageNotFoundError:
        pkg = "0"
    here = Path(__file__).resolve().parent
    digest = keccak(b"".join(keccak(p.read_bytes()) for p in sorted(here.glob("*.py"))))
    return f"{pkg}+{digest.hex()[:16]}"


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


@dataclass(frozen=True)
class Binding:
    """A proven pair: the ONNX file compiles to ``program_bytes``, whose keccak256 is the commitment."""

    program_bytes: bytes
    commitment: bytes


def io_widths(onnx_bytes: bytes, input_length: int, output_length: int) -> tuple[int, int]:
    """Input and output element widths implied by the registered byte lengths and the file's static shapes."""
    import onnx

    try:
        proto = onnx.load_model_from_string(onnx_bytes)
    except Exception as exc:  # protobuf raises its own DecodeError family
        raise BindingError(f"not a loadable ONNX file ({type(exc).__name__})") from None
    graph = proto.graph
    inits = {t.name for t in graph.initializer}
    inputs = [vi for vi in graph.input if vi.name not in inits]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise BindingError(f"an EXACT model has exactly one input and one output (the file has {len(inputs)} "
                           f"inputs and {len(graph.output)} outputs)")
    widths = []
    for vi, length, what in ((inputs[0], input_length, "input"), (graph.output[0], output_length, "output")):
        dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        if not vi.type.tensor_type.HasField("shape") or any(d < 1 for d in dims):
            raise BindingError(f"{what} {vi.name!r} has no static shape; fix every dimension (batch included)")
        n = numel(tuple(dims))
        width = length // n if length % n == 0 else 0
        if width not in WIDTHS:
            raise BindingError(f"registered {what} length {length} is not {n} elements x 1, 2, 4 or 8 bytes "
                               f"for the file's {what} shape {dims}")
        widths.append(width)
    return widths[0], widths[1]


def bind_exact(onnx_bytes: bytes, *, program_commitment: bytes, input_length: int, output_length: int,
               onchain_program: bytes | None = None) -> Binding:
    """Prove that ``onnx_bytes`` compiles to exactly the committed program, or raise :class:`BindingError`.

    Checks, in order: the file is an integer-profile graph with nothing the program lacks (the compiler
    refuses dead nodes, unused initializers and extra outputs); the widths implied by the registered lengths
    are legal; ``keccak256(compile(file)) == program_commitment``; and, when given, the chain's program
    chunks are byte-for-byte the compiled program. Every message is one line naming the mismatch.
    """
    from oracle.profile.compiler import compile_onnx

    input_width, output_width = io_widths(onnx_bytes, input_length, output_length)
    try:
        program = compile_onnx(onnx_bytes, input_width, output_width)
    except OracleError as exc:
        raise BindingError(f"the ONNX file is outside the integer profile: {exc}") from None
    except MemoryError:
        raise BindingError("compiling the ONNX file ran out of memory (constant folding too large)") from None
    program_bytes = encode(program)
    digest = commitment(program_bytes)
    if digest != program_commitment:
        raise BindingError(f"the ONNX file compiles to program {_hex(digest)} ({len(program_bytes)} bytes) but the "
                           f"registered programCommitment is {_hex(program_commitment)}: the file and the "
                           "program are different models")
    if onchain_program is not None and onchain_program != program_bytes:
        raise BindingError(f"the chain's program chunks ({len(onchain_program)} bytes, keccak256 "
                           f"{_hex(commitment(onchain_program))}) differ from the compiled file's program "
                           f"{_hex(digest)}: the on-chain program changed after registration")
    if numel(program.input_shape) * input_width != input_length or \
            numel(program.output_shape) * output_width != output_length:
        raise BindingError("the program's I/O shapes do not match the registered lengths")
    return Binding(program_bytes, digest)


def read_onchain_program(client: Any, model_id: int) -> bytes:
    """The program bytes the chain's verifier would execute for ``model_id`` (its data chunks, in order).

    The one place off-chain code knows the chunk layout (a data contract's code is a STOP byte then the
    bytes); the worker, the challenger and the binding all read the chain's program through it.
    """
    from web3 import Web3

    w3 = client.w3
    return b"".join(bytes(w3.eth.get_code(Web3.to_checksum_address(c)))[1:]
                    for c in client.program_chunks(model_id))


# ---------------------------------------------------------------------------------------------- runner
Step = Callable[[list[Any]], None]


class ProgramRunner:
    """Runs a program exactly as :func:`oracle.profile.reference.run` does, with the dispatch done once.

    Every op becomes a closure over tensor slots; constants are bound at load time; a MatMul by a constant
    with one row multiplies the transposed (contiguous) weights by the row vector, which numpy runs about
    twice as fast. Integer results do not depend on summation order: numpy's int64 arithmetic wraps modulo
    2^64 and the interval analysis proved every true result lies in int64, so any order gives the true value.
    """

    def __init__(self, program: Program) -> None:
        self.program = program
        self._slots: list[Any] = [None] * len(program.shapes)
        for c in program.constants:
            self._slots[c.tensor_id] = c.values
        consts = {c.tensor_id: c.values for c in program.constants}
        self._steps: list[Step] = [self._compile_op(op.opcode, op.inputs, op.output, op.attrs, consts)
                                   for op in program.ops]
        self._in_shape = program.input_shape
        self._in_width = program.input_width
        self._in_len = numel(program.input_shape) * program.input_width
        self._in_dtype = np.dtype(f">i{program.input_width}")
        self._input_id = program.input_id
        self._output_id = program.output_id
        self._out_dtype = np.dtype(f">i{program.output_width}")
        self._out_lo, self._out_hi = width_range(program.output_width)

    def _compile_op(self, opcode: Opcode, ins: Sequence[int], out: int, attrs: Sequence[int],
                    consts: dict[int, IntArray]) -> Step:
        shape = self.program.shapes[out]
        code = Opcode(opcode)
        if code is Opcode.MATMUL:
            a, b = ins
            if b in consts and self.program.shapes[a][0] == 1 and len(self.program.shapes[a]) == len(shape) == 2:
                bt = np.ascontiguousarray(consts[b].T)
                return lambda env: env.__setitem__(out, (bt @ env[a][0]).reshape(shape))
            return lambda env: env.__setitem__(out, np.matmul(env[a], env[b]))
        binary: dict[Opcode, Callable[..., Any]] = {
            Opcode.ADD: np.add, Opcode.SUB: np.subtract, Opcode.MUL: np.multiply,
            Opcode.MAX: np.maximum, Opcode.MIN: np.minimum}
        if code in binary:
            fn, (a, b) = binary[code], ins  # Program validation proved the broadcast gives ``shape``
            return lambda env: env.__setitem__(out, fn(env[a], env[b]))
        if code is Opcode.DIV:
            a, b = ins
            return lambda env: env.__setitem__(out, trunc_div(env[a], env[b]))
        if code in (Opcode.GATHER, Opcode.REDUCE_SUM, Opcode.REDUCE_MAX, Opcode.TRANSPOSE_ND):
            operands, attributes = tuple(ins), tuple(attrs)
            return lambda env: env.__setitem__(out, run_op(code, [env[t] for t in operands], attributes, shape))
        (x,) = ins
        if code is Opcode.CLIP:
            lo, hi = int(attrs[0]), int(attrs[1])
            if lo == INT64_MIN and hi == INT64_MAX:
                return lambda env: env.__setitem__(out, env[x])
            if lo == INT64_MIN:
                return lambda env: env.__setitem__(out, np.minimum(env[x], hi))
            if hi == INT64_MAX:
                return lambda env: env.__setitem__(out, np.maximum(env[x], lo))
            return lambda env: env.__setitem__(out, np.minimum(np.maximum(env[x], lo), hi))
        if code is Opcode.TRANSPOSE:
            return lambda env: env.__setitem__(out, np.ascontiguousarray(env[x].T))
        if code is Opcode.ARGMAX:
            axis, _keepdims, last = (int(v) for v in attrs)
            n = self.program.shapes[x][axis]
            if last:
                return lambda env: env.__setitem__(
                    out, ((n - 1) - np.argmax(np.flip(env[x], axis=axis), axis=axis)).astype(np.int64).reshape(shape))
            return lambda env: env.__setitem__(out, np.argmax(env[x], axis=axis).astype(np.int64).reshape(shape))
        # RESHAPE, FLATTEN, IDENTITY, CAST: values unchanged, row-major.
        return lambda env: env.__setitem__(out, env[x].reshape(shape))

    def run(self, x: IntArray) -> IntArray:
        """The program's output tensor for the input tensor ``x`` (already checked to fit the input width)."""
        env = list(self._slots)
        env[self._input_id] = x
        for step in self._steps:
            step(env)
        return np.asarray(env[self._output_id], dtype=np.int64)

    def run_bytes(self, data: bytes) -> bytes:
        """Canonical input bytes in, canonical output bytes out: exactly what an attestation commits to."""
        if len(data) != self._in_len:
            raise BindingError(f"input is {len(data)} bytes, the program takes {self._in_len}")
        x = np.frombuffer(data, dtype=self._in_dtype).astype(np.int64).reshape(self._in_shape)
        y = self.run(x)
        # Total semantics (docs/integer-profile.md): an output that does not fit the width saturates, exactly
        # as in the reference and the verifier (never for compiled programs: the analysis proved it fits).
        return np.clip(y, self._out_lo, self._out_hi).astype(self._out_dtype).tobytes()
