"""`runOp`: each kernel on its own (what v2 bisection will execute) == the reference's `run_op`."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3.contract import Contract

from oracle.profile.codec import encode_tensor, width_range
from oracle.profile.opcodes import Opcode, argmax_shape, broadcast_shape, padded_perm
from oracle.profile.reference import run_op
from tests.verifier.helpers import INT64_MAX, INT64_MIN, call, expect_revert

SETTINGS = settings(derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))


def operand(values: np.ndarray, width: int = 8) -> tuple[list[int], int, bytes]:
    arr = np.asarray(values, dtype=np.int64)
    return (list(arr.shape), width, encode_tensor(arr, width))


def run(
    verifier: Contract,
    opcode: int,
    ins: list[tuple[list[int], int, bytes]],
    attrs: list[int],
    out_shape: tuple[int, ...],
) -> object:
    return call(verifier.functions.runOp(opcode, ins, attrs, list(out_shape)))


def reference(opcode: Opcode, arrays: list[np.ndarray], attrs: list[int], out_shape: tuple[int, ...]) -> list[int]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return [int(v) for v in run_op(opcode, arrays, attrs, out_shape).reshape(-1)]


def _fitting(a: np.ndarray, width: int) -> int:
    lo, hi = width_range(width)
    return width if a.size == 0 or (int(a.min()) >= lo and int(a.max()) <= hi) else 8


def _arr(rng: np.random.Generator, shape: tuple[int, ...], width: int, nonzero: bool = False) -> np.ndarray:
    lo, hi = width_range(width)
    a = rng.integers(lo, hi, size=shape, endpoint=True, dtype=np.int64)
    if nonzero:
        a[a == 0] = 1
    return a


@settings(SETTINGS, max_examples=300)
@given(
    opcode=st.sampled_from(list(Opcode)),
    shape=st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple),
    widths=st.tuples(st.sampled_from([1, 2, 4, 8]), st.sampled_from([1, 2, 4, 8])),
    pick=st.integers(0, 2**16),
    seed=st.integers(0, 2**32 - 1),
)
def test_run_op_matches_the_reference_op(
    verifier: Contract, opcode: Opcode, shape: tuple[int, ...], widths: tuple[int, int], pick: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    wa, wb = widths
    attrs: list[int] = []
    if opcode in (Opcode.ADD, Opcode.SUB, Opcode.MUL, Opcode.DIV, Opcode.MAX, Opcode.MIN):
        other = tuple(d if pick >> i & 1 else 1 for i, d in enumerate(shape))[pick % (len(shape) + 1) :]
        arrays = [_arr(rng, shape, wa), _arr(rng, other, wb, nonzero=opcode is Opcode.DIV)]
        if pick & 0x100:
            arrays.reverse()
            if opcode is Opcode.DIV:
                arrays[1][arrays[1] == 0] = 1
        out = broadcast_shape(arrays[0].shape, arrays[1].shape)
        assert out is not None
    elif opcode is Opcode.MATMUL:
        m, k, n = 1 + pick % 3, 1 + (pick >> 2) % 40, 1 + (pick >> 8) % 40
        batch = 1 + (pick >> 14) % 3
        # [M,K]x[K,N], [B,M,K]x[K,N], [B,M,K]x[B,K,N]
        a_shape = (m, k) if pick & 0x2000 == 0 else (batch, m, k)
        b_shape = (batch, k, n) if len(a_shape) == 3 and pick & 0x10000 else (k, n)
        arrays = [_arr(rng, a_shape, wa), _arr(rng, b_shape, wb)]
        out = a_shape[:-1] + (n,)
    elif opcode is Opcode.GATHER:
        data = _arr(rng, shape or (3,), wa)
        idx_shape = tuple(1 + (pick >> (2 * i)) % 3 for i in range(pick % (6 - len(data.shape))))
        arrays = [data, rng.integers(-2, data.shape[0] + 2, size=idx_shape)]  # out-of-range rows read zeros
        out = idx_shape + data.shape[1:]
    elif opcode in (Opcode.REDUCE_SUM, Opcode.REDUCE_MAX):
        shape = shape or (3,)
        arrays = [_arr(rng, shape, wa)]
        attrs = [pick % len(shape), pick >> 4 & 1]
        out = argmax_shape(shape, attrs[0], attrs[1])
    elif opcode is Opcode.TRANSPOSE_ND:
        arrays = [_arr(rng, shape, wa)]
        perm = [int(p) for p in rng.permutation(len(shape))]
        attrs = list(padded_perm(perm))
        out = tuple(shape[p] for p in perm)
    elif opcode is Opcode.TRANSPOSE:
        arrays = [_arr(rng, (1 + pick % 4, 1 + (pick >> 2) % 4), wa)]
        out = arrays[0].shape[::-1]
    elif opcode is Opcode.CLIP:
        lo = int(rng.integers(INT64_MIN, INT64_MAX)) if pick & 1 else -5
        attrs = [lo, lo + int(rng.integers(0, 2**62))] if pick & 2 else [lo, INT64_MAX]
        arrays = [_arr(rng, shape, wa)]
        out = shape
    elif opcode is Opcode.ARGMAX:
        shape = shape or (3,)
        arrays = [rng.integers(-2, 2, size=shape)]  # ties
        attrs = [pick % len(shape), pick >> 4 & 1, pick >> 5 & 1]
        out = argmax_shape(shape, attrs[0], attrs[1])
    elif opcode in (Opcode.RESHAPE, Opcode.FLATTEN):
        arrays = [_arr(rng, shape, wa)]
        n = int(np.prod(shape))
        out = (1, n) if opcode is Opcode.FLATTEN else (n,)
    else:
        arrays = [_arr(rng, shape, wa)]
        attrs = [wb] if opcode is Opcode.CAST else []
        out = shape
    # Each operand goes in packed at the width it was drawn with, when that width still holds it.
    ins = [operand(a, _fitting(a, w)) for a, w in zip(arrays, (wa, wb)[: len(arrays)], strict=True)]
    got = run(verifier, int(opcode), ins, attrs, tuple(out))
    assert list(got) == reference(opcode, arrays, attrs, tuple(out))


def test_run_op_matmul_reads_packed_int8_weights(verifier: Contract) -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(-300, 300, size=(2, 64))
    w = rng.integers(-128, 128, size=(64, 50))
    got = run(verifier, Opcode.MATMUL, [operand(a, 2), operand(w, 1)], [], (2, 50))
    assert list(got) == reference(Opcode.MATMUL, [a, w], [], (2, 50))


def test_run_op_wraps_overflowing_results_to_int64(verifier: Contract) -> None:
    a = np.array([INT64_MAX, INT64_MIN, INT64_MIN])
    b = np.array([1, -1, INT64_MIN])
    for opcode in (Opcode.ADD, Opcode.SUB, Opcode.MUL):
        assert list(run(verifier, opcode, [operand(a), operand(b)], [], (3,))) == reference(opcode, [a, b], [], (3,))
    assert list(run(verifier, Opcode.DIV, [operand(a), operand(b)], [], (3,))) == reference(
        Opcode.DIV, [a, b], [], (3,)
    )


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------

X = operand(np.array([1, 2, 3]))
Y = operand(np.array([4, 5, 6]))


@pytest.mark.parametrize("opcode", [0, 19, 200])
def test_run_op_rejects_unknown_opcodes(verifier: Contract, opcode: int) -> None:
    expect_revert(run(verifier, opcode, [X], [], (3,)), "UnsupportedOpcode", opcode)


@pytest.mark.parametrize(
    "opcode,ins,attrs",
    [
        (Opcode.ADD, [X], []),
        (Opcode.ADD, [X, Y, Y], []),
        (Opcode.ADD, [X, Y], [0]),
        (Opcode.CLIP, [X], [0]),
        (Opcode.CLIP, [X], [3, 2]),
        (Opcode.ARGMAX, [X], [1, 0, 0]),
        (Opcode.ARGMAX, [X], [-1, 0, 0]),
        (Opcode.ARGMAX, [X], [0, 0, 2]),
        (Opcode.CAST, [X], [16]),
        (Opcode.IDENTITY, [], []),
    ],
)
def test_run_op_rejects_bad_arity_or_attributes(verifier: Contract, opcode: Opcode, ins: list, attrs: list) -> None:
    out = () if opcode is Opcode.ARGMAX else (3,)
    expect_revert(run(verifier, int(opcode), ins, attrs, out), "InvalidAttributes", int(opcode))


@pytest.mark.parametrize(
    "bad",
    [
        ([3], 3, b"\x00" * 9),  # width 3
        ([3], 8, b"\x00" * 23),  # short data
        ([3], 8, b"\x00" * 25),  # long data
        ([1, 1, 1, 1, 3], 8, b"\x00" * 24),  # rank 5
        ([0], 8, b""),  # zero dimension
    ],
)
def test_run_op_rejects_malformed_operands(verifier: Contract, bad: tuple) -> None:
    expect_revert(run(verifier, Opcode.ADD, [X, bad], [], (3,)), "InvalidOperand", 1)
    expect_revert(run(verifier, Opcode.ADD, [bad, X], [], (3,)), "InvalidOperand", 0)


def test_run_op_divides_by_zero_totally(verifier: Contract) -> None:
    # Div is total (x / 0 = 0, like sdiv): a one-step proof over a computed divisor must not revert.
    divisor = np.array([1, 0, 2])
    x = np.array([7, INT64_MIN, -7])
    got = run(verifier, Opcode.DIV, [operand(x), operand(divisor, 1)], [], (3,))
    assert list(got) == reference(Opcode.DIV, [x, divisor], [], (3,)) == [7, 0, -3]


@pytest.mark.parametrize(
    "opcode,ins,out",
    [
        (Opcode.ADD, [X, Y], (4,)),
        (Opcode.ADD, [X, operand(np.array([1, 2]))], (3,)),
        (Opcode.MATMUL, [operand(np.ones((2, 3))), operand(np.ones((2, 3)))], (2, 3)),
        (Opcode.TRANSPOSE, [X], (3,)),
        (Opcode.RESHAPE, [X], (2, 2)),
        (Opcode.RESHAPE, [X], (1, 1, 1, 1, 3)),
        (Opcode.RESHAPE, [X], (3, 0)),
        (Opcode.FLATTEN, [X], (3,)),
    ],
)
def test_run_op_rejects_an_output_shape_the_op_does_not_produce(
    verifier: Contract, opcode: Opcode, ins: list, out: tuple
) -> None:
    expect_revert(run(verifier, int(opcode), ins, [], out), "ShapeMismatch", 0)
