"""Interval analysis: proves that a program never leaves int64 for any input of its declared width.

Bounds are kept per element as numpy object arrays of Python integers, so the analysis itself cannot
overflow and stays exact for constants (weights are point intervals). Per-element bounds matter: a
MatMul against constant weights gets the tight bound ``sum_k min/max(x_k * w_kn)`` rather than a
scalar worst case. A program that passes needs no overflow checks at run time, and any implementation
may compute in wider integers (the EVM's int256) and still agree with onnxruntime's int64.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from oracle.errors import ProfileError
from oracle.profile.codec import INT64_MAX, INT64_MIN, Shape, width_range
from oracle.profile.opcodes import Opcode, onnx_perm
from oracle.profile.program import Op, Program

ObjArray = npt.NDArray[np.object_]


@dataclass(frozen=True)
class Bounds:
    """Inclusive per-element lower and upper bounds of a tensor (object arrays of Python ints)."""

    lo: ObjArray
    hi: ObjArray

    @classmethod
    def point(cls, values: npt.NDArray[np.integer[Any]]) -> Bounds:
        """Exact bounds of a known tensor."""
        obj = np.asarray(values).astype(object)
        return cls(obj, obj)

    @classmethod
    def uniform(cls, shape: Shape, lo: int, hi: int) -> Bounds:
        """The same range for every element (the declared input width)."""
        return cls(np.full(shape, lo, dtype=object), np.full(shape, hi, dtype=object))

    @property
    def min(self) -> int:
        return int(self.lo.min()) if self.lo.size else 0

    @property
    def max(self) -> int:
        return int(self.hi.max()) if self.hi.size else 0


def _tdiv(a: int, b: int) -> int:
    """Python-int division truncating toward zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


_tdiv_v = np.frompyfunc(_tdiv, 2, 1)


def _obj(x: npt.ArrayLike) -> ObjArray:
    return np.asarray(x, dtype=object)


