"""The ops transformers need (issue 11): batched MatMul, Gather, ReduceSum/ReduceMax, Div by a computed
divisor, N-D Transpose. onnxruntime == the reference interpreter == the on-chain verifier, bit for bit,
under hypothesis (shapes with size-1 dimensions, inputs at the extremes of their width), and the compiler
refuses what onnxruntime would not compute (out-of-range Gather indices, a divisor that can be 0, a
ReduceMax whose operands leave int32) with a message that says what to do.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import helper
from profile_helpers import const, make_model, ort_run, ort_session
from web3.contract import Contract

from oracle.errors import ProfileError
from oracle.profile.binding import ProgramRunner
from oracle.profile.codec import width_range
from oracle.profile.compiler import compile_onnx
from oracle.profile.opcodes import Opcode
from oracle.profile.program import Program
from oracle.profile.reference import run
from tests.verifier.conftest import verifier  # noqa: F401 (fixture)
from tests.verifier.helpers import Builder, assert_conforms

SETTINGS = settings(derandomize=True, deadline=None, max_examples=12, suppress_health_check=list(HealthCheck))
dims = st.integers(1, 4)


def _node(op: str, inputs: list[str], out: str = "y", **attrs: object) -> onnx.NodeProto:
    return helper.make_node(op, inputs, [out], name=f"{op.lower()}_{out}", **attrs)


def _inputs(shape: tuple[int, ...], width: int, seed: int) -> list[np.ndarray]:
    lo, hi = width_range(width)
    rng = np.random.default_rng(seed)
    return [
        np.full(shape, lo, dtype=np.int64),
        np.full(shape, hi, dtype=np.int64),
        np.where(np.indices(shape).sum(axis=0) % 2 == 0, lo, hi).astype(np.int64),
        rng.integers(lo, hi, size=shape, endpoint=True, dtype=np.int64),
        rng.integers(-3, 4, size=shape, dtype=np.int64),
    ]


def _agree(
    verifier: Contract,  # noqa: F811
    model: onnx.ModelProto,
    shape: tuple[int, ...],
    width: int,
    seed: int,
    opcodes: set[Opcode],
    out_width: int = 8,
) -> Program:
    """Compiles ``model`` and checks ORT == reference == verifier on extreme and random inputs."""
    program = compile_onnx(model, width, out_width)
    assert opcodes <= {op.opcode for op in program.ops}, [op.opcode.name for op in program.ops]
    session = ort_session(model)
    runner = ProgramRunner(program)
    for x in _inputs(shape, width, seed):
        want = session.run(None, {"x": x})[0]
        assert np.array_equal(run(program, x), want)
        assert np.array_equal(runner.run(x), want)  # what the worker answers with
        assert_conforms(verifier, program, x)
    return program


# --------------------------------------------------------------------------------------------------
# Batched MatMul
# --------------------------------------------------------------------------------------------------


@SETTINGS
@given(b=dims, m=dims, k=dims, seed=st.integers(0, 2**16))
def test_batched_matmul_of_activations(verifier: Contract, b: int, m: int, k: int, seed: int) -> None:  # noqa: F811
    """Q x K^T shape: [B,M,K] x [B,K,M], both operands computed (the second by an N-D Transpose)."""
    nodes = [_node("Transpose", ["x"], "t", perm=[0, 2, 1]), _node("MatMul", ["x", "t"])]
    model = make_model(nodes, [b, m, k], [b, m, m])
    _agree(verifier, model, (b, m, k), 2, seed, {Opcode.MATMUL, Opcode.TRANSPOSE_ND})


@SETTINGS
@given(b=dims, m=dims, k=dims, n=dims, batched=st.booleans(), seed=st.integers(0, 2**16))
def test_rank3_matmul_with_constant_weights(
    verifier: Contract, b: int, m: int, k: int, n: int, batched: bool, seed: int  # noqa: F811
) -> None:
    rng = np.random.default_rng(seed)
    w_shape = (b, k, n) if batched else (k, n)
    w = rng.integers(-128, 128, size=w_shape)
    model = make_model([_node("MatMul", ["x", "w"])], [b, m, k], [b, m, n], [const("w", w)])
    _agree(verifier, model, (b, m, k), 1, seed, {Opcode.MATMUL})


@pytest.mark.parametrize("batched", [True, False])
def test_batched_matmul_beyond_double_precision(verifier: Contract, batched: bool) -> None:  # noqa: F811
    """Products near 2^62 (int32 operands): onnxruntime's int64 batched MatMul must stay exact there (its
    int64 ReduceSum does not, see the ReduceSum test)."""
    if batched:
        nodes = [_node("Transpose", ["x"], "t", perm=[0, 2, 1]), _node("MatMul", ["x", "t"])]
        model = make_model(nodes, [3, 4, 1], [3, 4, 4])
    else:
        w = const("w", np.array([[2**31 - 1, -(2**31), 2**31 - 3]]))
        model = make_model([_node("MatMul", ["x", "w"])], [3, 4, 1], [3, 4, 3], [w])
    _agree(verifier, model, (3, 4, 1), 4, 11, {Opcode.MATMUL})


def test_batched_matmul_refuses_mismatched_batches() -> None:
    model = make_model([_node("MatMul", ["x", "w"])], [2, 3, 4], [2, 3, 5], [const("w", np.ones((3, 4, 5)))])
    with pytest.raises(ProfileError, match=r"\[B,M,K\]x\[B,K,N\]"):
        compile_onnx(model, 1, 8)


# --------------------------------------------------------------------------------------------------
# Gather
# --------------------------------------------------------------------------------------------------


@SETTINGS
@given(
    idx_shape=st.lists(dims, min_size=1, max_size=3).map(tuple),
    vocab=st.integers(1, 9),
    d=dims,
    seed=st.integers(0, 2**16),
)
def test_gather_embeddings(
    verifier: Contract, idx_shape: tuple[int, ...], vocab: int, d: int, seed: int  # noqa: F811
) -> None:
    """Token ids (clipped into the vocabulary) select rows of a constant embedding table."""
    table = np.random.default_rng(seed).integers(-(2**20), 2**20, size=(vocab, d))
    nodes = [
        helper.make_node("Clip", ["x", "lo", "hi"], ["ids"], name="clip_ids"),
        _node("Gather", ["table", "ids"], axis=0),
    ]
    inits = [const("table", table), const("lo", 0), const("hi", vocab - 1)]
    model = make_model(nodes, list(idx_shape), [*idx_shape, d], inits)
    _agree(verifier, model, idx_shape, 1, seed, {Opcode.GATHER})


@SETTINGS
@given(rows=dims, cols=dims, seed=st.integers(0, 2**16))
def test_gather_of_computed_data(verifier: Contract, rows: int, cols: int, seed: int) -> None:  # noqa: F811
    """Data and indices both computed: rows of the input picked by the input's own (clipped) values."""
    nodes = [
        helper.make_node("Clip", ["x", "lo", "hi"], ["ids"], name="clip_ids"),
        _node("Gather", ["x", "ids"]),
    ]
    model = make_model(nodes, [rows, cols], [rows, cols, cols], [const("lo", 0), const("hi", rows - 1)])
    _agree(verifier, model, (rows, cols), 2, seed, {Opcode.GATHER})


