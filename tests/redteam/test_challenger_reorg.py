"""Red team, dropped dispute (issue 9, item 6): a reorg that drops only the challenger's proving transaction.

Attack as it happened in the chaos run: the challenger proves a wrong result, a one-block reorg removes just
that proof (the operator's wrong answer stays), and a daemon that had filed the claim as ``proven`` never
looked again: the wrong result finalized with most of its window left. Here the real daemon runs against
anvil, ``anvil_reorg`` replaces the proof's block with an empty one, and the wrong result must still be
proven, by a new transaction, well before the window closes; the honest verdicts reached before the reorg
are kept (nothing is re-executed), and the operator is slashed exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from web3 import Web3

from oracle.chain.deploy import Deployment
from oracle.challenger.store import ClaimState
from tests.challenger.harness import (
    BOND,
    Daemon,
    Env,
    answer,
    deploy,
    env_of,
    make_challenger,
    proven_on_chain,
    resent,
    state_of,
    wait_for,
)

WINDOW = 120


@pytest.fixture(scope="module")
def deployed(session_w3: Web3) -> tuple[Deployment, int]:
    return deploy(session_w3, WINDOW)


@pytest.fixture
def env(deployed: tuple[Deployment, int], w3: Web3) -> Iterator[Env]:
    yield env_of(w3, *deployed, WINDOW)


def test_reorg_dropping_only_the_proof_is_proven_again(env: Env, tmp_path: Path) -> None:
    honest = [answer(env, k, wrong=False) for k in range(3)]
    wrong = answer(env, 3)
    stake_before = env.client.stake_of(env.operator).staked
    daemon = Daemon(make_challenger(env, tmp_path)).start()
    try:
        wait_for(lambda: state_of(daemon, wrong) is ClaimState.PROVEN, 30, "first proof")
        assert all(state_of(daemon, r) is ClaimState.CORRECT for r in honest)
        first = daemon.claim(wrong)
        assert first is not None and first.tx_block is not None
        (event,) = proven_on_chain(env, wrong)
        assert event["tx"] == first.tx_hash
        checked = daemon.challenger.metrics.verified_correct._value.get()  # type: ignore[attr-defined]

        # The attack: replace every block from the proof's on with empty ones; the wrong answer (mined
        # before) stays, the proof is gone and is not put back into the pool.
        head = env.w3.eth.block_number
        env.rpc("anvil_reorg", head - first.tx_block + 1, [])
        assert env.client.status_of(wrong).name in ("SUBMITTED", "FRAUD_PROVEN")  # the daemon may be quick
        reorg_time = int(env.w3.eth.get_block("latest")["timestamp"])

        # Proven again: a proof in a block of the new branch (re-broadcasting the same signed bytes is a
        # legitimate re-send, so the transaction hash may be the same).
        again = wait_for(lambda: [e for e in proven_on_chain(env, wrong) if e["block_hash"] != event["block_hash"]],
                         30, "the wrong result proven again after the reorg")
        assert env.client.status_of(wrong).name == "FRAUD_PROVEN"
        submitted_at = env.client.get_request(wrong).submitted_at
        assert again[0]["timestamp"] < submitted_at + WINDOW, "proven only after the window closed"
        assert again[0]["timestamp"] - reorg_time < 30, "re-proving took too long"
        assert again[0]["challenger"] == env.challenger
        wait_for(lambda: state_of(daemon, wrong) is ClaimState.PROVEN, 10, "the store says proven again")
        assert daemon.claim(wrong).tx_hash == again[0]["tx"]  # type: ignore[union-attr]
        assert resent(daemon) >= 1
        # Verdicts the reorg did not touch are kept, not re-executed.
        assert all(state_of(daemon, r) is ClaimState.CORRECT for r in honest)
        assert daemon.challenger.metrics.verified_correct._value.get() == checked  # type: ignore[attr-defined]
        assert not daemon.died and daemon.alive
    finally:
        daemon.stop()
    # Slashed once, for the one wrong answer; the honest ones untouched.
    assert env.client.stake_of(env.operator).staked == stake_before - BOND
    assert all(env.client.status_of(r).name == "SUBMITTED" for r in honest)


def test_deep_reorg_rolls_back_to_the_fork_point_only(env: Env, tmp_path: Path) -> None:
    """A reorg deeper than the proof: the daemon finds the fork point by hash; claims mined before it keep
    their verdicts, the proof after it is sent again."""
    honest = answer(env, 0, wrong=False)
    wrong = answer(env, 1)
    daemon = Daemon(make_challenger(env, tmp_path)).start()
    try:
        wait_for(lambda: state_of(daemon, wrong) is ClaimState.PROVEN, 30, "first proof")
        first = daemon.claim(wrong)
        assert first is not None and first.tx_block is not None
        for _ in range(5):
            env.rpc("evm_mine")
        wait_for(lambda: (daemon.challenger.store.last_block() or (0, ""))[0] >= env.w3.eth.block_number, 10,
                 "the daemon follows the head")
        (event,) = proven_on_chain(env, wrong)
        head = env.w3.eth.block_number
        env.rpc("anvil_reorg", head - first.tx_block + 1, [])
        wait_for(lambda: daemon.challenger.metrics.reorgs._value.get() >= 1, 10,  # type: ignore[attr-defined]
                 "the reorg detected by block hash")
        wait_for(lambda: [e for e in proven_on_chain(env, wrong) if e["block_hash"] != event["block_hash"]], 30,
                 "the wrong result proven again")
        assert state_of(daemon, honest) is ClaimState.CORRECT
        fork = daemon.challenger.store.recent_blocks()
        assert all(Web3.to_hex(env.w3.eth.get_block(n)["hash"]) == h for n, h in fork)  # only canonical blocks
        assert not daemon.died and daemon.alive
    finally:
        daemon.stop()


def test_proof_dropped_by_a_reorg_while_the_daemon_is_down_is_resent_from_its_state_file(env: Env,
                                                                                           tmp_path: Path) -> None:
    """The shared transaction manager's guarantee, now the challenger's too: a challenge is stored (signed
    bytes, nonce) before its first broadcast, so when a reorg drops it the challenger re-sends that very
    transaction on its nonce. Here the reorg happens while the daemon is down; the restarted daemon finds the
    gap from its state file at start-up and the same transaction proves the fraud again, inside the window."""
    wrong = answer(env, 0)
    stake_before = env.client.stake_of(env.operator).staked
    daemon = Daemon(make_challenger(env, tmp_path)).start()
    try:
        first = wait_for(lambda: (c := daemon.claim(wrong)) and c.state is ClaimState.PROVEN and c, 30,
                         "first proof")
    finally:
        daemon.stop()
    assert first.tx_hash is not None and first.nonce is not None and first.tx_block is not None
    (event,) = proven_on_chain(env, wrong)
    assert event["tx"] == first.tx_hash
    env.rpc("anvil_reorg", env.w3.eth.block_number - first.tx_block + 1, [])
    assert env.client.status_of(wrong).name == "SUBMITTED"  # the proof is gone: the wrong answer would stand
    assert env.w3.eth.get_transaction_count(env.challenger, "latest") == first.nonce  # its nonce is free again

    again = Daemon(make_challenger(env, tmp_path)).start()  # same state file
    try:
        proofs = wait_for(lambda: [e for e in proven_on_chain(env, wrong) if e["block_hash"] != event["block_hash"]],
                          30, "the wrong result proven again after the reorg")
        assert proofs[0]["tx"] == first.tx_hash  # the stored transaction itself, not a new one
        assert env.w3.eth.get_transaction(first.tx_hash)["nonce"] == first.nonce  # type: ignore[arg-type]
        assert proofs[0]["challenger"] == env.challenger
        assert proofs[0]["timestamp"] < env.client.get_request(wrong).submitted_at + WINDOW
        metrics = again.challenger.metrics
        assert metrics.challenges_resent.labels(reason="reorg")._value.get() >= 1  # type: ignore[attr-defined]
        wait_for(lambda: state_of(again, wrong) is ClaimState.PROVEN, 10, "the store says proven again")
        assert again.claim(wrong).tx_hash == first.tx_hash  # type: ignore[union-attr]
        assert not again.died and again.alive
    finally:
        again.stop()
    assert env.client.stake_of(env.operator).staked == stake_before - BOND  # slashed once
