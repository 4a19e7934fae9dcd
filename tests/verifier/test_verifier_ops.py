"""Every op on-chain == the reference interpreter, on hand-written programs.

Each case is a small program (usually one op on the input and a constant) run on a few inputs: the
extremes of the input width, random values, and hand-picked ones (negative operands, ties). The
verifier must return the reference's canonical output bytes exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
from web3.contract import Contract

from oracle.profile.codec import width_range
from oracle.profile.opcodes import Opcode
from oracle.profile.program import Program
from tests.verifier.helpers import (
    INT64_MAX,
    INT64_MIN,
    Builder,
    assert_conforms,
    random_input,
    single_op,
)

EDGE64 = [
    INT64_MIN,
    INT64_MIN + 1,
    -(2**32),
    -(2**31) - 1,
    -129,
    -128,
    -1,
    0,
    1,
    127,
    128,
    2**31,
    2**32,
    INT64_MAX - 1,
    INT64_MAX,
]


def _check(verifier: Contract, program: Program, inputs: list[np.ndarray] | None = None, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    lo, hi = width_range(program.input_width)
    shape = program.input_shape
    cases = list(inputs or [])
    cases += [np.full(shape, lo), np.full(shape, hi), np.zeros(shape, dtype=np.int64)]
    cases += [random_input(program, rng) for _ in range(3)]
    for x in cases:
        assert_conforms(verifier, program, np.asarray(x, dtype=np.int64).reshape(shape))


# --------------------------------------------------------------------------------------------------
# Elementwise binary ops and broadcasting
# --------------------------------------------------------------------------------------------------

BINARY = [Opcode.ADD, Opcode.SUB, Opcode.MUL, Opcode.MAX, Opcode.MIN]

# (input shape, constant shape): right-aligned broadcasting in every direction numpy allows.
BROADCASTS = [
    ((2, 3), (2, 3)),
    ((2, 3), (3,)),
    ((2, 3), (1, 3)),
    ((2, 3), (2, 1)),
    ((2, 3), (1,)),
    ((2, 3), ()),
    ((3,), (2, 3)),
    ((2, 1), (1, 4)),
    ((4, 1, 3), (2, 1)),
    ((2, 3, 1, 5), (3, 4, 1)),
    ((1, 1, 1, 1), (2, 3, 4, 5)),
    ((), (2, 2)),
    ((5,), (1, 1, 1, 5)),
]


@pytest.mark.parametrize("opcode", BINARY, ids=lambda o: o.name)
@pytest.mark.parametrize("shapes", BROADCASTS, ids=str)
def test_binary_op_broadcasts_like_numpy(verifier: Contract, opcode: Opcode, shapes: tuple) -> None:
    x_shape, c_shape = shapes
    rng = np.random.default_rng(len(x_shape) * 10 + len(c_shape))
    c = rng.integers(-(2**15), 2**15, size=c_shape)
    _check(verifier, single_op(opcode, x_shape, c, input_width=2), seed=3)
    # The constant as the first operand broadcasts the other way round.
    _check(verifier, single_op(opcode, x_shape, c, swap=True, input_width=2), seed=4)


@pytest.mark.parametrize("opcode", BINARY, ids=lambda o: o.name)
@pytest.mark.parametrize("width", [1, 2, 4, 8])
def test_binary_op_reads_constants_of_every_width(verifier: Contract, opcode: Opcode, width: int) -> None:
    lo, hi = width_range(width)
    c = np.array([[lo, hi, -1, 0, 1, lo + 1, hi - 1]])
    _check(verifier, single_op(opcode, (3, 7), c, width=width, input_width=4))


@pytest.mark.parametrize("opcode", BINARY, ids=lambda o: o.name)
def test_binary_op_on_int64_extremes_wraps_like_numpy(verifier: Contract, opcode: Opcode) -> None:
    """Compiled programs never overflow; the verifier still wraps exactly like numpy's int64 if one does."""
    n = len(EDGE64)
    x = np.array(EDGE64, dtype=np.int64).reshape(n, 1)
    c = np.array(EDGE64, dtype=np.int64).reshape(1, n)
    _check(verifier, single_op(opcode, (n, 1), c), [x])


