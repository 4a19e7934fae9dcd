"""The transformer converter: its integer LayerNorm and softmax track the float ones on ordinary and
hostile rows, the shipped integer graph runs in onnxruntime as int64 within one point of the float
model's accuracy, and graphs that are not this encoder are refused."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from oracle.errors import ProfileError
from oracle.profile.datasets import load_split
from oracle.profile.fixed_point import IR_VERSION, OPSET
from oracle.profile.models import model_bytes, model_entry
from oracle.profile.transformer import (
    ACT_BITS,
    PROB_BITS,
    RESID_BITS,
    IntScales,
    _Act,
    _Lowering,
    convert_transformer,
    isqrt_steps,
    ort_labels,
)
from oracle.profile.transformer_float import EPS, TransformerShape, layer_norm, read_onnx

SHAPE = TransformerShape(vocab=17, side=8, patch=2, dim=32, heads=4, ffn=64, layers=2, classes=10)
SCALES = IntScales(resid=9, qk=8, v=8, ffn=8, weight_width=1)
#: The ops the lowering may emit: the profile's, plus those of issue 11 (Gather, ReduceSum, ReduceMax).
PROFILE_OPS = {"MatMul", "Add", "Sub", "Mul", "Div", "Clip", "Reshape", "Transpose", "ArgMax", "Gather",
               "ReduceSum", "ReduceMax"}


def run_piece(build: Callable[[_Lowering, _Act], str], x: np.ndarray, mult: float) -> np.ndarray:
    """Run one lowered piece (its integer input named ``input``) in onnxruntime as int64."""
    import onnxruntime as ort

    low = _Lowering({}, SHAPE, SCALES)
    out = build(low, _Act("input", mult))
    graph = helper.make_graph(low.g.nodes, "piece",
                              [helper.make_tensor_value_info("input", TensorProto.INT64, list(x.shape))],
                              [helper.make_tensor_value_info(out, TensorProto.INT64, None)], initializer=low.g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, {"input": x.astype(np.int64)})[0])


def test_newton_square_root_is_exact_on_the_calibrated_range_and_bounded_everywhere() -> None:
    low = _Lowering({}, SHAPE, SCALES)
    to_int = SHAPE.dim**3 * 2.0 ** (2 * SCALES.resid - low.var_shift)
    lo, hi = int(SCALES.var_lo * to_int), int(SCALES.var_hi * to_int)
    rng = np.random.default_rng(3)
    v = np.concatenate([np.arange(lo, lo + 5000), rng.integers(lo, hi, 20000), [hi]]).astype(np.int64)
    roots, steps = isqrt_steps(low.y0, v, low.newton_top)
    assert steps <= low.newton_steps <= 8
    exact = np.array([math.isqrt(int(a)) for a in v])
    assert np.all((roots == exact) | (roots == exact + 1))
    # Outside that range (hostile inputs) the unrolled steps give an approximate root, never 0 or > 2^15.
    y = np.full(4, low.y0)
    wild = np.array([0, 1, 1 << 30, (1 << 30) - 1])
    for _ in range(low.newton_steps):
        y = np.clip((y + wild // y) // 2, 1, low.newton_top)
    assert y.min() >= 1 and y.max() <= 1 << 15


def test_integer_layer_norm_tracks_float_on_ordinary_and_hostile_rows() -> None:
    f = SCALES.resid
    rng = np.random.default_rng(4)
    r = 1 << RESID_BITS
    rows = np.concatenate([
        np.rint(rng.normal(0, 1.5, size=(60, SHAPE.dim)) * 2**f),
        np.full((1, SHAPE.dim), r),  # constant row: variance 0, the Newton Clip keeps the divisor >= 1
        np.where(np.arange(SHAPE.dim) % 2, -r, r).reshape(1, -1),  # the largest variance
        np.eye(1, SHAPE.dim) * r,  # one spike
        np.eye(1, SHAPE.dim) * 3,  # a spread of 3 quanta: below the input's own resolution, only bounded
    ]).astype(np.int64)
    got = {}

    def piece(low: _Lowering, a: _Act) -> str:
        n = low.layer_norm(a, "ln")
        got["mult"] = n.mult
        return n.name

    out = run_piece(piece, rows, 2.0**-f)
    want = layer_norm(rows * 2.0**-f, 1.0, 0.0, np, EPS)
    assert np.all(out[60] == 0)
    err = np.abs(out * got["mult"] - want)[:63][np.arange(63) != 60]
    assert err.max() < 0.02 * math.sqrt(SHAPE.dim), err.max()
    assert np.abs(out).max() <= 2 ** (ACT_BITS)


def test_integer_softmax_tracks_float_and_never_divides_by_zero() -> None:
    bits = 2 * SCALES.qk
    rng = np.random.default_rng(5)
    scores = np.rint(rng.normal(0, 3, size=(2, 8, SHAPE.seq)) * 2**bits)
    scores[0, 0] = 0  # all equal
    scores[0, 1] = -(1 << 29)
    scores[0, 1, 7] = 1 << 29  # one score dwarfs the rest (int32 edge of ReduceMax)
    scores[1, 0] = np.where(np.arange(SHAPE.seq) % 2, -(1 << 29), 1 << 29)
    out = run_piece(lambda low, a: low.softmax_rows(a.name, bits, "sm"), scores.astype(np.int64), 2.0**-bits)
    real = scores * 2.0**-bits
    e = np.exp(real - real.max(axis=-1, keepdims=True))
    want = e / e.sum(axis=-1, keepdims=True)
    assert np.abs(out / 2**PROB_BITS - want).max() < 0.01
    assert out.min() >= 0 and out.max() <= 1 << PROB_BITS
    assert out[0, 1, 7] == 1 << PROB_BITS


def test_graphs_that_are_not_the_encoder_are_refused_with_what_differs() -> None:
    with pytest.raises(ProfileError, match="initializers named embed"):
        read_onnx(model_bytes("digits_cnn_float"))
    model = onnx.load_model_from_string(model_bytes("digits_transformer_float"))
    relu = next(n for n in model.graph.node if n.op_type == "Relu")
    relu.op_type = "Gelu"
    with pytest.raises(ProfileError, match="Gelu"):
        read_onnx(model)


@pytest.fixture(scope="module")
def shipped() -> tuple[onnx.ModelProto, onnx.ModelProto]:
    return (onnx.load_model_from_string(model_bytes("digits_transformer_float")),
            onnx.load_model_from_string(model_bytes("digits_transformer")))


def test_shipped_integer_graph_uses_only_profile_ops_and_reproduces_the_conversion(shipped: tuple) -> None:
    float_model, int_model = shipped
    assert {n.op_type for n in int_model.graph.node} <= PROFILE_OPS
    _, shape, _ = read_onnx(float_model)
    assert shape.layers >= 2 and shape.heads >= 2
    split = load_split("digits")
    conv = convert_transformer(float_model, split.x_train, split.y_train, split.x_test, split.y_test)
    assert conv.model.SerializeToString(deterministic=True) == model_bytes("digits_transformer")
    rep = conv.report  # the conversion checked onnxruntime == reference on all 450 held-out digits
    assert int(rep.notes[0].removeprefix("macs=")) <= 1_000_000
    entry = model_entry("digits_transformer")
    assert (rep.float_accuracy, rep.int_accuracy, rep.agreement) == (
        entry["float_accuracy"], entry["int_accuracy"], entry["agreement"])
    assert rep.float_accuracy >= 0.94
    assert rep.int_accuracy >= rep.float_accuracy - 0.01, rep
    assert rep.agreement >= 0.98


def test_shipped_integer_graph_runs_on_hostile_tokens(shipped: tuple) -> None:
    """Out-of-range pixels (the whole int8 input range) are clipped before Gather: no crash, a label."""
    _, int_model = shipped
    rng = np.random.default_rng(6)
    tokens = np.concatenate([np.full((1, 64), -128), np.full((1, 64), 127), rng.integers(-128, 128, (30, 64)),
                             np.full((1, 64), 16), np.zeros((1, 64))])
    labels = ort_labels(int_model, tokens)
    assert labels.min() >= 0 and labels.max() <= 9


def test_worker_accepts_digits_transformer_and_its_session_matches_the_manifest(tmp_path: Any) -> None:
    """The operator's model store validates the file (ops, sizes, I/O) and a worker's onnxruntime session
    answers the manifest's outputs (the reference's) for every shipped sample."""
    import onnxruntime as ort
    from eth_utils.crypto import keccak

    from oracle.chain.types import Mode, Model
    from oracle.profile.models import model_path
    from oracle.runtime.inference import run_once, session_options
    from oracle.runtime.model_store import ModelStore

    entry = model_entry("digits_transformer")
    data = model_bytes("digits_transformer")
    model = Model(model_id=1, owner="0x" + "00" * 20, retired=False, mode=Mode.EXACT, fee=1, bond=1,
                  input_length=64, output_length=1, onnx_hash=bytes(keccak(data)),
                  program_commitment=bytes.fromhex(entry["program_commitment"][2:]),
                  uri=model_path("digits_transformer").as_uri())
    info = ModelStore(tmp_path, max_model_bytes=2**20, max_tensor_bytes=2**20).get(model)
    session = ort.InferenceSession(data, sess_options=session_options(), providers=["CPUExecutionProvider"])
    for sample in entry["samples"]:
        out = run_once(session, info.input, info.output, bytes.fromhex(sample["input_hex"][2:]))
        assert out == bytes.fromhex(sample["expected_output_hex"][2:])


def _without_clip(model: onnx.ModelProto, name_prefix: str, nth: int = 0) -> onnx.ModelProto:
    """The graph with the ``nth`` Clip whose name starts with ``name_prefix`` removed (its input rewired)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    clip = [n for n in out.graph.node if n.op_type == "Clip" and n.name.startswith(name_prefix)][nth]
    for n in out.graph.node:
        n.input[:] = [clip.input[0] if i == clip.output[0] else i for i in n.input]
    out.graph.node.remove(clip)
    for name in clip.input[1:]:  # its bounds, now unused
        out.graph.initializer.remove(next(t for t in out.graph.initializer if t.name == name))
    return out


