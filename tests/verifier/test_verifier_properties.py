"""Property tests: random programs, random inputs, random corruptions; the verifier == the reference.

Hypothesis draws whole programs (chains of every op, broadcasting constants of every width, copies,
computed MatMul operands), MatMul-heavy cases that drive each path of the packed kernel (two-row
lanes, odd rows, mid-row lane flushes, the exact scalar path for large activations, width 8), and
byte-level corruptions of valid programs (the verifier accepts exactly what the reference decoder
accepts). Seeds are fixed (``derandomize``) so CI is reproducible.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3.contract import Contract

from oracle.errors import ProfileError
from oracle.profile.codec import encode_tensor, numel, width_range
from oracle.profile.opcodes import Opcode, padded_perm
from oracle.profile.program import Program, decode, encode
from tests.verifier.helpers import (
    INT64_MAX,
    INT64_MIN,
    Builder,
    assert_conforms,
    call,
    expect_revert,
    random_input,
    ref_bytes,
)

SETTINGS = settings(derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
WIDTHS = [1, 2, 4, 8]
ELEMENTWISE = [Opcode.ADD, Opcode.SUB, Opcode.MUL, Opcode.DIV, Opcode.MAX, Opcode.MIN]
BATCHED = "batched MatMul"


def _values(
    rng: np.random.Generator, shape: tuple[int, ...], width: int, small: bool, nonzero: bool = False
) -> np.ndarray:
    lo, hi = width_range(width)
    if small:
        lo, hi = max(lo, -4), min(hi, 4)
    v = rng.integers(lo, hi, size=shape, endpoint=True, dtype=np.int64)
    if width == 8 and not small and v.size:
        v.flat[rng.integers(0, v.size)] = rng.choice([INT64_MIN, INT64_MAX])
    if nonzero:
        v[v == 0] = 1
    return v


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@st.composite
def _reshape_target(draw: st.DrawFn, n: int) -> tuple[int, ...]:
    rank = draw(st.integers(0 if n == 1 else 1, 4))
    dims: list[int] = []
    rest = n
    for _ in range(rank - 1):
        d = draw(st.sampled_from(_divisors(rest)))
        dims.append(d)
        rest //= d
    if rank:
        dims.append(rest)
    return tuple(dims)


@st.composite
def _broadcast_partner(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A shape that broadcasts with ``shape`` (dims kept or set to 1, leading dims dropped or added)."""
    dims = [d if draw(st.booleans()) else 1 for d in shape]
    drop = draw(st.integers(0, len(dims)))
    dims = dims[drop:]
    # Extra leading dims only when none were dropped (they would align against the operand's own).
    extra = 0 if drop else draw(st.integers(0, 4 - len(shape)))
    return tuple(draw(st.lists(st.integers(1, 3), min_size=extra, max_size=extra))) + tuple(dims)