def test_binary_op_with_the_same_tensor_twice(verifier: Contract) -> None:
    b = Builder((2, 3))
    s = b.op(Opcode.ADD, [0, 0])
    b.op(Opcode.MUL, [s, s])
    _check(verifier, b.build(), [np.array([[-3, 0, 5], [INT64_MAX, INT64_MIN, 7]])])


def test_binary_op_between_two_computed_tensors_broadcasts(verifier: Contract) -> None:
    b = Builder((3, 4))
    row = b.op(Opcode.ARGMAX, [0], (0, 1, 0))  # (1, 4)
    col = b.op(Opcode.ARGMAX, [0], (1, 1, 1))  # (3, 1)
    grid = b.op(Opcode.SUB, [row, col])  # (3, 4)
    b.op(Opcode.MUL, [grid, 0])
    _check(verifier, b.build(), [np.arange(12).reshape(3, 4) % 3])


# --------------------------------------------------------------------------------------------------
# Div
# --------------------------------------------------------------------------------------------------


def test_div_truncates_toward_zero_for_every_sign(verifier: Contract) -> None:
    divisors = np.array([3, -3, 2, -2, 7, -7, 1, -1])
    x = np.array([[7, -7, 7, -7, 1, -1, 0, 5], [-7, 7, -1, 1, -6, 6, -5, 5], [-9, -9, 9, 9, 13, -13, 3, -3]])
    program = single_op(Opcode.DIV, (3, 8), divisors.reshape(1, 8))
    _check(verifier, program, [x])


@pytest.mark.parametrize("width", [1, 2, 4, 8])
def test_div_by_constants_of_every_width(verifier: Contract, width: int) -> None:
    lo, hi = width_range(width)
    d = np.array([lo, hi, -1, 1, 2, -3, lo + 1])
    _check(verifier, single_op(Opcode.DIV, (2, 7), d, width=width), [np.array([EDGE64[:7], EDGE64[7:14]])])


def test_div_int64_min_by_minus_one_wraps(verifier: Contract) -> None:
    """Excluded by the compiler's interval analysis; numpy returns INT64_MIN, and so must the verifier."""
    program = single_op(Opcode.DIV, (1, 3), np.array([-1, 1, -1]))
    _check(verifier, program, [np.array([[INT64_MIN, INT64_MIN, INT64_MAX]])])


def test_div_by_a_scalar_broadcasts(verifier: Contract) -> None:
    _check(verifier, single_op(Opcode.DIV, (4, 5), np.array(-16), input_width=2))
    _check(verifier, single_op(Opcode.DIV, (4, 5), np.array([1 << 10]), input_width=8))


# --------------------------------------------------------------------------------------------------
# MatMul
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("width", [1, 2, 4, 8])
@pytest.mark.parametrize("mkn", [(1, 1, 1), (1, 5, 3), (2, 3, 33), (3, 17, 40), (1, 40, 65)], ids=str)
def test_matmul_with_packed_weights(verifier: Contract, width: int, mkn: tuple[int, int, int]) -> None:
    m, k, n = mkn
    lo, hi = width_range(width)
    rng = np.random.default_rng(m * k * n + width)
    w = rng.integers(lo, hi, size=(k, n), endpoint=True)
    w.flat[0], w.flat[-1] = lo, hi
    program = single_op(Opcode.MATMUL, (m, k), w, width=width, input_width=2)
    _check(verifier, program, [np.where(np.arange(m * k).reshape(m, k) % 2 == 0, -(2**15), 2**15 - 1)])


