"""The compiler: what it folds and numbers canonically, and every rejection naming its node."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from profile_helpers import const, make_model, ort_run
from typer.testing import CliRunner

from oracle.cli.model_cmds import app
from oracle.errors import ProfileError
from oracle.profile.compiler import commitment_of_file, compile_detailed, compile_onnx
from oracle.profile.intervals import analyze
from oracle.profile.opcodes import Opcode
from oracle.profile.program import commitment, decode, encode
from oracle.profile.reference import run


def _mlp(width: int = 1) -> onnx.ModelProto:
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["m"], name="fc/MatMul"),
        helper.make_node("Add", ["m", "b"], ["a"], name="fc/Add"),
        helper.make_node("Div", ["a", "d"], ["q"], name="fc/Rescale"),
        helper.make_node("Max", ["q", "zero"], ["r"], name="fc/Relu"),
        helper.make_node("ArgMax", ["r"], ["y"], name="argmax", axis=1, keepdims=0),
    ]
    inits = [
        const("w", [[1, -2, 300], [4, 5, -6]]),
        const("b", [70000, 0, -1]),
        const("d", [[2, 4, 8]]),
        const("zero", 0),
    ]
    return make_model(nodes, [1, 2], [1], inits)


def _rejects(
    model: onnx.ModelProto | bytes, node: str, match: str, input_width: int = 1, output_width: int = 8
) -> None:
    with pytest.raises(ProfileError, match=match) as info:
        compile_onnx(model, input_width, output_width)
    assert info.value.node == node
    assert repr(node) in str(info.value)


def test_compiles_mlp_with_canonical_numbering_and_narrow_constants() -> None:
    comp = compile_detailed(_mlp(), 1, 1)
    p = comp.program
    assert comp.tensor_names[:5] == ("x", "w", "b", "d", "zero")
    assert [c.width for c in p.constants] == [2, 4, 1, 1]
    assert [op.opcode for op in p.ops] == [Opcode.MATMUL, Opcode.ADD, Opcode.DIV, Opcode.MAX, Opcode.ARGMAX]
    assert comp.node_names[0] == "fc/MatMul"
    assert decode(encode(p)) == p
    x = np.array([[-128, 127]], dtype=np.int64)
    assert np.array_equal(run(p, x), ort_run(_mlp(), x))


def test_compilation_is_deterministic_and_independent_of_names() -> None:
    a = encode(compile_onnx(_mlp(), 1, 1))
    renamed = _mlp()
    for node in renamed.graph.node:
        node.name = node.name.upper()
    assert encode(compile_onnx(renamed.SerializeToString(), 1, 1)) == a


def test_folds_constants_casts_and_clip_bounds() -> None:
    nodes = [
        helper.make_node(
            "Constant", [], ["k"], name="k", value=helper.make_tensor("kv", TensorProto.INT8, [2], [3, -4])
        ),
        helper.make_node("Cast", ["k"], ["k64"], name="widen", to=TensorProto.INT64),
        helper.make_node("Constant", [], ["two"], name="two", value_int=2),
        helper.make_node("Mul", ["k64", "two"], ["k2"], name="fold_me"),
        helper.make_node("Mul", ["x", "k2"], ["m"], name="scale"),
        helper.make_node("Clip", ["m", "lo", "hi"], ["y"], name="clip"),
    ]
    model = make_model(nodes, [1, 2], [1, 2], [const("lo", -100), const("hi", 100)])
    p = compile_onnx(model, 1, 1)
    assert [op.opcode for op in p.ops] == [Opcode.MUL, Opcode.CLIP]
    assert p.ops[1].attrs == (-100, 100)
    assert p.constants[0].values.tolist() == [6, -8]
    x = np.array([[20, -20]], dtype=np.int64)
    assert run(p, x).tolist() == ort_run(model, x).tolist() == [[100, 100]]


def test_refuses_ops_that_do_not_reach_the_output() -> None:
    # onnxruntime runs every node of the file; a dead x*x would overflow at width 8 unseen by the analysis.
    nodes = [
        helper.make_node("Mul", ["x", "x"], ["dead"], name="dead"),
        helper.make_node("Identity", ["x"], ["y"], name="keep"),
    ]
    _rejects(make_model(nodes, [2], [2]), "dead", "dead node", 8, 8)


def test_refuses_a_dead_div_by_minus_one_that_would_crash_onnxruntime() -> None:
    # Issue 9 item 8: Div(INT64_MIN, -1) raises SIGFPE inside onnxruntime; the analysis never saw the node.
    nodes = [
        helper.make_node("Div", ["x", "m1"], ["boom"], name="unused_div"),
        helper.make_node("Identity", ["x"], ["y"], name="keep"),
    ]
    _rejects(make_model(nodes, [1], [1], [const("m1", [-1])]), "unused_div", "dead node", 8, 8)


def test_refuses_unused_initializers() -> None:
    nodes = [helper.make_node("Identity", ["x"], ["y"], name="keep")]
    _rejects(make_model(nodes, [2], [2], [const("spare", [1, 2])]), "spare", "not used", 1, 1)


def test_constants_folded_into_a_live_op_are_live() -> None:
    nodes = [
        helper.make_node("Constant", [], ["k"], name="k", value_int=3),
        helper.make_node("Add", ["k", "one"], ["k1"], name="fold"),
        helper.make_node("Mul", ["x", "k1"], ["y"], name="scale"),
    ]
    p = compile_onnx(make_model(nodes, [2], [2], [const("one", 1)]), 1, 2)
    assert [op.opcode for op in p.ops] == [Opcode.MUL]


def test_interval_bounds_are_tight_for_constant_weights() -> None:
    bounds = analyze(compile_onnx(_mlp(), 1, 1))
    # MatMul column 0: x0*1 + x1*4 with x in [-128, 127] -> [-640, 635]
    assert bounds[0].lo.tolist()[0][0] == -640
    assert bounds[0].hi.tolist()[0][0] == 635


def test_commitment_of_file(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "m.onnx"
    path.write_bytes(_mlp().SerializeToString())
    program_bytes, digest = commitment_of_file(path, 1, 1)
    assert digest == "0x" + commitment(program_bytes).hex()
    assert program_bytes == encode(compile_onnx(_mlp(), 1, 1))


def test_cli_commitment_and_compile(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "m.onnx"
    path.write_bytes(_mlp().SerializeToString())
    out = Path(str(tmp_path)) / "m.program"
    _, digest = commitment_of_file(path, 1, 1)
    runner = CliRunner()
    res = runner.invoke(app, ["commitment", str(path), "--input-width", "1", "--output-width", "1"])
    assert res.exit_code == 0 and digest in res.output
    res = runner.invoke(
        app, ["compile", str(path), "-o", str(out), "--input-width", "1", "--output-width", "1"]
    )
    assert res.exit_code == 0
    assert out.read_bytes() == commitment_of_file(path, 1, 1)[0]
    res = runner.invoke(app, ["commitment", str(path), "--input-width", "8", "--output-width", "1"])
    assert res.exit_code == 1 and "overflow" in res.output


# -- rejections ---------------------------------------------------------------------------------------


def test_rejects_unknown_op() -> None:
    model = make_model([helper.make_node("Relu", ["x"], ["y"], name="bad_relu")], [1, 2], [1, 2])
    _rejects(model, "bad_relu", "Relu is not in the integer profile")


def test_rejects_gemm_with_hint() -> None:
    model = make_model(
        [helper.make_node("Gemm", ["x", "w"], ["y"], name="fc")],
        [1, 2],
        [1, 2],
        [const("w", [[1, 2], [3, 4]])],
    )
    _rejects(model, "fc", "Gemm is not in the integer profile")


def test_rejects_float_input() -> None:
    model = make_model(
        [helper.make_node("Identity", ["x"], ["y"], name="id")],
        [1, 2],
        [1, 2],
        input_type=TensorProto.FLOAT,
        output_type=TensorProto.FLOAT,
    )
    _rejects(model, "x", "FLOAT")


def test_rejects_float_initializer() -> None:
    model = make_model(
        [helper.make_node("Add", ["x", "c"], ["y"], name="add_float")],
        [1, 2],
        [1, 2],
        [const("c", [0.5, 1.5], np.float32)],
    )
    _rejects(model, "add_float", "FLOAT")


def test_rejects_dynamic_shape() -> None:
    model = make_model([helper.make_node("Identity", ["x"], ["y"], name="id")], ["batch", 2], ["batch", 2])
    _rejects(model, "x", "dynamic shape")


def test_rejects_possible_overflow() -> None:
    model = make_model([helper.make_node("Mul", ["x", "x"], ["y"], name="square")], [1, 2], [1, 2])
    _rejects(model, "square", "overflow", input_width=8)


def test_rejects_int64_min_divided_by_minus_one() -> None:
    model = make_model(
        [helper.make_node("Div", ["x", "d"], ["y"], name="negate")], [2], [2], [const("d", -1)]
    )
    _rejects(model, "negate", "overflow", input_width=8)


@pytest.mark.parametrize("op", ["Max", "Min"])
def test_rejects_comparison_beyond_int32(op: str) -> None:
    """onnxruntime 1.31's vectorised int64 Max/Min/Clip give Max(2^31, 0) = 0 on x86, so comparisons
    must be proved to stay inside int32."""
    nodes = [
        helper.make_node("Mul", ["x", "k"], ["m"], name="widen"),
        helper.make_node(op, ["m", "zero"], ["y"], name="relu"),
    ]
    model = make_model(nodes, [1, 2], [1, 2], [const("k", 2**17), const("zero", 0)])
    _rejects(model, "relu", "int32", input_width=2)
    compile_onnx(model, 1, 8)  # 128 * 2^17 fits int32: accepted


def test_rejects_clip_bound_beyond_int32() -> None:
    nodes = [helper.make_node("Clip", ["x", "lo", "hi"], ["y"], name="clip")]
    _rejects(make_model(nodes, [2], [2], [const("lo", 0), const("hi", 2**31 + 5)]), "clip", "int32")


def test_rejects_zero_divisor() -> None:
    model = make_model(
        [helper.make_node("Div", ["x", "d"], ["y"], name="div0")], [1, 2], [1, 2], [const("d", [3, 0])]
    )
    _rejects(model, "div0", "zero")


def test_rejects_a_computed_divisor_that_can_be_zero() -> None:
    model = make_model([helper.make_node("Div", ["x", "x"], ["y"], name="divx")], [1, 2], [1, 2])
    _rejects(model, "divx", "contains 0")


def test_rejects_external_data() -> None:
    model = _mlp()
    w = model.graph.initializer[0]
    w.ClearField("raw_data")
    w.ClearField("int64_data")
    w.data_location = TensorProto.EXTERNAL
    entry = w.external_data.add()
    entry.key, entry.value = "location", "weights.bin"
    _rejects(model.SerializeToString(), "w", "external data")


def test_rejects_output_wider_than_declared() -> None:
    model = make_model(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")],
        [1, 2],
        [1, 1],
        [const("w", [[100], [100]])],
    )
    _rejects(model, "fc", "output width", input_width=1, output_width=1)


def test_rejects_cast_that_could_truncate() -> None:
    nodes = [
        helper.make_node("Cast", ["x"], ["c"], name="narrow", to=TensorProto.INT8),
        helper.make_node("Cast", ["c"], ["y"], name="wide", to=TensorProto.INT64),
    ]
    _rejects(make_model(nodes, [2], [2]), "narrow", "truncate", input_width=2)


def test_rejects_narrow_operand() -> None:
    nodes = [
        helper.make_node("Cast", ["x"], ["c"], name="narrow", to=TensorProto.INT32),
        helper.make_node("Add", ["c", "c"], ["y"], name="narrow_add"),
    ]
    _rejects(make_model(nodes, [2], [2], output_type=TensorProto.INT32), "narrow_add", "int64")


def test_rejects_matmul_shapes_outside_the_profile() -> None:
    model = make_model(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="bmm")],
        [2],
        [2],
        [const("w", [[1, 0], [0, 1]])],
    )
    _rejects(model, "bmm", r"\[B,M,K\]x\[K,N\]")


def test_rejects_transpose_with_a_bad_perm() -> None:
    model = make_model(
        [helper.make_node("Transpose", ["x"], ["y"], name="t3", perm=[2, 1, 1])], [1, 2, 3], [3, 2, 2]
    )
    _rejects(model, "t3", "not a permutation")


def test_rejects_reshape_with_computed_shape() -> None:
    nodes = [helper.make_node("Reshape", ["x", "x"], ["y"], name="rs")]
    _rejects(make_model(nodes, [2], [2]), "rs", "constant")


def test_rejects_clip_with_dynamic_bounds() -> None:
    nodes = [helper.make_node("Clip", ["x", "x"], ["y"], name="clipx")]
    _rejects(make_model(nodes, [], []), "clipx", "constant scalars")


def test_rejects_output_that_does_not_depend_on_input() -> None:
    nodes = [helper.make_node("Identity", ["c"], ["y"], name="const_out")]
    _rejects(make_model(nodes, [1], [1], [const("c", [1])]), "y", "does not depend")


def test_rejects_declared_output_shape_mismatch() -> None:
    nodes = [helper.make_node("Identity", ["x"], ["y"], name="id")]
    _rejects(make_model(nodes, [1, 2], [2, 1]), "y", "declared")


def test_rejects_unsupported_attribute() -> None:
    nodes = [helper.make_node("Div", ["x", "d"], ["y"], name="div", broadcast=1)]
    with pytest.raises(ProfileError):
        compile_onnx(make_model(nodes, [2], [2], [const("d", 2)]), 1, 8)


def test_rejects_old_opset_and_garbage() -> None:
    model = make_model([helper.make_node("Identity", ["x"], ["y"], name="id")], [1], [1], opset=9)
    with pytest.raises(ProfileError, match="opset"):
        compile_onnx(model, 1, 1)
    with pytest.raises(ProfileError, match="not a valid ONNX"):
        compile_onnx(b"\x07garbage", 1, 1)


def test_rejects_bad_widths() -> None:
    with pytest.raises(ProfileError, match="width"):
        compile_onnx(_mlp(), 3, 1)


def test_per_op_outputs_match_onnxruntime_intermediates_for_bisection() -> None:
    """v2 bisection commits to every op output in program order; ORT can expose the same tensors."""
    from profile_helpers import ort_session

    from oracle.profile.reference import run_all

    model = _mlp()
    comp = compile_detailed(model, 1, 1)
    names = [comp.tensor_names[op.output] for op in comp.program.ops]
    del model.graph.output[:]
    model.graph.output.extend([helper.make_tensor_value_info(n, TensorProto.INT64, None) for n in names])
    x = np.array([[-128, 127]], dtype=np.int64)
    expected = ort_session(model).run(names, {"x": x})
    ours = run_all(comp.program, x)
    assert len(ours) == len(expected)
    for a, b in zip(ours, expected, strict=True):
        assert np.array_equal(a, b)
