"""The opcodes of the integer-profile program format and the shape each op produces.

Everything here follows the op table of ``docs/integer-profile.md``: how many inputs and i64 attributes each
opcode takes (:data:`ARITY`), and the output shape it gives its input shapes (:func:`check_op_shape`, which the
program's structural validation runs on every op, and the shape helpers the compiler builds programs with).
"""

from __future__ import annotations

import enum

from oracle.errors import ProfileError
from oracle.profile.codec import WIDTHS, Shape, numel

MAX_RANK = 4


class Opcode(enum.IntEnum):
    """Opcodes of the program format (the table in docs/integer-profile.md)."""

    MATMUL = 1
    ADD = 2
    SUB = 3
    MUL = 4
    DIV = 5
    MAX = 6
    MIN = 7
    CLIP = 8
    RESHAPE = 9
    FLATTEN = 10
    TRANSPOSE = 11
    ARGMAX = 12
    IDENTITY = 13
    CAST = 14
    GATHER = 15
    REDUCE_SUM = 16
    REDUCE_MAX = 17
    TRANSPOSE_ND = 18


#: Number of inputs and of i64 attributes per opcode; the decoder rejects anything else.
ARITY: dict[Opcode, tuple[int, int]] = {
    Opcode.MATMUL: (2, 0),
    Opcode.ADD: (2, 0),
    Opcode.SUB: (2, 0),
    Opcode.MUL: (2, 0),
    Opcode.DIV: (2, 0),
    Opcode.MAX: (2, 0),
    Opcode.MIN: (2, 0),
    Opcode.CLIP: (1, 2),
    Opcode.RESHAPE: (1, 0),
    Opcode.FLATTEN: (1, 0),
    Opcode.TRANSPOSE: (1, 0),
    Opcode.ARGMAX: (1, 3),
    Opcode.IDENTITY: (1, 0),
    Opcode.CAST: (1, 1),
    Opcode.GATHER: (2, 0),
    Opcode.REDUCE_SUM: (1, 2),
    Opcode.REDUCE_MAX: (1, 2),
    Opcode.TRANSPOSE_ND: (1, MAX_RANK),
}

ELEMENTWISE_BINARY = frozenset({Opcode.ADD, Opcode.SUB, Opcode.MUL, Opcode.DIV, Opcode.MAX, Opcode.MIN})

def broadcast_shape(a: Shape, b: Shape) -> Shape | None:
    """Multidirectional (numpy/ONNX) broadcast of two shapes, or ``None`` if they do not broadcast."""
    rank = max(len(a), len(b))
    pa = (1,) * (rank - len(a)) + a
    pb = (1,) * (rank - len(b)) + b
    out = []
    for x, y in zip(pa, pb, strict=True):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            return None
    return tuple(out)


def argmax_shape(shape: Shape, axis: int, keepdims: int) -> Shape:
    """Output shape of ArgMax (and ReduceSum, ReduceMax) over ``axis`` of ``shape``."""
    if keepdims:
        return shape[:axis] + (1,) + shape[axis + 1 :]
    return shape[:axis] + shape[axis + 1 :]


def matmul_shape(a: Shape, b: Shape) -> Shape | None:
    """MatMul output: [M,K]x[K,N], [B,M,K]x[K,N] or [B,M,K]x[B,K,N]; ``None`` for anything else."""
    if len(a) not in (2, 3) or len(b) not in (2, len(a)) or a[-1] != b[-2]:
        return None
    if len(b) == 3 and a[0] != b[0]:
        return None
    return a[:-1] + (b[-1],)


def padded_perm(perm: tuple[int, ...] | list[int]) -> tuple[int, ...]:
    """TransposeND attributes of an ONNX ``perm`` of rank r: the permutation of the rank-4 view (shape
    left-padded with ones), whose first 4 - r entries fix the padding."""
    pad = MAX_RANK - len(perm)
    return tuple(range(pad)) + tuple(pad + int(p) for p in perm)