def op_bounds(opcode: Opcode, ins: Sequence[Bounds], attrs: Sequence[int], out_shape: Shape) -> Bounds:
    """Bounds of one op's output from its operands' bounds (sound, exact for point operands)."""
    if opcode in (Opcode.ADD, Opcode.SUB, Opcode.MUL, Opcode.MAX, Opcode.MIN, Opcode.DIV):
        a, b = ins
        if opcode is Opcode.ADD:
            lo, hi = a.lo + b.lo, a.hi + b.hi
        elif opcode is Opcode.SUB:
            lo, hi = a.lo - b.hi, a.hi - b.lo
        elif opcode is Opcode.MAX:
            lo, hi = np.maximum(a.lo, b.lo), np.maximum(a.hi, b.hi)
        elif opcode is Opcode.MIN:
            lo, hi = np.minimum(a.lo, b.lo), np.minimum(a.hi, b.hi)
        elif opcode is Opcode.MUL:
            p = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi]
            lo = np.minimum(np.minimum(p[0], p[1]), np.minimum(p[2], p[3]))
            hi = np.maximum(np.maximum(p[0], p[1]), np.maximum(p[2], p[3]))
        else:
            # Truncating division by a fixed non-zero divisor is monotone in the dividend (increasing
            # for a positive divisor, decreasing for a negative one), so the ends map to the ends.
            # Divisors are constants, but take both ends of b's interval to stay sound regardless.
            q = [_tdiv_v(a.lo, b.lo), _tdiv_v(a.lo, b.hi), _tdiv_v(a.hi, b.lo), _tdiv_v(a.hi, b.hi)]
            lo = np.minimum(np.minimum(q[0], q[1]), np.minimum(q[2], q[3]))
            hi = np.maximum(np.maximum(q[0], q[1]), np.maximum(q[2], q[3]))
        return Bounds(_obj(lo).reshape(out_shape), _obj(hi).reshape(out_shape))
    if opcode is Opcode.MATMUL:
        # [.., M, K, 1] x [.., 1, K, N] summed over K (batched or broadcast over a leading dimension).
        a, b = ins
        alo, ahi = a.lo[..., None], a.hi[..., None]
        blo, bhi = b.lo[..., None, :, :], b.hi[..., None, :, :]
        p = [alo * blo, alo * bhi, ahi * blo, ahi * bhi]
        lo = np.minimum(np.minimum(p[0], p[1]), np.minimum(p[2], p[3])).sum(axis=-2)
        hi = np.maximum(np.maximum(p[0], p[1]), np.maximum(p[2], p[3])).sum(axis=-2)
        return Bounds(_obj(lo).reshape(out_shape), _obj(hi).reshape(out_shape))
    if opcode is Opcode.GATHER:
        # Any row may be selected (or a row of zeros, for an index the analysis refuses anyway).
        data, idx = ins
        lo, hi = data.lo.min(axis=0), data.hi.max(axis=0)
        if idx.min < 0 or idx.max >= data.lo.shape[0]:
            lo, hi = np.minimum(lo, 0), np.maximum(hi, 0)
        return Bounds(np.broadcast_to(_obj(lo), out_shape).copy(), np.broadcast_to(_obj(hi), out_shape).copy())
    x = ins[0]
    if opcode is Opcode.CLIP:
        mn, mx = int(attrs[0]), int(attrs[1])
        lo = np.minimum(np.maximum(x.lo, mn), mx)
        hi = np.minimum(np.maximum(x.hi, mn), mx)
        return Bounds(_obj(lo), _obj(hi))
    if opcode is Opcode.TRANSPOSE:
        return Bounds(np.ascontiguousarray(x.lo.T), np.ascontiguousarray(x.hi.T))
    if opcode is Opcode.TRANSPOSE_ND:
        perm = onnx_perm(tuple(attrs), x.lo.ndim)
        return Bounds(np.transpose(x.lo, perm).copy(), np.transpose(x.hi, perm).copy())
    if opcode in (Opcode.REDUCE_SUM, Opcode.REDUCE_MAX):
        axis, keep = int(attrs[0]), bool(attrs[1])
        if opcode is Opcode.REDUCE_SUM:
            lo, hi = x.lo.sum(axis=axis, keepdims=keep), x.hi.sum(axis=axis, keepdims=keep)
        else:
            lo, hi = x.lo.max(axis=axis, keepdims=keep), x.hi.max(axis=axis, keepdims=keep)
        return Bounds(_obj(lo).reshape(out_shape), _obj(hi).reshape(out_shape))
    if opcode is Opcode.ARGMAX:
        n = x.lo.shape[int(attrs[0])]
        return Bounds.uniform(out_shape, 0, n - 1)
    # RESHAPE, FLATTEN, IDENTITY, CAST copy values.
    return Bounds(x.lo.reshape(out_shape), x.hi.reshape(out_shape))


INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
COMPARE_OPS = frozenset({Opcode.MAX, Opcode.MIN, Opcode.CLIP, Opcode.REDUCE_MAX})


def compare_range_problem(opcode: Opcode, ins: Sequence[Bounds], attrs: Sequence[int]) -> str | None:
    """Why onnxruntime might get this Max/Min/Clip wrong, or ``None`` when it is safe.

    onnxruntime's vectorised int64 Max, Min and Clip kernels (and ReduceMax, which compares the same way)
    on x86 (AVX2/AVX-512; the scalar path for one element is right) compare two int64 values wrongly when
    their upper 32-bit halves are equal and their lower halves differ in bit 31, e.g.
    ``Max(2^31, 0) = 0`` (seen with onnxruntime 1.31). Values inside int32 never hit that case, so the
    profile requires comparison operands to lie in int32; Clip bounds may also be the int64 extremes
    that stand for "no bound".
    """
    for k, b in enumerate(ins):
        if b.min < INT32_MIN or b.max > INT32_MAX:
            return (
                f"{opcode.name} operand {k} can reach [{b.min}, {b.max}], outside int32: onnxruntime's "
                "vectorised int64 Max/Min/Clip mis-compare such values on x86; rescale (Div) first"
            )
    if opcode is Opcode.CLIP:
        for bound in attrs:
            if not (INT32_MIN <= bound <= INT32_MAX or bound in (INT64_MIN, INT64_MAX)):
                return f"Clip bound {bound} is outside int32 (only the int64 extremes, i.e. no bound)"
    return None


#: onnxruntime 1.32's int64 ReduceSum accumulates in double: exact only while every partial sum is.
DOUBLE_EXACT = 2**53


