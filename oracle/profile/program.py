"""The compiled program of an integer-profile model and its canonical byte encoding.

A program is what the model registry commits to (``keccak256(encode(program))``) and what the Solidity
verifier re-executes, so everything here follows ``docs/integer-profile.md`` to the byte. A
:class:`Program` is validated structurally when it is built (ids in range, static single assignment,
operand arity, shapes consistent with each op by :func:`oracle.profile.opcodes.check_op_shape`), so a decoded
program is always well formed; whether its values stay inside int64 is the separate interval analysis in
``oracle.profile.intervals``. The opcodes live in :mod:`oracle.profile.opcodes`, the tensor codec in
:mod:`oracle.profile.codec`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np
from eth_utils.crypto import keccak

from oracle.errors import ProfileError
from oracle.profile.codec import INT64_MAX, INT64_MIN, WIDTHS, IntArray, Shape, numel, width_range
from oracle.profile.opcodes import ARITY, MAX_RANK, Opcode, check_op_shape

MAGIC = 0x494F5031  # "IOP1"
MAX_COUNT = 0xFFFF  # u16 counts and ids
MAX_DIM = 0xFFFFFFFF  # u32 dims


# --------------------------------------------------------------------------------------------------
# Program data model
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Constant:
    """A constant tensor (weights, biases, divisors) and the width it is stored with on chain."""

    tensor_id: int
    width: int
    values: IntArray = field(repr=False)

    def __post_init__(self) -> None:
        values = np.array(self.values, dtype=np.int64, copy=True)
        values.flags.writeable = False
        object.__setattr__(self, "values", values)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Constant):
            return NotImplemented
        return (
            self.tensor_id == other.tensor_id
            and self.width == other.width
            and self.values.shape == other.values.shape
            and bool(np.array_equal(self.values, other.values))
        )

    def __hash__(self) -> int:
        return hash((self.tensor_id, self.width, self.values.shape, self.values.tobytes()))


@dataclass(frozen=True)
class Op:
    """One operation: reads earlier tensors, writes a fresh one (static single assignment)."""

    opcode: Opcode
    inputs: tuple[int, ...]
    output: int
    attrs: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "opcode", Opcode(self.opcode))
        except ValueError:
            raise ProfileError(f"unknown opcode {self.opcode}") from None
        object.__setattr__(self, "inputs", tuple(int(i) for i in self.inputs))
        object.__setattr__(self, "attrs", tuple(int(a) for a in self.attrs))


@dataclass(frozen=True)
class Program:
    """A validated integer-profile program; building one checks every structural rule of the format."""

    input_width: int
    output_width: int
    shapes: tuple[Shape, ...]
    input_id: int
    output_id: int
    constants: tuple[Constant, ...]
    ops: tuple[Op, ...]

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def input_shape(self) -> Shape:
        """Shape of the model input tensor."""
        return self.shapes[self.input_id]

    @property
    def output_shape(self) -> Shape:
        """Shape of the model output tensor."""
        return self.shapes[self.output_id]

    def constant_map(self) -> dict[int, Constant]:
        """Constants by tensor id."""
        return {c.tensor_id: c for c in self.constants}


def _fail(reason: str, where: str | None = None) -> ProfileError:
    return ProfileError(reason, node=where)


def _validate(p: Program) -> None:
    """Enforce every rule of the format so decoded programs need no further structural checks."""
    for name, width in (("inputWidth", p.input_width), ("outputWidth", p.output_width)):
        if width not in WIDTHS:
            raise _fail(f"{name} must be one of {WIDTHS}, got {width}")
    n = len(p.shapes)
    if n == 0 or n > MAX_COUNT:
        raise _fail(f"numTensors must be in 1..{MAX_COUNT}, got {n}")
    for tid, shape in enumerate(p.shapes):
        if len(shape) > MAX_RANK:
            raise _fail(f"tensor {tid} has rank {len(shape)} > {MAX_RANK}")
        if any(not (1 <= d <= MAX_DIM) for d in shape):
            raise _fail(f"tensor {tid} has a dimension outside 1..{MAX_DIM}: {list(shape)}")
    for name, tid in (("inputId", p.input_id), ("outputId", p.output_id)):
        if not 0 <= tid < n:
            raise _fail(f"{name} {tid} is not a tensor id (numTensors={n})")
    if len(p.constants) > MAX_COUNT or len(p.ops) > MAX_COUNT:
        raise _fail("too many constants or ops for u16 counts")

    defined: dict[int, str] = {p.input_id: "input"}
    consts: dict[int, Constant] = {}
    for c in p.constants:
        if not 0 <= c.tensor_id < n:
            raise _fail(f"constant tensor id {c.tensor_id} out of range (numTensors={n})")
        if c.tensor_id in defined:
            raise _fail(f"tensor {c.tensor_id} defined twice (constant and {defined[c.tensor_id]})")
        if c.width not in WIDTHS:
            raise _fail(f"constant {c.tensor_id} has storage width {c.width}, not one of {WIDTHS}")
        if c.values.shape != p.shapes[c.tensor_id]:
            raise _fail(
                f"constant {c.tensor_id} has shape {list(c.values.shape)}, "
                f"tensor table says {list(p.shapes[c.tensor_id])}"
            )
        lo, hi = width_range(c.width)
        if c.values.size and (int(c.values.min()) < lo or int(c.values.max()) > hi):
            raise _fail(f"constant {c.tensor_id} has values outside its {c.width}-byte storage width")
        defined[c.tensor_id] = "constant"
        consts[c.tensor_id] = c

    for index, op in enumerate(p.ops):
        where = f"op {index}"
        try:
            opcode = Opcode(op.opcode)
        except ValueError:
            raise _fail(f"unknown opcode {op.opcode}", where) from None
        n_in, n_attr = ARITY[opcode]
        if len(op.inputs) != n_in or len(op.attrs) != n_attr:
            raise _fail(
                f"{opcode.name} takes {n_in} inputs and {n_attr} attributes, "
                f"got {len(op.inputs)} and {len(op.attrs)}",
                where,
            )
        for tid in op.inputs:
            if not 0 <= tid < n:
                raise _fail(f"input id {tid} out of range (numTensors={n})", where)
            if tid not in defined:
                raise _fail(f"reads tensor {tid} before it is defined", where)
        if not 0 <= op.output < n:
            raise _fail(f"output id {op.output} out of range (numTensors={n})", where)
        if op.output in defined:
            raise _fail(f"output tensor {op.output} already defined ({defined[op.output]})", where)
        for a in op.attrs:
            if not INT64_MIN <= a <= INT64_MAX:
                raise _fail(f"attribute {a} does not fit i64", where)
        check_op_shape(opcode, [p.shapes[t] for t in op.inputs], op.attrs, p.shapes[op.output], where)
        if opcode is Opcode.DIV:
            # A constant divisor has no zero element; a computed one may (x / 0 is 0, like EVM sdiv).
            divisor = consts.get(op.inputs[1])
            if divisor is not None and divisor.values.size and not np.all(divisor.values != 0):
                raise _fail("Div divisor has a zero element", where)
        defined[op.output] = f"op {index}"

    missing = [tid for tid in range(n) if tid not in defined]
    if missing:
        raise _fail(f"tensors {missing[:8]} are neither the input, a constant nor an op output")


# --------------------------------------------------------------------------------------------------
# Program bytes
# --------------------------------------------------------------------------------------------------


def encode(program: Program) -> bytes:
    """Canonical bytes of ``program`` (the layout in docs/integer-profile.md, all big-endian)."""
    out = bytearray()
    out += struct.pack(">IBBH", MAGIC, program.input_width, program.output_width, len(program.shapes))
    for shape in program.shapes:
        out += struct.pack(f">B{len(shape)}I", len(shape), *shape)
    out += struct.pack(">HHH", program.input_id, program.output_id, len(program.constants))
    for c in program.constants:
        out += struct.pack(">HB", c.tensor_id, c.width)
        out += c.values.astype(f">i{c.width}").tobytes(order="C")
    out += struct.pack(">H", len(program.ops))
    for op in program.ops:
        out += struct.pack(f">BB{len(op.inputs)}HH", int(op.opcode), len(op.inputs), *op.inputs, op.output)
        out += struct.pack(f">B{len(op.attrs)}q", len(op.attrs), *op.attrs)
    return bytes(out)


class _Reader:
    """Bounds-checked cursor over program bytes: every overrun is a ProfileError, never an IndexError."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise ProfileError(f"program truncated while reading {what} at byte {self.pos}")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def unpack(self, fmt: str, what: str) -> tuple[int, ...]:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))

    def u8(self, what: str) -> int:
        return self.unpack(">B", what)[0]

    def u16(self, what: str) -> int:
        return self.unpack(">H", what)[0]