def onnx_perm(attrs: tuple[int, ...] | list[int], rank: int) -> tuple[int, ...] | None:
    """The ONNX ``perm`` behind TransposeND attributes for an input of ``rank``, or ``None`` if they are not
    a permutation of 0..3 fixing the 4 - rank padding positions."""
    pad = MAX_RANK - rank
    if sorted(attrs) != list(range(MAX_RANK)) or any(attrs[i] != i for i in range(pad)):
        return None
    return tuple(int(attrs[pad + i]) - pad for i in range(rank))



def check_op_shape(opcode: Opcode, ins: list[Shape], attrs: tuple[int, ...], out: Shape, where: str) -> None:
    """Check that ``out`` is the shape the op produces from ``ins`` and that attributes are legal."""
    if opcode in ELEMENTWISE_BINARY:
        expected = broadcast_shape(ins[0], ins[1])
        if expected is None:
            raise ProfileError(f"{opcode.name} operands {list(ins[0])} and {list(ins[1])} do not broadcast", node=where)
    elif opcode is Opcode.MATMUL:
        mm = matmul_shape(ins[0], ins[1])
        if mm is None:
            raise ProfileError(
                f"MatMul needs [M,K]x[K,N], [B,M,K]x[K,N] or [B,M,K]x[B,K,N], got {list(ins[0])} x {list(ins[1])}",
                node=where,
            )
        expected = mm
    elif opcode is Opcode.GATHER:
        data, idx = ins
        if not data or len(idx) + len(data) - 1 > MAX_RANK:
            raise ProfileError(
                f"Gather of {list(data)} by indices {list(idx)}: data rank >= 1, output rank <= 4",
                node=where,
            )
        expected = idx + data[1:]
    elif opcode in (Opcode.REDUCE_SUM, Opcode.REDUCE_MAX):
        axis, keepdims = attrs
        if not 0 <= axis < len(ins[0]) or keepdims not in (0, 1):
            raise ProfileError(
                f"{opcode.name} axis {axis} / keepdims {keepdims} invalid for rank {len(ins[0])}",
                node=where,
            )
        expected = argmax_shape(ins[0], axis, keepdims)
    elif opcode is Opcode.TRANSPOSE_ND:
        perm = onnx_perm(attrs, len(ins[0]))
        if perm is None:
            raise ProfileError(
                f"TransposeND attributes {list(attrs)}: not a rank-4 permutation for rank {len(ins[0])}",
                node=where,
            )
        expected = tuple(ins[0][p] for p in perm)
    elif opcode is Opcode.TRANSPOSE:
        if len(ins[0]) != 2:
            raise ProfileError(f"Transpose is 2-D only, got rank {len(ins[0])}", node=where)
        expected = (ins[0][1], ins[0][0])
    elif opcode is Opcode.CLIP:
        if attrs[0] > attrs[1]:
            raise ProfileError(f"Clip min {attrs[0]} > max {attrs[1]}", node=where)
        expected = ins[0]
    elif opcode is Opcode.ARGMAX:
        axis, keepdims, last = attrs
        if not 0 <= axis < len(ins[0]):
            raise ProfileError(f"ArgMax axis {axis} out of range for rank {len(ins[0])}", node=where)
        if keepdims not in (0, 1) or last not in (0, 1):
            raise ProfileError("ArgMax keepdims and select_last_index must be 0 or 1", node=where)
        expected = argmax_shape(ins[0], axis, keepdims)
    elif opcode is Opcode.CAST:
        if attrs[0] not in WIDTHS:
            raise ProfileError(f"Cast target width must be one of {WIDTHS}, got {attrs[0]}", node=where)
        expected = ins[0]
    elif opcode is Opcode.IDENTITY:
        expected = ins[0]
    elif opcode is Opcode.FLATTEN:
        if len(out) != 2 or numel(out) != numel(ins[0]):
            raise ProfileError(f"Flatten output {list(out)} must be 2-D with {numel(ins[0])} elements", node=where)
        expected = out
    else:  # RESHAPE
        if numel(out) != numel(ins[0]):
            raise ProfileError(f"Reshape {list(ins[0])} -> {list(out)} changes the element count", node=where)
        expected = out
    if expected != out:
        raise ProfileError(f"{opcode.name} produces shape {list(expected)}, tensor table says {list(out)}", node=where)


