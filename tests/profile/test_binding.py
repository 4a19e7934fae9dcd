"""Binding an ONNX file to its committed program, and the program runner the worker answers with."""

from __future__ import annotations

import os

import numpy as np
import pytest
from eth_utils import keccak
from hypothesis import HealthCheck, given, settings
from onnx import TensorProto, helper
from profile_helpers import const, make_model
from test_profile_properties import Case, random_cases

from oracle.profile.binding import BindingError, ProgramRunner, bind_exact, io_widths
from oracle.profile.codec import encode_tensor
from oracle.profile.compiler import compile_onnx
from oracle.profile.datasets import load_split
from oracle.profile.models import load_manifest, model_bytes, program_bytes
from oracle.profile.program import decode, encode
from oracle.profile.quantizer import Quantizer
from oracle.profile.reference import run, run_bytes
from oracle.runtime.binder import bind_in_child

EXACT = sorted(n for n, e in load_manifest()["models"].items() if e["mode"] == "EXACT")


def _lengths(name: str) -> tuple[int, int]:
    e = load_manifest()["models"][name]
    return (int(np.prod(e["input_shape"])) * e["input_width"], int(np.prod(e["output_shape"])) * e["output_width"])


def _bind(onnx_name: str, program_name: str, **kw: object) -> object:
    i, o = _lengths(program_name)
    return bind_exact(model_bytes(onnx_name), program_commitment=keccak(program_bytes(program_name)),
                      input_length=i, output_length=o, **kw)


@pytest.mark.parametrize("name", EXACT)
def test_every_shipped_pair_binds_to_its_program(name: str) -> None:
    b = _bind(name, name, onchain_program=program_bytes(name))
    assert b.program_bytes == program_bytes(name)  # type: ignore[attr-defined]


def test_a_mismatched_pair_is_refused_naming_both_programs() -> None:
    i, o = _lengths("digits")
    with pytest.raises(BindingError) as info:
        bind_exact(model_bytes("digits"), program_commitment=keccak(program_bytes("digits") + b"\x00"), input_length=i,
                   output_length=o)
    msg = str(info.value)
    assert "\n" not in msg
    assert "0x" + keccak(program_bytes("digits")).hex() in msg
    assert "0x" + keccak(program_bytes("digits") + b"\x00").hex() in msg
    assert "different models" in msg


def test_breast_cancer_file_with_the_digits_program_is_refused() -> None:
    # digits lengths (64, 1) do not fit breast_cancer's [1,30] input at any width: refused before compiling
    with pytest.raises(BindingError, match="registered input length 64 is not 30 elements"):
        _bind("breast_cancer", "digits")


def test_changed_onchain_chunks_are_refused() -> None:
    altered = bytearray(program_bytes("digits"))
    altered[-1] ^= 1
    with pytest.raises(BindingError, match="on-chain program changed"):
        _bind("digits", "digits", onchain_program=bytes(altered))


def test_a_dead_node_file_is_refused_even_if_its_program_matches() -> None:
    nodes = [helper.make_node("Div", ["x", "m1"], ["boom"], name="unused_div"),
             helper.make_node("Identity", ["x"], ["y"], name="keep")]
    bad = make_model(nodes, [1, 2], [1, 2], [const("m1", [-1])])
    good = make_model([helper.make_node("Identity", ["x"], ["y"], name="keep")], [1, 2], [1, 2])
    program = encode(compile_onnx(good, 8, 8))
    with pytest.raises(BindingError, match="dead node"):
        bind_exact(bad.SerializeToString(), program_commitment=keccak(program), input_length=16, output_length=16)


def test_two_outputs_and_random_bytes_are_refused() -> None:
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"]), helper.make_node("Identity", ["x"], ["z"])],
                          "two", [helper.make_tensor_value_info("x", TensorProto.INT64, [1, 2])],
                          [helper.make_tensor_value_info("y", TensorProto.INT64, [1, 2]),
                           helper.make_tensor_value_info("z", TensorProto.INT64, [1, 2])])
    two = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    with pytest.raises(BindingError, match="1 inputs and 2 outputs"):
        io_widths(two.SerializeToString(), 2, 2)
    with pytest.raises(BindingError, match="not a loadable ONNX file"):
        io_widths(os.urandom(500), 64, 1)


def test_binding_in_a_child_matches_and_reports_mismatches() -> None:
    i, o = _lengths("digits")
    b = bind_in_child(model_bytes("digits"), program_commitment=keccak(program_bytes("digits")),
                      input_length=i, output_length=o)
    assert b.program_bytes == program_bytes("digits")
    with pytest.raises(BindingError, match="different models"):
        bind_in_child(model_bytes("digits"), program_commitment=b"\x01" * 32, input_length=i, output_length=o)


def test_a_folding_memory_bomb_is_contained_in_the_child() -> None:
    # Two 8 MiB constants whose broadcast Add folds into an 8 TiB tensor (issue 9 item 5's file).
    n = 1 << 20
    nodes = [helper.make_node("Add", ["a", "b"], ["big"], name="bomb"),
             helper.make_node("Mul", ["x", "big"], ["y"], name="use")]
    model = make_model(nodes, [1, 1], [n, n], [const("a", np.zeros((n, 1))), const("b", np.zeros((1, n)))])
    with pytest.raises(BindingError, match="memory"):
        bind_in_child(model.SerializeToString(), program_commitment=b"\x00" * 32, input_length=1,
                      output_length=n * n, memory_bytes=1 << 30, timeout=60)


@pytest.mark.parametrize("name", EXACT)
def test_runner_matches_the_reference_on_every_test_input(name: str) -> None:
    entry = load_manifest()["models"][name]
    program = decode(program_bytes(name))
    runner = ProgramRunner(program)
    quantizer = Quantizer.from_dict(entry["quantizer"])
    split = load_split(entry["dataset"]["name"])
    lo, hi = -(2 ** (8 * program.input_width - 1)), 2 ** (8 * program.input_width - 1) - 1
    xs = [quantizer.quantize(row).reshape(program.input_shape) for row in split.x_test]
    xs += [np.full(program.input_shape, lo), np.full(program.input_shape, hi)]
    for x in xs:
        data = encode_tensor(x, program.input_width)
        assert runner.run_bytes(data) == run_bytes(program, data)


@settings(derandomize=True, max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(random_cases())
def test_runner_matches_the_reference_on_random_programs(case: Case) -> None:
    program = compile_onnx(case.model, case.input_width, case.output_width)
    runner = ProgramRunner(program)
    for x in case.inputs:
        assert np.array_equal(runner.run(x), run(program, x))
        data = encode_tensor(x, case.input_width)
        assert runner.run_bytes(data) == run_bytes(program, data)


def test_runner_refuses_wrong_input_lengths() -> None:
    with pytest.raises(BindingError, match="input is 3 bytes"):
        ProgramRunner(decode(program_bytes("digits"))).run_bytes(b"abc")
