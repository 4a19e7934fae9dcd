"""Red team, issue 9 item 1: an ONNX file registered with a program it does not compute.

The attack, as it worked before the binding: the attacker registers the shipped ``digits.onnx`` with a program
that always answers 0 (or one that differs from the file on a few inputs) and a 2 ETH bond, requests
inferences on inputs where file and program disagree, and runs the challenger. An honest worker answered with
onnxruntime on the file, the challenger "proved fraud" with the program, and the honest operator's stake paid
the attacker.

Now: the CLI refuses to register the pair; registered anyway (straight through the contract), the real worker
refuses to serve it (its file is not bound to the program) and keeps serving the honest model; the real
challenger process finds nothing to prove; the honest operator's stake is unchanged and the attacker only
spends gas.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from eth_utils import keccak
from typer.testing import CliRunner
from web3 import Web3

from oracle.chain.client import OracleClient
from oracle.chain.deploy import DeployParams, deploy_system
from oracle.chain.types import Mode, ModelSpec, Status
from oracle.cli import app
from oracle.jobstate import JobState
from oracle.profile.codec import encode_tensor
from oracle.profile.models import model_entry, model_path, program_bytes
from oracle.profile.opcodes import Opcode
from oracle.profile.program import Constant, Op, Program, decode, encode
from oracle.profile.reference import run_bytes
from oracle.settings import NodeSettings
from oracle.worker.node import Node
from tests.worker.conftest import RunningNode, dev_account, wait_for

ETH = 10**18
STAKE = 10 * ETH
BOND = 2 * ETH
FEE = ETH // 2  # the deployment's minimum bond ratio is 4
WINDOW = 60
TIMEOUT = 180
HONEST_INDEX = 6  # dev account 6 runs the honest worker
DIGITS = model_entry("digits")


def always_zero_program() -> bytes:
    """Same I/O as digits ([1,64] x 1 byte -> [1] x 1 byte); class 0 for every input."""
    zeros = np.zeros((64, 10), dtype=np.int64)
    return encode(Program(1, 1, ((1, 64), (64, 10), (1, 10), (1,)), 0, 3, (Constant(1, 1, zeros),),
                          (Op(Opcode.MATMUL, (0, 1), 2), Op(Opcode.ARGMAX, (2,), 3, (1, 0, 0)))))


def nearly_digits_program() -> bytes:
    """The digits program with one output bias raised: it agrees with the file on almost every input."""
    p = decode(program_bytes("digits"))
    bias = p.constants[-1]
    values = bias.values.copy()
    values[0, 1] += 3000
    consts = tuple(Constant(c.tensor_id, c.width, values) if c is bias else c for c in p.constants)
    return encode(Program(p.input_width, p.output_width, p.shapes, p.input_id, p.output_id, consts, p.ops))


def inputs_where_they_differ(evil: bytes, n: int = 3) -> list[bytes]:
    """``n`` digit-like inputs (values 0..16) on which the evil program and the file disagree."""
    honest, bad = decode(program_bytes("digits")), decode(evil)
    rng = np.random.default_rng(9)
    found: list[bytes] = []
    for _ in range(50_000):
        if len(found) == n:
            break
        data = encode_tensor(rng.integers(0, 16, size=(1, 64), endpoint=True), 1)
        if run_bytes(honest, data) != run_bytes(bad, data):
            found.append(data)
    assert len(found) == n, "no input separates the programs"
    return found


def agrees_on_the_shipped_samples(evil: bytes) -> bool:
    bad = decode(evil)
    return all(run_bytes(bad, bytes.fromhex(s["input_hex"][2:])) == bytes.fromhex(s["expected_output_hex"][2:])
               for s in DIGITS["samples"])


@pytest.fixture
def arena(w3: Web3, devnet, tmp_path: Path) -> Iterator[dict]:
    acct = w3.eth.accounts
    deployer, attacker, user = acct[0], acct[1], acct[2]
    dep = deploy_system(w3, deployer, DeployParams(challenge_window=WINDOW, request_timeout=TIMEOUT,
                                                   unbonding_period=3600, min_bond_ratio=4))
    dep.save(tmp_path / "deployment.json")
    client = OracleClient(w3, dep.oracle)
    honest = dev_account(HONEST_INDEX)
    client.stake(honest.address, STAKE)
    good_id = client.register_model(deployer, ModelSpec(
        onnx_hash=bytes.fromhex(DIGITS["onnx_keccak256"][2:]), fee=FEE // 10, bond=4 * (FEE // 10),
        input_length=64, output_length=1, mode=Mode.EXACT, uri=model_path("digits").as_uri(),
        program_commitment=bytes.fromhex(DIGITS["program_commitment"][2:])), program_bytes("digits"))
    yield dict(w3=w3, url=devnet.url, dep=dep, client=client, attacker=attacker, user=user, honest=honest,
               good_id=good_id, tmp=tmp_path)


def _cli_register(arena: dict, program: Path) -> object:
    return CliRunner().invoke(app, [
        "chain", "register", str(model_path("digits")), "--uri", model_path("digits").as_uri(),
        "--fee", str(FEE), "--bond", str(BOND), "--input-length", "64", "--output-length", "1",
        "--program", str(program), "--deployment", str(arena["tmp"] / "deployment.json"), "--rpc", arena["url"],
        "--unlocked", arena["attacker"]])


def _start_challenger(arena: dict) -> subprocess.Popen[bytes]:
    log = (arena["tmp"] / "challenger.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-c", "from oracle.cli import main; main()", "challenger", "run", "--rpc", arena["url"],
         "--deployment", str(arena["tmp"] / "deployment.json"), "--db", str(arena["tmp"] / "challenger.db"),
         "--model-dir", str(arena["tmp"] / "challenger-models"), "--unlocked", arena["attacker"], "--poll", "0.2"],
        stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))


def _warp(w3: Web3, seconds: int) -> None:
    w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


@pytest.mark.parametrize(("evil_program", "subtle"), [(always_zero_program, False), (nearly_digits_program, True)],
                         ids=["always-zero", "differs-on-few-inputs"])
def test_mismatched_pair_cannot_cost_the_honest_operator_its_bond(arena: dict, evil_program, subtle: bool) -> None:
    w3, client, attacker, honest = arena["w3"], arena["client"], arena["attacker"], arena["honest"]
    evil = evil_program()
    # The subtle program passes every spot check on the shipped samples; only the binding tells it apart.
    assert agrees_on_the_shipped_samples(evil) is subtle
    inputs = inputs_where_they_differ(evil)
    evil_file = arena["tmp"] / "evil.program"
    evil_file.write_bytes(evil)

    # 1. The CLI refuses the pair, naming the mismatch; nothing reaches the chain.
    count = client.model_count()
    res = _cli_register(arena, evil_file)
    assert res.exit_code == 1 and "digits.onnx is not bound to evil.program" in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
    assert client.model_count() == count

    # 2. The attacker registers it anyway, straight through the contract, and asks where file and program differ.
    attacker_before = w3.eth.get_balance(attacker)
    evil_id = client.register_model(attacker, ModelSpec(
        onnx_hash=keccak(model_path("digits").read_bytes()), fee=FEE, bond=BOND, input_length=64, output_length=1,
        mode=Mode.EXACT, uri=model_path("digits").as_uri(), program_commitment=keccak(evil)), evil)
    evil_requests = [client.request(attacker, evil_id, data)[0] for data in inputs]
    good_request, _ = client.request(arena["user"], arena["good_id"], bytes.fromhex(
        DIGITS["samples"][0]["input_hex"][2:]))

    # 3. The real worker (bond limit raised so that only the binding stands in the way) and the real challenger.
    settings = NodeSettings.load(
        None, rpc_urls=[arena["url"]], oracle_address=arena["dep"].oracle, db_path=arena["tmp"] / "node.sqlite3",
        model_dir=arena["tmp"] / "cache", poll_interval=0.05, api_port=0, confirmations=0, min_time_left=10,
        start_block=arena["dep"].block, private_key=honest.key.hex(), max_bond_wei=10 * ETH)
    node = RunningNode(Node.from_settings(settings)).start()
    challenger = _start_challenger(arena)
    try:
        wait_for(lambda: client.status_of(good_request) == Status.SUBMITTED, timeout=60, what="honest model served")
        wait_for(lambda: all((j := node.node.db.job(r)) is not None and j.state is JobState.FAILED
                             for r in evil_requests), timeout=60, what="evil model refused")
        for r in evil_requests:
            error = node.node.db.job(r).error
            assert "not bound to its program" in error and "different models" in error
        time.sleep(3)  # the challenger polls every 0.2 s: it has seen the honest result
        assert challenger.poll() is None, "the challenger died"
        _warp(w3, WINDOW + 1)
        wait_for(lambda: client.status_of(good_request) == Status.FINALIZED, timeout=60, what="honest finalized")
        _warp(w3, TIMEOUT)
        for r in evil_requests:
            assert client.status_of(r) == Status.EXPIRED
            client.refund(attacker, r)
            assert client.status_of(r) == Status.REFUNDED
        assert node.error is None and node.node.executor.restarts == 0
    finally:
        challenger.terminate()
        try:
            challenger.wait(timeout=20)
        except subprocess.TimeoutExpired:
            challenger.kill()
            challenger.wait(timeout=10)
        node.stop()

    # 4. Nothing was attested for the evil model, nothing was slashed, the attacker only paid gas.
    submitted = client.submitted_events(arena["dep"].block, w3.eth.block_number)
    assert {e.request_id for e in submitted} == {good_request}
    stake = client.stake_of(honest.address)
    assert (stake.staked, stake.locked) == (STAKE, 0)
    assert w3.eth.get_balance(attacker) < attacker_before  # fees refunded, gas spent: no gain