def test_matmul_with_constant_left_operand(verifier: Contract) -> None:
    a = np.array([[1, -2, 3], [-4, 5, -6]])
    _check(verifier, single_op(Opcode.MATMUL, (3, 4), a, swap=True, input_width=4))


def test_matmul_of_two_computed_tensors(verifier: Contract) -> None:
    b = Builder((3, 4), input_width=4)
    t = b.op(Opcode.TRANSPOSE, [0])
    b.op(Opcode.MATMUL, [0, t])
    _check(verifier, b.build())


def test_matmul_of_int64_extremes_wraps_like_numpy(verifier: Contract) -> None:
    w = np.array([[INT64_MAX, INT64_MIN, 3], [INT64_MIN, -1, INT64_MAX], [2, 2, -2]])
    _check(verifier, single_op(Opcode.MATMUL, (2, 3), w, width=8), [np.array([[INT64_MIN, INT64_MAX, -1]] * 2)])


# --------------------------------------------------------------------------------------------------
# Clip, ArgMax, Transpose and the copies
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bounds", [(-5, 9), (0, 0), (INT64_MIN, INT64_MAX), (-(2**40), -(2**39)), (7, 2**62)])
def test_clip_clamps_to_its_attribute_bounds(verifier: Contract, bounds: tuple[int, int]) -> None:
    program = single_op(Opcode.CLIP, (3, 5), attrs=bounds)
    _check(verifier, program, [np.array(EDGE64).reshape(3, 5)])


ARGMAX_SHAPES = [
    ((6,), 0),
    ((2, 5), 0),
    ((2, 5), 1),
    ((2, 3, 4), 0),
    ((2, 3, 4), 1),
    ((2, 3, 4), 2),
    ((2, 1, 3, 2), 3),
    ((2, 1, 3, 2), 1),
    ((1,), 0),
]


@pytest.mark.parametrize("last", [0, 1])
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("case", ARGMAX_SHAPES, ids=str)
def test_argmax_picks_first_or_last_of_tied_maxima(verifier: Contract, case: tuple, keepdims: int, last: int) -> None:
    shape, axis = case
    program = single_op(Opcode.ARGMAX, shape, attrs=(axis, keepdims, last), input_width=1)
    rng = np.random.default_rng(sum(shape))
    ties = rng.integers(-2, 2, size=shape)  # few distinct values: many ties
    negative = -np.abs(rng.integers(1, 100, size=shape)) - 2**40
    _check(
        verifier,
        single_op(Opcode.ARGMAX, shape, attrs=(axis, keepdims, last)),
        [ties, negative, np.full(shape, INT64_MIN), np.full(shape, INT64_MAX)],
    )
    _check(verifier, program)


def test_transpose_swaps_rows_and_columns(verifier: Contract) -> None:
    for shape in [(1, 1), (1, 5), (5, 1), (3, 4), (7, 2)]:
        _check(verifier, single_op(Opcode.TRANSPOSE, shape, input_width=2))


def test_transpose_of_a_packed_constant(verifier: Contract) -> None:
    b = Builder((3, 2), input_width=2)
    c = b.const(np.array([[1, -2, 3], [-4, 5, -128]]), 1)
    t = b.op(Opcode.TRANSPOSE, [c])
    b.op(Opcode.ADD, [0, t])
    _check(verifier, b.build())


@pytest.mark.parametrize(
    "opcode,attrs,x_shape,out_shape",
    [
        (Opcode.RESHAPE, (), (2, 6), (3, 4)),
        (Opcode.RESHAPE, (), (2, 3, 2), (12,)),
        (Opcode.RESHAPE, (), (1, 12), (1, 2, 3, 2)),
        (Opcode.RESHAPE, (), (1,), ()),
        (Opcode.FLATTEN, (), (2, 3, 2), (6, 2)),
        (Opcode.FLATTEN, (), (2, 3, 2), (1, 12)),
        (Opcode.IDENTITY, (), (2, 3), None),
        (Opcode.CAST, (8,), (2, 3), None),
        (Opcode.CAST, (1,), (4,), None),
    ],
)
def test_copies_keep_values_in_row_major_order(
    verifier: Contract, opcode: Opcode, attrs: tuple, x_shape: tuple, out_shape: tuple | None
) -> None:
    _check(verifier, single_op(opcode, x_shape, attrs=attrs, shape=out_shape, input_width=1))