def test_gather_refuses_indices_not_proven_in_range() -> None:
    model = make_model([_node("Gather", ["table", "x"])], [1, 3], [1, 3, 2], [const("table", np.ones((5, 2)))])
    with pytest.raises(ProfileError, match=r"outside \[0, 5\).*Clip the indices to \[0, 4\]"):
        compile_onnx(model, 1, 8)


def test_gather_refuses_an_axis_other_than_0() -> None:
    model = make_model([_node("Gather", ["x", "i"], axis=1)], [2, 3], [2, 1], [const("i", [0])])
    with pytest.raises(ProfileError, match="axis 0 only"):
        compile_onnx(model, 1, 8)


# --------------------------------------------------------------------------------------------------
# ReduceSum, ReduceMax
# --------------------------------------------------------------------------------------------------


def _reduce_model(op: str, shape: tuple[int, ...], axis: int, keepdims: int, opset: int) -> onnx.ModelProto:
    """Axes as a constant input (ReduceSum from opset 13, ReduceMax from 18) or as an attribute."""
    out = list(shape)
    if keepdims:
        out[axis] = 1
    else:
        del out[axis]
    as_input = op == "ReduceSum" or opset >= 18
    if as_input:
        node = _node(op, ["x", "axes"], keepdims=keepdims)
        return make_model([node], list(shape), out, [const("axes", [axis])], opset=opset)
    return make_model([_node(op, ["x"], axes=[axis], keepdims=keepdims)], list(shape), out, opset=opset)


@SETTINGS
@given(
    op=st.sampled_from(["ReduceSum", "ReduceMax"]),
    shape=st.lists(dims, min_size=1, max_size=4).map(tuple),
    pick=st.integers(0, 2**16),
    keepdims=st.sampled_from([0, 1]),
    opset=st.sampled_from([17, 18]),
    seed=st.integers(0, 2**16),
)
def test_reduce_over_any_axis(
    verifier: Contract, op: str, shape: tuple[int, ...], pick: int, keepdims: int, opset: int, seed: int  # noqa: F811
) -> None:
    axis = pick % len(shape)
    if len(shape) == 1 and not keepdims:
        keepdims = 1  # a rank-0 model output is fine for the program, but keep ORT's output a tensor
    model = _reduce_model(op, shape, axis, keepdims, opset)
    code = Opcode.REDUCE_SUM if op == "ReduceSum" else Opcode.REDUCE_MAX
    # ReduceMax compares: its operands must stay in int32; ReduceSum's sums within 2^53 (4-byte input).
    _agree(verifier, model, shape, 4, seed, {code})