def decode(data: bytes) -> Program:
    """Parse program bytes strictly: bad magic, truncation, trailing bytes or bad ids raise ProfileError."""
    r = _Reader(bytes(data))
    (magic,) = r.unpack(">I", "magic")
    if magic != MAGIC:
        raise ProfileError(f"bad magic 0x{magic:08x}, expected 0x{MAGIC:08x} ('IOP1')")
    input_width = r.u8("inputWidth")
    output_width = r.u8("outputWidth")
    if input_width not in WIDTHS or output_width not in WIDTHS:
        raise ProfileError(f"I/O widths must be one of {WIDTHS}, got {input_width}/{output_width}")
    num_tensors = r.u16("numTensors")
    shapes: list[Shape] = []
    for tid in range(num_tensors):
        rank = r.u8(f"rank of tensor {tid}")
        if rank > MAX_RANK:
            raise ProfileError(f"tensor {tid} has rank {rank} > {MAX_RANK}")
        shapes.append(tuple(r.unpack(f">{rank}I", f"dims of tensor {tid}")))
    input_id = r.u16("inputId")
    output_id = r.u16("outputId")
    for name, tid in (("inputId", input_id), ("outputId", output_id)):
        if tid >= num_tensors:
            raise ProfileError(f"{name} {tid} out of range (numTensors={num_tensors})")
    num_consts = r.u16("numConsts")
    constants: list[Constant] = []
    for k in range(num_consts):
        tid = r.u16(f"tensor id of constant {k}")
        if tid >= num_tensors:
            raise ProfileError(f"constant {k} names tensor {tid}, out of range (numTensors={num_tensors})")
        width = r.u8(f"width of constant {k}")
        if width not in WIDTHS:
            raise ProfileError(f"constant {k} has width {width}, not one of {WIDTHS}")
        raw = r.take(numel(shapes[tid]) * width, f"values of constant {k}")
        values = np.frombuffer(raw, dtype=f">i{width}").astype(np.int64).reshape(shapes[tid])
        constants.append(Constant(tid, width, values))
    num_ops = r.u16("numOps")
    ops: list[Op] = []
    for k in range(num_ops):
        code = r.u8(f"opcode of op {k}")
        try:
            opcode = Opcode(code)
        except ValueError:
            raise ProfileError(f"unknown opcode {code}", node=f"op {k}") from None
        n_in = r.u8(f"nIn of op {k}")
        inputs = r.unpack(f">{n_in}H", f"inputs of op {k}")
        output = r.u16(f"output of op {k}")
        n_attr = r.u8(f"nAttr of op {k}")
        attrs = r.unpack(f">{n_attr}q", f"attributes of op {k}")
        ops.append(Op(opcode, tuple(inputs), output, tuple(attrs)))
    if r.pos != len(r.data):
        raise ProfileError(f"{len(r.data) - r.pos} trailing bytes after the last op")
    return Program(
        input_width=input_width,
        output_width=output_width,
        shapes=tuple(shapes),
        input_id=input_id,
        output_id=output_id,
        constants=tuple(constants),
        ops=tuple(ops),
    )


def macs(program: Program) -> int:
    """Multiply-accumulates of a program's MatMuls (dense count, zeros included): every row of A, batched
    or not, times K x N."""
    return sum(
        numel(program.shapes[op.inputs[0]]) * program.shapes[op.inputs[1]][-1]
        for op in program.ops
        if op.opcode is Opcode.MATMUL
    )


def commitment(program_bytes: bytes) -> bytes:
    """The model's program commitment: keccak256 of the canonical program bytes."""
    return bytes(keccak(program_bytes))