@st.composite
def programs(draw: st.DrawFn) -> tuple[Program, int]:
    """A random valid program (chain of up to 7 ops) and a seed for its inputs."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    in_width = draw(st.sampled_from(WIDTHS))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=0, max_size=3)))
    b = Builder(shape, in_width, draw(st.sampled_from([8, 8, 8, 4, 1])))
    live = [0]
    for _ in range(draw(st.integers(1, 7))):
        x = draw(st.sampled_from(live))
        xs = b.shapes[x]
        kind = draw(
            st.sampled_from(
                [
                    *ELEMENTWISE,
                    Opcode.MATMUL,
                    Opcode.MATMUL,
                    Opcode.CLIP,
                    Opcode.RESHAPE,
                    Opcode.FLATTEN,
                    Opcode.TRANSPOSE,
                    Opcode.ARGMAX,
                    Opcode.IDENTITY,
                    Opcode.CAST,
                    Opcode.GATHER,
                    Opcode.REDUCE_SUM,
                    Opcode.REDUCE_MAX,
                    Opcode.TRANSPOSE_ND,
                    BATCHED,
                ]
            )
        )
        if kind in ELEMENTWISE:
            # A computed divisor may be zero: x / 0 = 0 (total semantics).
            partners = [t for t in live if _broadcasts(xs, b.shapes[t])]
            if partners and draw(st.booleans()):
                other = draw(st.sampled_from(partners))
            else:
                w = draw(st.sampled_from(WIDTHS))
                cshape = draw(_broadcast_partner(xs))
                other = b.const(_values(rng, cshape, w, draw(st.booleans()), nonzero=kind is Opcode.DIV), w)
            operands = [x, other] if kind is Opcode.DIV or draw(st.booleans()) else [other, x]
            out = b.op(kind, operands)
        elif kind in (Opcode.MATMUL, Opcode.TRANSPOSE):
            if len(xs) != 2:
                n = numel(xs)
                x = b.op(Opcode.RESHAPE, [x], shape=draw(st.sampled_from([(1, n), (n, 1)])))
                xs = b.shapes[x]
            if kind is Opcode.TRANSPOSE:
                out = b.op(kind, [x])
            elif draw(st.integers(0, 4)) == 0:
                out = b.op(kind, [x, b.op(Opcode.TRANSPOSE, [x])])  # both operands computed
            else:
                w = draw(st.sampled_from(WIDTHS))
                n = draw(st.integers(1, 40))
                weights = b.const(_values(rng, (xs[1], n), w, draw(st.booleans())), w)
                out = b.op(kind, [x, weights])
        elif kind is Opcode.GATHER:
            # Indices (any values: outside [0, n) select zeros) from x; data a constant or a computed tensor.
            data = draw(st.sampled_from([t for t in live if b.shapes[t] and len(b.shapes[t]) + len(xs) <= 5] or [-1]))
            if data < 0 or draw(st.booleans()):
                w = draw(st.sampled_from(WIDTHS))
                dshape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=5 - max(len(xs), 1))))
                data = b.const(_values(rng, dshape, w, draw(st.booleans())), w)
            if len(xs) + len(b.shapes[data]) > 5:
                x = b.op(Opcode.RESHAPE, [x], shape=(numel(xs),))
            out = b.op(kind, [data, x])
        elif kind in (Opcode.REDUCE_SUM, Opcode.REDUCE_MAX) and xs:
            out = b.op(kind, [x], (draw(st.integers(0, len(xs) - 1)), draw(st.integers(0, 1))))
        elif kind is Opcode.TRANSPOSE_ND:
            perm = draw(st.permutations(list(range(len(xs)))))
            out = b.op(kind, [x], padded_perm(perm))
        elif kind is BATCHED:
            n = numel(xs)
            batch = draw(st.sampled_from(_divisors(n)))
            m = draw(st.sampled_from(_divisors(n // batch)))
            x = b.op(Opcode.RESHAPE, [x], shape=(batch, m, n // batch // m))
            if draw(st.booleans()):  # both operands computed: x x^T per batch
                out = b.op(Opcode.MATMUL, [x, b.op(Opcode.TRANSPOSE_ND, [x], (0, 1, 3, 2))])
            else:
                w = draw(st.sampled_from(WIDTHS))
                wshape = ((batch,) if draw(st.booleans()) else ()) + (n // batch // m, draw(st.integers(1, 9)))
                out = b.op(Opcode.MATMUL, [x, b.const(_values(rng, wshape, w, draw(st.booleans())), w)])
        elif kind is Opcode.CLIP:
            lo = draw(st.integers(INT64_MIN, INT64_MAX) | st.integers(-50, 50))
            hi = draw(st.integers(lo, INT64_MAX) | st.integers(lo, lo + 100).filter(lambda h: h <= INT64_MAX))
            out = b.op(kind, [x], (lo, hi))
        elif kind is Opcode.RESHAPE:
            out = b.op(kind, [x], shape=draw(_reshape_target(numel(xs))))
        elif kind is Opcode.FLATTEN:
            a = draw(st.sampled_from(_divisors(numel(xs))))
            out = b.op(kind, [x], shape=(a, numel(xs) // a))
        elif kind is Opcode.ARGMAX and xs:
            out = b.op(
                kind,
                [x],
                (draw(st.integers(0, len(xs) - 1)), draw(st.integers(0, 1)), draw(st.integers(0, 1))),
            )
        elif kind is Opcode.CAST:
            out = b.op(kind, [x], (draw(st.sampled_from(WIDTHS)),))
        else:
            out = b.op(Opcode.IDENTITY, [x])
        live.append(out)
    return b.build(live[-1]), draw(st.integers(0, 2**32 - 1))


def _broadcasts(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return all(x == y or x == 1 or y == 1 for x, y in zip(reversed(a), reversed(b), strict=False))


@settings(SETTINGS, max_examples=250)
@given(programs())
def test_random_programs_match_the_reference(verifier: Contract, case: tuple[Program, int]) -> None:
    program, seed = case
    rng = np.random.default_rng(seed)
    small = np.clip(random_input(program, rng), -3, 3)
    for x in (random_input(program, rng), small):
        assert_conforms(verifier, program, x)


# --------------------------------------------------------------------------------------------------
# The packed MatMul kernel, path by path
# --------------------------------------------------------------------------------------------------

#: Activation magnitudes that steer the kernel: lanes without flushes, forced lane flushes (sums
#: beyond 2^(24w)), the exact path (|x| > 2^(24w) - 1), and a mix with many zeros (post-ReLU).
PROFILES = ["small", "relu", "flush", "huge", "mixed"]


def _activations(rng: np.random.Generator, shape: tuple[int, int], profile: str, width: int) -> np.ndarray:
    lim = 1 << min(24 * width, 62)
    if profile == "small":
        x = rng.integers(-300, 300, size=shape)
    elif profile == "relu":
        x = np.maximum(rng.integers(-200, 200, size=shape), 0)
    elif profile == "flush":
        x = rng.integers(lim // 8, lim // 2, size=shape) * rng.choice([-1, 1], size=shape)
    elif profile == "huge":
        x = rng.integers(INT64_MIN, INT64_MAX, size=shape, endpoint=True)
    else:
        x = rng.choice([0, 0, 1, -1, 127, -128, lim - 1, -(lim - 1), lim, INT64_MIN, INT64_MAX], size=shape)
    return np.asarray(x, dtype=np.int64)


@settings(SETTINGS, max_examples=300)
@given(
    m=st.integers(1, 3),
    k=st.integers(1, 70),
    n=st.integers(1, 70),
    width=st.sampled_from(WIDTHS),
    profile=st.sampled_from(PROFILES),
    extreme_weights=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_packed_matmul_matches_numpy_on_every_kernel_path(
    verifier: Contract, m: int, k: int, n: int, width: int, profile: str, extreme_weights: bool, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    lo, hi = width_range(width)
    if extreme_weights:
        w = rng.choice([lo, hi, lo + 1, hi - 1, -1, 0, 1], size=(k, n))
    else:
        w = rng.integers(lo, hi, size=(k, n), endpoint=True)
    b = Builder((m, k))
    b.op(Opcode.MATMUL, [0, b.const(w, width)])
    program = b.build()
    assert_conforms(verifier, program, _activations(rng, (m, k), profile, width))


# --------------------------------------------------------------------------------------------------
# Corrupted programs: accepted on-chain exactly when the reference decoder accepts them
# --------------------------------------------------------------------------------------------------

DECODE_ERRORS = {"MalformedProgram", "UnsupportedOpcode", "ShapeMismatch"}


def _judge(verifier: Contract, data: bytes, program_input: bytes | None) -> None:
    try:
        program = decode(data)
    except ProfileError:
        got = call(verifier.functions.execute(data, program_input or b""))
        assert getattr(got, "name", None) in DECODE_ERRORS, f"reference rejects, verifier returned {got!r}"
        return
    if max(numel(s) for s in program.shapes) > 4096:
        return  # valid but too big to run here
    inp = encode_tensor(np.zeros(program.input_shape, dtype=np.int64), program.input_width)
    got = call(verifier.functions.execute(data, inp))
    assert bytes(got) == ref_bytes(program, inp)


@settings(SETTINGS, max_examples=200)
@given(programs(), st.data())
def test_corrupted_programs_are_accepted_iff_the_reference_accepts_them(
    verifier: Contract, case: tuple[Program, int], data: st.DataObject
) -> None:
    program, _ = case
    raw = bytearray(encode(program))
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.sampled_from([0, 1, 2, 4, 5, 8, 15, 0x7F, 0x80, 0xFF, raw[pos] ^ 1]))
    _judge(verifier, bytes(raw), None)


@settings(SETTINGS, max_examples=40)
@given(programs())
def test_every_truncation_or_extension_is_malformed(verifier: Contract, case: tuple[Program, int]) -> None:
    program, _ = case
    data = encode(program)
    inp = encode_tensor(np.zeros(program.input_shape, dtype=np.int64), program.input_width)
    cuts = sorted({0, 1, 4, 7, len(data) // 3, len(data) // 2, len(data) - 1})
    for cut in cuts:
        got = call(verifier.functions.execute(data[:cut], inp))
        assert getattr(got, "name", None) == "MalformedProgram", f"prefix of {cut} bytes: {got!r}"
    expect_revert(call(verifier.functions.execute(data + b"\x00", inp)), "MalformedProgram", len(data))


@pytest.mark.parametrize(
    "pattern",
    ["max_limb", "max_limb_alternating", "two_limbs", "int64_extremes", "mixed_levels"],
)
def test_packed_matmul_flushes_full_lanes_at_every_level(verifier: Contract, pattern: str) -> None:
    """600 rows of maximal 16-bit limbs overflow the 2^24 lane budget of int8 weights: lanes must be
    flushed mid-row, at level 0 and at the levels of the higher limbs."""
    k, n = 600, 40
    rng = np.random.default_rng(11)
    signs = np.where(np.arange(k) % 2 == 0, 1, -1)
    x = {
        "max_limb": np.full(k, 0xFFFF),
        "max_limb_alternating": 0xFFFF * signs,
        "two_limbs": np.full(k, 2**32 - 1) * signs,
        "int64_extremes": np.where(signs > 0, INT64_MAX, INT64_MIN),
        "mixed_levels": rng.choice([0xFFFF, -(2**32 - 1), 2**48 - 1, INT64_MIN, 0, 1], size=k),
    }[pattern]
    b = Builder((1, k))
    b.op(Opcode.MATMUL, [0, b.const(rng.integers(-128, 128, size=(k, n)), 1)])
    assert_conforms(verifier, b.build(), np.asarray(x, dtype=np.int64).reshape(1, k))