def test_reduce_max_refuses_operands_outside_int32() -> None:
    with pytest.raises(ProfileError, match="outside int32"):
        compile_onnx(_reduce_model("ReduceMax", (2, 3), 1, 1, 18), 8, 8)


def test_reduce_sum_refuses_sums_beyond_double_precision_and_several_axes() -> None:
    """onnxruntime 1.32 sums int64 in double: ReduceSum([2^53 + 1]) = 2^53. The profile refuses any
    ReduceSum whose partial sums can pass 2^53 (here: one int64 element)."""
    model = _reduce_model("ReduceSum", (1, 1), 1, 1, 17)
    x = np.array([[2**53 + 1]])
    assert int(ort_run(model, x)[0, 0]) == 2**53  # the onnxruntime behaviour the rule exists for
    with pytest.raises(ProfileError, match="beyond 2\\^53.*double"):
        compile_onnx(model, 8, 8)
    # Six-byte values in a row of four pass 2^53 too; three-byte ones do not.
    compile_onnx(_reduce_model("ReduceSum", (2, 4), 1, 1, 17), 4, 8)
    nodes = [_node("ReduceSum", ["x", "axes"])]
    model = make_model(nodes, [2, 3], [1, 1], [const("axes", [0, 1])])
    with pytest.raises(ProfileError, match="exactly one axis"):
        compile_onnx(model, 1, 8)


# --------------------------------------------------------------------------------------------------
# Div by a computed divisor
# --------------------------------------------------------------------------------------------------


@SETTINGS
@given(m=dims, n=dims, negative=st.booleans(), seed=st.integers(0, 2**16))
def test_div_by_a_computed_divisor_with_broadcasting(
    verifier: Contract, m: int, n: int, negative: bool, seed: int  # noqa: F811
) -> None:
    """x / clip(sum of the row): truncating, negative operands included, the divisor broadcast [M,1]."""
    lo, hi = (-(2**20), -1) if negative else (1, 2**20)
    nodes = [
        _node("ReduceSum", ["x", "axes"], "s", keepdims=1),
        helper.make_node("Clip", ["s", "lo", "hi"], ["d"], name="nonzero"),
        _node("Div", ["x", "d"]),
    ]
    inits = [const("axes", [1]), const("lo", lo), const("hi", hi)]
    model = make_model(nodes, [m, n], [m, n], inits)
    _agree(verifier, model, (m, n), 2, seed, {Opcode.DIV, Opcode.REDUCE_SUM})


def test_div_refuses_a_divisor_that_can_be_zero_and_int64_min_by_minus_one() -> None:
    nodes = [helper.make_node("Clip", ["x", "lo", "hi"], ["d"], name="d"), _node("Div", ["x", "d"])]
    model = make_model(nodes, [1, 2], [1, 2], [const("lo", -5), const("hi", 5)])
    with pytest.raises(ProfileError, match="contains 0.*non-zero"):
        compile_onnx(model, 1, 8)
    # A divisor that is always -1 on an int64 input: INT64_MIN / -1 would crash onnxruntime.
    nodes = [_node("Mul", ["x", "zero"], "z"), _node("Sub", ["z", "one"], "d"), _node("Div", ["x", "d"])]
    model = make_model(nodes, [1, 2], [1, 2], [const("zero", 0), const("one", 1)])
    with pytest.raises(ProfileError, match="overflow int64"):
        compile_onnx(model, 8, 8)


# --------------------------------------------------------------------------------------------------
# N-D Transpose and Reshape
# --------------------------------------------------------------------------------------------------


@SETTINGS
@given(shape=st.lists(dims, min_size=2, max_size=4).map(tuple), seed=st.integers(0, 2**16))
def test_transpose_nd_any_perm_and_reshape(
    verifier: Contract, shape: tuple[int, ...], seed: int  # noqa: F811
) -> None:
    perm = [int(p) for p in np.random.default_rng(seed).permutation(len(shape))]
    out = [shape[p] for p in perm]
    nodes = [
        _node("Transpose", ["x"], "t", perm=perm),
        _node("Reshape", ["t", "target"]),
    ]
    target = [out[0], -1] if len(out) > 1 else [-1]
    flat = [out[0], int(np.prod(out[1:]))]
    model = make_model(nodes, list(shape), flat, [const("target", target)])
    expected = {Opcode.RESHAPE} | ({Opcode.TRANSPOSE_ND} if perm != sorted(perm) and perm != [1, 0] else set())
    _agree(verifier, model, shape, 8, seed, expected)