def onnxruntime_problem(program: Program, op: Op, ins: Sequence[Bounds]) -> str | None:
    """Why onnxruntime would fail or differ where the program format defines an answer, or ``None``.

    onnxruntime crashes on an int64 Div by zero and refuses an out-of-range Gather index, while the program
    format defines both (0 and a row of zeros); its int64 ReduceSum converts every element to double
    (``ReduceSum([2^53 + 1]) = 2^53``). Compiled programs must provably avoid all three.
    """
    if op.opcode is Opcode.DIV:
        d = ins[1]
        if bool(np.any((d.lo <= 0) & (d.hi >= 0))):
            return (
                f"Div divisor can reach [{d.min}, {d.max}], which contains 0 (onnxruntime crashes on an int64 "
                "division by zero): make the divisor provably non-zero first (e.g. Clip it to [1, ...])"
            )
    if op.opcode is Opcode.REDUCE_SUM:
        x = ins[0]
        reach = int(np.max(np.maximum(np.abs(x.lo), np.abs(x.hi)).sum(axis=int(op.attrs[0]))))
        if reach > DOUBLE_EXACT:
            return (
                f"ReduceSum operands can add up to {reach} in magnitude, beyond 2^53: onnxruntime's int64 "
                "ReduceSum computes in double and would round; rescale (Div) first or sum with a MatMul"
            )
    if op.opcode is Opcode.GATHER:
        n = program.shapes[op.inputs[0]][0]
        idx = ins[1]
        if idx.min < 0 or idx.max >= n:
            return (
                f"Gather indices can reach [{idx.min}, {idx.max}], outside [0, {n}) (onnxruntime fails on an "
                f"out-of-range index): Clip the indices to [0, {n - 1}] first"
            )
    return None


def _where(index: int, names: Sequence[str] | None) -> str:
    if names is not None and index < len(names):
        return names[index]
    return f"op {index}"


def analyze(
    program: Program,
    node_names: Sequence[str] | None = None,
    input_bounds: Bounds | None = None,
) -> list[Bounds]:
    """Bounds of every op output, in program order; raises ProfileError naming the first unsafe op.

    ``node_names`` maps op indices to ONNX node names for error messages. ``input_bounds`` defaults to
    the full range of the declared input width, which is what any requester may send.
    """
    env: dict[int, Bounds] = {c.tensor_id: Bounds.point(c.values) for c in program.constants}
    if input_bounds is None:
        lo, hi = width_range(program.input_width)
        input_bounds = Bounds.uniform(program.input_shape, lo, hi)
    env[program.input_id] = input_bounds
    result: list[Bounds] = []
    for index, op in enumerate(program.ops):
        where = _where(index, node_names)
        ins = [env[t] for t in op.inputs]
        if op.opcode in COMPARE_OPS:
            problem = compare_range_problem(op.opcode, ins, op.attrs)
            if problem:
                raise ProfileError(problem, node=where)
        problem = onnxruntime_problem(program, op, ins)
        if problem:
            raise ProfileError(problem, node=where)
        b = op_bounds(Opcode(op.opcode), ins, op.attrs, program.shapes[op.output])
        if b.min < INT64_MIN or b.max > INT64_MAX:
            raise ProfileError(
                f"{Opcode(op.opcode).name} may overflow int64: for inputs of the declared "
                f"{program.input_width}-byte width its values can reach [{b.min}, {b.max}]; "
                "scale weights down or rescale (Div) earlier",
                node=where,
            )
        if op.opcode is Opcode.CAST:
            clo, chi = width_range(int(op.attrs[0]))
            if b.min < clo or b.max > chi:
                raise ProfileError(
                    f"Cast to {op.attrs[0]} bytes may truncate: values can reach [{b.min}, {b.max}]",
                    node=where,
                )
        env[op.output] = b
        result.append(b)
    out = env[program.output_id]
    olo, ohi = width_range(program.output_width)
    if out.min < olo or out.max > ohi:
        where = "output"
        for index, op in enumerate(program.ops):
            if op.output == program.output_id:
                where = _where(index, node_names)
        raise ProfileError(
            f"output values can reach [{out.min}, {out.max}], which does not fit the declared "
            f"{program.output_width}-byte output width; declare a wider output",
            node=where,
        )
    return result
