"""`oracle chain register` on a real anvil: what it registers, and every pair or file it must refuse.

Refusals are one line on stderr, exit code 1, no traceback, and nothing reaches the chain.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner
from web3 import Web3

from oracle.chain.client import OracleClient
from oracle.chain.deploy import DeployParams, deploy_system
from oracle.chain.types import Mode
from oracle.cli import app
from oracle.profile.models import model_path, program_bytes
from oracle.profile.opcodes import Opcode
from oracle.profile.program import Constant, Op, Program, encode

FEE = 10**15


def always_zero_digits_program() -> bytes:
    """Same I/O as digits ([1,64] x 1 byte -> [1] x 1 byte), answers class 0 for every input."""
    zeros = np.zeros((64, 10), dtype=np.int64)
    return encode(Program(1, 1, ((1, 64), (64, 10), (1, 10), (1,)), 0, 3, (Constant(1, 1, zeros),),
                          (Op(Opcode.MATMUL, (0, 1), 2), Op(Opcode.ARGMAX, (2,), 3, (1, 0, 0)))))


def _graph_model(nodes: list, outputs: list, inits: list | None = None, shape: tuple = (1, 2)) -> bytes:
    g = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.INT64, list(shape))],
                          outputs, inits or [])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8).SerializeToString()


@pytest.fixture
def chain(w3: Web3, accounts: list[str], tmp_path: Path) -> Iterator[tuple[OracleClient, Path, str]]:
    dep = deploy_system(w3, accounts[0], DeployParams(challenge_window=600, request_timeout=900,
                                                      unbonding_period=3600))
    path = tmp_path / "deployment.json"
    dep.save(path)
    yield OracleClient(w3, dep.oracle), path, accounts[0]


def _register(chain: tuple[OracleClient, Path, str], onnx_file: Path, uri: str | None, inp: int, out: int,
              program: Path | None = None) -> object:
    client, dep, owner = chain
    args = ["chain", "register", str(onnx_file), "--uri", uri if uri is not None else onnx_file.as_uri(),
            "--fee", str(FEE), "--input-length", str(inp), "--output-length", str(out),
            "--deployment", str(dep), "--rpc", client.w3.provider.endpoint_uri, "--unlocked", owner]
    if program is not None:
        args += ["--program", str(program)]
    return CliRunner().invoke(app, args)


def _refused(chain: tuple[OracleClient, Path, str], *args: object, match: str, **kw: object) -> str:
    before = chain[0].model_count()
    res = _register(chain, *args, **kw)  # type: ignore[arg-type]
    assert res.exit_code == 1, res.stdout + res.stderr
    assert res.exception is None or isinstance(res.exception, SystemExit)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    assert match in lines[0], lines[0]
    assert chain[0].model_count() == before  # nothing registered
    return lines[0]


def test_registers_the_shipped_exact_pair_and_an_attested_model(chain) -> None:
    res = _register(chain, model_path("digits"), None, 64, 1, program=model_path("digits").with_suffix(".program"))
    assert res.exit_code == 0, res.stderr
    assert '"mode": "EXACT"' in res.stdout
    res = _register(chain, model_path("digits_float"), None, 256, 40)
    assert res.exit_code == 0, res.stderr
    assert '"mode": "ATTESTED"' in res.stdout
    models = [chain[0].get_model(i) for i in range(1, chain[0].model_count() + 1)]
    assert [m.mode for m in models][-2:] == [Mode.EXACT, Mode.ATTESTED]


def test_refuses_breast_cancer_file_with_the_digits_program(chain) -> None:
    digits_program = model_path("digits").with_suffix(".program")
    line = _refused(chain, model_path("breast_cancer"), None, 64, 1, program=digits_program,
                    match="different models")
    assert "breast_cancer.onnx maps [1, 30] -> [1]" in line and "digits.program maps [1, 64] -> [1]" in line
    _refused(chain, model_path("breast_cancer"), None, 60, 1, program=digits_program,
             match="digits.program takes 64 input bytes ([1, 64] x 1), but --input-length is 60")


def test_refuses_digits_file_with_a_program_that_always_answers_zero(chain, tmp_path: Path) -> None:
    evil = tmp_path / "evil.program"
    evil.write_bytes(always_zero_digits_program())
    line = _refused(chain, model_path("digits"), None, 64, 1, program=evil, match="digits.onnx is not bound")
    assert "0x" + __import__("eth_utils").keccak(program_bytes("digits")).hex() in line


def test_refuses_random_bytes_as_an_attested_model(chain, tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(os.urandom(500))
    _refused(chain, junk, None, 64, 1, match="junk.onnx: ")


@pytest.mark.parametrize("uri", ["not a uri", "ftp://example.com/m.onnx", "https://", "file://relative/m.onnx",
                                 "models/m.onnx", "cas://0x1234", "https://ok.example/m.onnx,"])
def test_refuses_a_uri_that_is_not_a_uri(chain, uri: str) -> None:
    _refused(chain, model_path("digits_float"), uri, 256, 40, match="--uri")


def test_refuses_models_with_two_outputs(chain, tmp_path: Path) -> None:
    two = tmp_path / "two.onnx"
    two.write_bytes(_graph_model(
        [helper.make_node("Identity", ["x"], ["y"]), helper.make_node("Identity", ["x"], ["z"])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, [1, 2]),
         helper.make_tensor_value_info("z", TensorProto.INT64, [1, 2])]))
    _refused(chain, two, None, 16, 16, match="exactly one input and one output tensor (has 1 inputs, 2 outputs)")
    prog = tmp_path / "ident.program"
    prog.write_bytes(encode(Program(8, 8, ((1, 2), (1, 2)), 0, 1, (), (Op(Opcode.IDENTITY, (0,), 1),))))
    _refused(chain, two, None, 16, 16, program=prog, match="exactly one input and one output tensor")


def test_refuses_a_file_with_a_dead_node(chain, tmp_path: Path) -> None:
    dead = tmp_path / "dead.onnx"
    dead.write_bytes(_graph_model(
        [helper.make_node("Div", ["x", "m1"], ["boom"], name="unused_div"),
         helper.make_node("Identity", ["x"], ["y"], name="keep")],
        [helper.make_tensor_value_info("y", TensorProto.INT64, [1, 2])],
        [numpy_helper.from_array(np.array([-1], dtype=np.int64), "m1")]))
    prog = tmp_path / "live.program"  # what the live part compiles to
    prog.write_bytes(encode(Program(8, 8, ((1, 2), (1, 2)), 0, 1, (), (Op(Opcode.IDENTITY, (0,), 1),))))
    _refused(chain, dead, None, 16, 16, program=prog, match="dead node")


def test_refuses_a_program_file_that_is_not_a_program(chain, tmp_path: Path) -> None:
    bad = tmp_path / "bad.program"
    bad.write_bytes(b"not a program")
    _refused(chain, model_path("digits"), None, 64, 1, program=bad, match="bad.program is not a program file")