def test_multi_head_attention_block(verifier: Contract) -> None:  # noqa: F811
    """All the new ops in one attention-shaped graph: embed, split heads, scores, max-shifted weights,
    normalise by a computed row sum, weighted values, merge heads."""
    rng = np.random.default_rng(7)
    seq, d, heads, vocab = 4, 8, 2, 11
    dh = d // heads
    inits = [
        const("emb", rng.integers(-64, 64, size=(vocab, d))),
        const("lo", 0),
        const("hi", vocab - 1),
        const("split", [seq, heads, dh]),
        const("merge", [seq, d]),
        const("ax", [2]),
        const("one", 1),
        const("big", 2**20),
        const("shift", 64),
    ]
    steps: list[tuple[str, list[str], str, dict[str, object]]] = [
        ("Clip", ["x", "lo", "hi"], "ids", {}),
        ("Gather", ["emb", "ids"], "e", {}),  # [seq, d]
        ("Reshape", ["e", "split"], "h", {}),  # [seq, heads, dh]
        ("Transpose", ["h"], "q", {"perm": [1, 0, 2]}),  # [heads, seq, dh]
        ("Transpose", ["h"], "kt", {"perm": [1, 2, 0]}),  # [heads, dh, seq]
        ("MatMul", ["q", "kt"], "s", {}),  # [heads, seq, seq]
        ("Div", ["s", "shift"], "s2", {}),
        ("ReduceMax", ["s2", "ax"], "mx", {"keepdims": 1}),
        ("Sub", ["s2", "mx"], "c", {}),
        ("Clip", ["c", "big_neg", "zero"], "cc", {}),
        ("Add", ["cc", "big"], "p", {}),  # positive weights
        ("ReduceSum", ["p", "ax"], "den", {"keepdims": 1}),
        ("Mul", ["p", "shift"], "pn", {}),
        ("Div", ["pn", "den"], "a", {}),  # computed divisor, proven >= 1
        ("MatMul", ["a", "q"], "o", {}),  # [heads, seq, dh]
        ("Transpose", ["o"], "om", {"perm": [1, 0, 2]}),
        ("Reshape", ["om", "merge"], "y", {}),
    ]
    inits += [const("big_neg", -(2**20)), const("zero", 0)]
    nodes = [helper.make_node(op, ins, [out], name=out, **attrs) for op, ins, out, attrs in steps]
    used = {i for _, ins, _, _ in steps for i in ins}
    model = make_model(nodes, [seq], [seq, d], [t for t in inits if t.name in used], opset=18)
    program = _agree(
        verifier,
        model,
        (seq,),
        1,
        3,
        {Opcode.GATHER, Opcode.TRANSPOSE_ND, Opcode.MATMUL, Opcode.REDUCE_MAX, Opcode.REDUCE_SUM, Opcode.DIV},
    )
    assert program.output_shape == (seq, d)


def test_transpose_refuses_a_bad_perm() -> None:
    model = make_model([_node("Transpose", ["x"], perm=[0, 0, 1])], [2, 2, 2], [2, 2, 2])
    with pytest.raises(ProfileError, match="not a permutation"):
        compile_onnx(model, 1, 8)


def test_total_semantics_of_hand_built_programs_on_chain(verifier: Contract) -> None:  # noqa: F811
    """The registry accepts programs the compiler would refuse; the format still defines one answer and the
    verifier computes it without reverting: x / 0 = 0, INT64_MIN / -1 = INT64_MIN, a Gather index outside
    [0, n) (negative ones included) selects zeros, ReduceSum wraps."""
    b = Builder((2, 4), input_width=8)
    q = b.op(Opcode.DIV, [0, b.op(Opcode.CLIP, [0], [-1, 0])])  # x / -1 and x / 0
    table = b.const(np.arange(12).reshape(6, 2) - 6, 1)
    g = b.op(Opcode.REDUCE_SUM, [b.op(Opcode.GATHER, [table, 0])], [2, 0])  # [2, 4]
    t = b.op(Opcode.REDUCE_MAX, [b.op(Opcode.TRANSPOSE_ND, [0], [0, 1, 3, 2])], [1, 0])  # [4]
    b.op(Opcode.ADD, [b.op(Opcode.ADD, [g, b.op(Opcode.REDUCE_SUM, [q], [0, 1])]), t])
    program = b.build()
    x = np.array([[0, -1, 2**63 - 1, -(2**63)], [-(2**63), -1, 5, 6]])
    assert_conforms(verifier, program, x)
    assert_conforms(verifier, program, np.array([[0, 0, 0, 0], [-1, -1, 3, 2**40]]))