def test_the_clips_that_make_hostile_inputs_safe_are_required(shipped: tuple) -> None:
    """Attack: without the Clip before the embedding Gather, a pixel of 127 indexes past the table
    (onnxruntime fails, so no honest answer exists and the verifier would read zeros); without the exp
    table's index Clip or the Clip of the softmax sum (a divisor that could be zero, as far as anything
    can prove), the same. The compiler refuses all three graphs."""
    import onnxruntime as ort
    from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument, RuntimeException

    from oracle.profile.compiler import compile_onnx

    _, int_model = shipped
    compile_onnx(int_model, 1, 1)  # the shipped graph compiles
    unclipped = _without_clip(int_model, "pixels")
    sess = ort.InferenceSession(unclipped.SerializeToString(), providers=["CPUExecutionProvider"])
    with pytest.raises((Fail, InvalidArgument, RuntimeException)):
        sess.run(None, {"input": np.full((1, 64), 127, dtype=np.int64)})
    with pytest.raises(ProfileError, match="Gather"):
        compile_onnx(unclipped, 1, 1)
    with pytest.raises(ProfileError, match="Gather indices"):  # the exp table's index
        compile_onnx(_without_clip(int_model, "layer0.softmax", 0), 1, 1)
    with pytest.raises(ProfileError, match="Div"):  # the softmax sum as a divisor
        compile_onnx(_without_clip(int_model, "layer0.softmax", 1), 1, 1)


def test_cli_convert_dispatches_the_transformer_and_refuses_in_one_line(tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from oracle.cli import app

    src, out = tmp_path / "xfmr.onnx", tmp_path / "xfmr_int.onnx"
    src.write_bytes(model_bytes("digits_transformer_float"))
    args = ["model", "convert", str(src), "--dataset", "digits", "-o", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == model_bytes("digits_transformer")  # the shipped model is exactly this conversion

    bad = onnx.load_model_from_string(model_bytes("digits_transformer_float"))
    next(n for n in bad.graph.node if n.op_type == "Relu").op_type = "Tanh"
    src.write_bytes(bad.SerializeToString())
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Tanh" in errors[0], result.output
