"""The challenger daemon against a real chain: proves every wrong EXACT result, never a correct one."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from web3 import Web3

from oracle.chain.client import OracleClient
from oracle.chain.deploy import Deployment, DeployParams, deploy_system
from oracle.chain.txmanager import AccountMismatch
from oracle.chain.types import Mode, ModelSpec
from oracle.challenger.daemon import Challenger, ChallengerConfig
from oracle.challenger.store import ClaimState, Store
from oracle.challenger.verify import ClaimVerifier
from oracle.profile.models import model_entry, model_path, program_bytes
from oracle.runtime.model_store import ModelStore

FEE = 10**15
WINDOW = 300
DIGITS = model_entry("digits")
SAMPLES = DIGITS["samples"]


@dataclass
class Env:
    w3: Web3
    client: OracleClient
    deployment: Deployment
    exact_id: int
    attested_id: int
    operator: str
    user: str
    challenger: str


@pytest.fixture
def opened() -> Iterator[list[Challenger]]:
    """Every challenger a test makes; their sandbox children are closed after the test."""
    made: list[Challenger] = []
    yield made
    for ch in made:
        ch.close()


@pytest.fixture(scope="module")
def deployed(session_w3: Web3) -> tuple[Deployment, int, int]:
    acct = session_w3.eth.accounts
    dep = deploy_system(session_w3, acct[0], DeployParams(challenge_window=WINDOW, request_timeout=600,
                                                          unbonding_period=3600))
    client = OracleClient(session_w3, dep.oracle)
    exact = client.register_model(acct[0], ModelSpec(
        onnx_hash=bytes.fromhex(DIGITS["onnx_keccak256"][2:]), fee=FEE, bond=4 * FEE, input_length=64,
        output_length=1, mode=Mode.EXACT, uri=model_path("digits").as_uri(),
        program_commitment=bytes.fromhex(DIGITS["program_commitment"][2:])), program_bytes("digits"))
    attested = client.register_model(acct[0], ModelSpec(
        onnx_hash=b"\x07" * 32, fee=FEE, bond=4 * FEE, input_length=64, output_length=1, mode=Mode.ATTESTED,
        uri="file:///nowhere.onnx"))
    client.stake(acct[1], 10**18)
    return dep, exact, attested


@pytest.fixture
def env(deployed: tuple[Deployment, int, int], w3: Web3) -> Env:
    dep, exact, attested = deployed
    a = w3.eth.accounts
    return Env(w3, OracleClient(w3, dep.oracle), dep, exact, attested, a[1], a[3], a[4])


def make_challenger(env: Env, tmp_path: Path, opened: list[Challenger], db: str = "challenger.db") -> Challenger:
    models = ModelStore(tmp_path / "models", max_model_bytes=10_000_000, max_tensor_bytes=10_000_000)
    verifier = ClaimVerifier(env.client, models)
    ch = Challenger(env.client, Store(tmp_path / db), verifier, env.challenger,
                    ChallengerConfig(start_block=env.deployment.block))
    opened.append(ch)
    return ch


def answer(env: Env, sample: dict, wrong: bool = False, model_id: int | None = None) -> int:
    pixels = bytes.fromhex(sample["input_hex"][2:])
    out = bytes.fromhex(sample["expected_output_hex"][2:])
    if wrong:
        out = bytes([(out[0] + 1) % 10])
    rid, _ = env.client.request(env.user, model_id or env.exact_id, pixels)
    env.client.submit(env.operator, rid, out)
    return rid


def run_once(ch: Challenger) -> None:
    ch.setup()
    while not ch.poll():
        pass
    ch.process()


def test_a_state_file_refuses_another_account(env: Env, tmp_path: Path, opened: list[Challenger]) -> None:
    """The state file holds the signed transactions and the nonce of one account: a daemon started on it with
    another key stops at once with a one-line reason instead of fighting over (or reusing) nonces."""
    run_once(make_challenger(env, tmp_path, opened))
    other = Challenger(env.client, Store(tmp_path / "challenger.db"), ClaimVerifier(env.client, ModelStore(
        tmp_path / "models", max_model_bytes=10_000_000, max_tensor_bytes=10_000_000)), env.w3.eth.accounts[5],
        ChallengerConfig(start_block=env.deployment.block))
    opened.append(other)
    with pytest.raises(AccountMismatch, match="belongs to account") as err:
        other.run()
    assert "\n" not in str(err.value) and env.challenger in str(err.value)


def test_never_challenges_correct_results(env: Env, tmp_path: Path, opened: list[Challenger]) -> None:
    ids = [answer(env, s) for s in SAMPLES[:40]]
    ch = make_challenger(env, tmp_path, opened)
    run_once(ch)
    claims = {c.request_id: c for c in ch.store.claims()}
    assert set(claims) == set(ids)
    assert all(c.state is ClaimState.CORRECT for c in claims.values())
    assert ch.metrics.challenges_sent._value.get() == 0  # type: ignore[attr-defined]
    assert env.client.contract.events.FraudProven().get_logs(from_block=0) == []


def test_challenges_every_wrong_result_with_margin(env: Env, tmp_path: Path, opened: list[Challenger]) -> None:
    honest = [answer(env, s) for s in SAMPLES[:5]]
    wrong = [answer(env, s, wrong=True) for s in SAMPLES[5:8]]
    before = env.client.stake_of(env.operator).staked
    ch = make_challenger(env, tmp_path, opened)
    run_once(ch)
    states = {c.request_id: c for c in ch.store.claims()}
    for rid in wrong:
        assert states[rid].state is ClaimState.PROVEN
        assert env.client.status_of(rid).name == "FRAUD_PROVEN"
        # Acted at once: almost the whole window was left.
        assert env.client.get_request(rid).submitted_at + WINDOW - ch._now() > WINDOW - 60
    for rid in honest:
        assert states[rid].state is ClaimState.CORRECT and env.client.status_of(rid).name == "SUBMITTED"
    assert env.client.stake_of(env.operator).staked == before - 3 * 4 * FEE
    assert env.client.credits_of(env.challenger) == 3 * (2 * FEE + FEE)


def test_restart_mid_window_still_challenges_in_time(env: Env, tmp_path: Path, opened: list[Challenger]) -> None:
    rid = answer(env, SAMPLES[0], wrong=True)
    first = make_challenger(env, tmp_path, opened)
    first.setup()
    first.poll()  # saw the claim, then "crashed" before verifying it
    assert [c.state for c in first.store.claims()] == [ClaimState.PENDING]
    first.store.close()
    env.w3.provider.make_request("evm_increaseTime", [WINDOW // 2])  # type: ignore[arg-type]
    env.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    second = make_challenger(env, tmp_path, opened)
    run_once(second)
    assert second.store.claims()[0].state is ClaimState.PROVEN
    assert env.client.status_of(rid).name == "FRAUD_PROVEN"


def test_attested_results_are_not_challenged(env: Env, tmp_path: Path, opened: list[Challenger]) -> None:
    answer(env, SAMPLES[0], wrong=True, model_id=env.attested_id)
    ch = make_challenger(env, tmp_path, opened)
    run_once(ch)
    assert [c.state for c in ch.store.claims()] == [ClaimState.NOT_EXACT]


def test_reorg_that_drops_a_wrong_claim_is_forgotten(env: Env, tmp_path: Path, opened: list[Challenger]) -> None:
    snap = env.w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    answer(env, SAMPLES[0], wrong=True)
    ch = make_challenger(env, tmp_path, opened)
    ch.setup()
    ch.poll()
    assert len(ch.store.claims([ClaimState.PENDING])) == 1
    env.w3.provider.make_request("evm_revert", [snap])  # type: ignore[arg-type]
    for _ in range(3):
        env.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    run_once(ch)
    assert ch.store.claims() == []
    assert env.client.contract.events.FraudProven().get_logs(from_block=0) == []


def test_window_already_closed_is_recorded_as_missed(env: Env, tmp_path: Path, opened: list[Challenger]) -> None:
    answer(env, SAMPLES[0], wrong=True)
    env.w3.provider.make_request("evm_increaseTime", [WINDOW + 1])  # type: ignore[arg-type]
    env.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    ch = make_challenger(env, tmp_path, opened)
    run_once(ch)
    assert [c.state for c in ch.store.claims()] == [ClaimState.MISSED]


def test_daemon_waits_for_an_unreachable_rpc_instead_of_exiting(tmp_path: Path) -> None:
    import socket
    import threading
    import time

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    w3 = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{port}", request_kwargs={"timeout": 1}))
    client = OracleClient(w3, "0x" + "11" * 20)
    models = ModelStore(tmp_path / "models", max_model_bytes=10_000_000, max_tensor_bytes=10_000_000)
    ch = Challenger(client, Store(tmp_path / "c.db"), ClaimVerifier(client, models), "0x" + "22" * 20,
                    ChallengerConfig(poll_interval=0.05))
    died: list[BaseException] = []

    def main() -> None:
        try:
            ch.run()
        except BaseException as exc:  # noqa: BLE001
            died.append(exc)

    t = threading.Thread(target=main, daemon=True)
    t.start()
    time.sleep(1.5)
    assert t.is_alive() and not died  # still retrying its set-up
    ch.stop()
    t.join(timeout=10)
    assert not t.is_alive() and not died
    ch.store.close()