def test_copies_of_constants_and_chains_of_copies(verifier: Contract) -> None:
    b = Builder((2, 3), input_width=2)
    c = b.const(np.arange(6).reshape(3, 2) - 3, 2)
    r = b.op(Opcode.RESHAPE, [c], shape=(2, 3))
    i = b.op(Opcode.IDENTITY, [r])
    s = b.op(Opcode.ADD, [0, i])
    f = b.op(Opcode.FLATTEN, [s], shape=(1, 6))
    g = b.op(Opcode.CAST, [f], (8,))
    h = b.op(Opcode.RESHAPE, [g], shape=(3, 2))
    b.op(Opcode.SUB, [h, b.op(Opcode.RESHAPE, [c], shape=(3, 2))])
    _check(verifier, b.build())


# --------------------------------------------------------------------------------------------------
# Programs: I/O widths, outputs that are not op results, buffer reuse
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("in_width", [1, 2, 4, 8])
@pytest.mark.parametrize("out_width", [1, 2, 4, 8])
def test_io_widths_round_trip(verifier: Contract, in_width: int, out_width: int) -> None:
    """Identity at every pair of widths (the output must fit: clip to the narrower range first)."""
    lo, hi = width_range(min(in_width, out_width))
    b = Builder((2, 5), in_width, out_width)
    b.op(Opcode.CLIP, [0], (lo, hi))
    _check(verifier, b.build())


def test_output_may_be_the_input_or_a_constant(verifier: Contract) -> None:
    # A program with no ops whose output is its input.
    program = Program(2, 2, ((3,),), 0, 0, (), ())
    _check(verifier, program)
    c = Builder((3,), 2, 2)
    k = c.const(np.array([5, -5, 300]), 2)
    c.op(Opcode.ADD, [0, k])
    _check(verifier, c.build(output=k))


def test_an_mlp_reuses_buffers_without_corrupting_live_tensors(verifier: Contract) -> None:
    """A residual connection keeps a tensor alive across several in-place-capable ops."""
    rng = np.random.default_rng(7)
    b = Builder((1, 16), input_width=1)
    h = 0
    for _ in range(3):
        w = b.const(rng.integers(-128, 128, size=(16, 16)), 1)
        y = b.op(Opcode.MATMUL, [h, w])
        y = b.op(Opcode.ADD, [y, b.const(rng.integers(-1000, 1000, size=(16,)), 2)])
        y = b.op(Opcode.DIV, [y, b.const(np.array([64]))])
        y = b.op(Opcode.MAX, [y, b.const(np.array([0]))])
        h = b.op(Opcode.ADD, [y, h])  # residual: h is read after the ops above
    b.op(Opcode.ARGMAX, [h], (1, 0, 0))
    _check(verifier, b.build())


def test_matmul_scratch_recycled_from_a_dead_activation_starts_clean(verifier: Contract) -> None:
    """The MatMul's lane scratch (300 words for N = 32, int8) may be a dead activation buffer of the same
    length from the pool: its old values must not leak into the lanes."""
    b = Builder((1, 300), input_width=1)
    t = b.op(Opcode.TRANSPOSE, [0])  # the input's 300-word buffer dies here, dirty
    r = b.op(Opcode.RESHAPE, [t], shape=(10, 30))
    b.op(Opcode.MATMUL, [r, b.const(np.random.default_rng(2).integers(-128, 128, size=(30, 32)), 1)])
    _check(verifier, b.build(), [np.full((1, 300), 127), np.full((1, 300), -128)])
