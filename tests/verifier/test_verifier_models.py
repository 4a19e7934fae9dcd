"""The shipped EXACT models, stored as data chunks the way the registry stores them, re-executed the way
a challenge re-executes them (`executeStored`): every held-out sample in the manifest gives its expected
output, and a few hundred random inputs of the declared width give the reference's output."""

from __future__ import annotations

import json
import zlib
from importlib import resources
from typing import Any

import numpy as np
import pytest
from eth_utils import keccak
from web3 import Web3
from web3.contract import Contract

from oracle.profile.codec import encode_tensor
from oracle.profile.opcodes import Opcode
from oracle.profile.program import Constant, Op, Program, decode, encode
from tests.verifier.helpers import call, random_input, ref_bytes, write_chunks

RANDOM_INPUTS = 200


def _manifest() -> dict[str, Any]:
    return json.loads(resources.files("oracle.models").joinpath("manifest.json").read_text())


def _exact_models() -> list[str]:
    return sorted(name for name, m in _manifest()["models"].items() if m["mode"] == "EXACT")


@pytest.fixture(scope="module")
def stored(session_w3: Web3, chunk_writer: Contract) -> dict[str, tuple[bytes, list[str]]]:
    """Program bytes and chunk addresses of every shipped EXACT model (written once per module)."""
    out = {}
    for name in _exact_models():
        meta = _manifest()["models"][name]
        data = resources.files("oracle.models").joinpath(meta["program_file"]).read_bytes()
        out[name] = (data, write_chunks(session_w3, chunk_writer, data))
    return out


def test_there_are_exact_models_to_check() -> None:
    assert len(_exact_models()) >= 2


@pytest.mark.parametrize("name", _exact_models())
def test_shipped_program_matches_its_commitment(name: str, stored: dict) -> None:
    data, _ = stored[name]
    assert "0x" + keccak(data).hex() == _manifest()["models"][name]["program_commitment"]


@pytest.mark.parametrize("name", _exact_models())
def test_held_out_samples_give_the_manifest_outputs(verifier: Contract, stored: dict, name: str) -> None:
    data, chunks = stored[name]
    program = decode(data)
    samples = _manifest()["models"][name]["samples"]
    assert samples
    for sample in samples:
        inp = bytes.fromhex(sample["input_hex"].removeprefix("0x"))
        want = bytes.fromhex(sample["expected_output_hex"].removeprefix("0x"))
        assert bytes(call(verifier.functions.executeStored(chunks, inp))) == want
        assert ref_bytes(program, inp) == want


@pytest.mark.parametrize("name", _exact_models())
def test_random_inputs_match_the_reference(verifier: Contract, stored: dict, name: str) -> None:
    data, chunks = stored[name]
    program = decode(data)
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    for _ in range(RANDOM_INPUTS):
        x = random_input(program, rng)
        inp = encode_tensor(x, program.input_width)
        assert bytes(call(verifier.functions.executeStored(chunks, inp))) == ref_bytes(program, inp)


@pytest.mark.parametrize("name", _exact_models())
def test_execute_and_execute_stored_agree(verifier: Contract, stored: dict, name: str) -> None:
    data, chunks = stored[name]
    program = decode(data)
    inp = encode_tensor(random_input(program, np.random.default_rng(5)), program.input_width)
    assert call(verifier.functions.execute(data, inp)) == call(verifier.functions.executeStored(chunks, inp))


def _mlp(width: int, seed: int) -> Program:
    rng = np.random.default_rng(seed)
    shapes = [
        (1, width),
        (width, width),
        (width,),
        (1,),
        (1,),
        (1, width),
        (1, width),
        (1, width),
        (1, width),
        (1, width),
        (1,),
    ]
    consts = (
        Constant(1, 1, rng.integers(-128, 128, size=(width, width))),
        Constant(2, 4, rng.integers(-(2**20), 2**20, size=(width,))),
        Constant(3, 2, np.array([1024])),
        Constant(4, 1, np.array([0])),
    )
    ops = (
        Op(Opcode.MATMUL, (0, 1), 5),
        Op(Opcode.ADD, (5, 2), 6),
        Op(Opcode.DIV, (6, 3), 7),
        Op(Opcode.MAX, (7, 4), 8),
        Op(Opcode.MATMUL, (8, 1), 9),
        Op(Opcode.ARGMAX, (9,), 10, (1, 0, 0)),
    )
    return Program(1, 2, tuple(shapes), 0, 10, consts, ops)


def test_a_program_spanning_several_chunks_runs_from_storage(
    w3: Web3, verifier: Contract, chunk_writer: Contract
) -> None:
    program = _mlp(200, 3)  # 40 KB of int8 weights: two chunks
    data = encode(program)
    chunks = write_chunks(w3, chunk_writer, data)
    assert len(chunks) == 2
    rng = np.random.default_rng(4)
    for _ in range(5):
        inp = encode_tensor(rng.integers(-128, 128, size=(1, 200)), 1)
        assert bytes(call(verifier.functions.executeStored(chunks, inp))) == ref_bytes(program, inp)


def test_chunks_in_the_wrong_order_are_not_the_program(w3: Web3, verifier: Contract, chunk_writer: Contract) -> None:
    """The oracle must pass the registered chunk list as is: any reordering is a different program."""
    program = _mlp(200, 3)
    data = encode(program)
    chunks = write_chunks(w3, chunk_writer, data)
    inp = encode_tensor(np.zeros((1, 200), dtype=np.int64), 1)
    got = call(verifier.functions.executeStored(list(reversed(chunks)), inp))
    assert getattr(got, "name", None) == "MalformedProgram"
