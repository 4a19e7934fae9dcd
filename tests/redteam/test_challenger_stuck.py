"""Red team, stalled challenger (issue 9, item 6): a challenge transaction that never mines.

In the chaos run the daemon waited 114 s in ``wait_for_transaction_receipt(timeout=120)`` inside its only
loop for one transaction that never mined, and 26 wrong results posted meanwhile went unchallenged. Here anvil
mines on its own clock (automine off, a block every 0.3 s) and the attacker makes the daemon's first challenge
never mine, in two ways:

- it vanishes from the node's pool (``anvil_dropTransaction``) while later challenges queue behind its nonce;
- a fee spike right after it was sent (``anvil_setNextBlockBaseFeePerGas``) prices it out (anvil evicts a
  transaction whose fee cap falls below the base fee; other nodes keep it pooled, where it is replaced once
  it has waited ``stuck_after`` seconds).

Every wrong result must still be proven before its window closes, the stuck one by a transaction on the same
nonce, and wrong results posted meanwhile must not wait for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3
from web3.exceptions import TransactionNotFound

from oracle.chain.deploy import Deployment
from oracle.chain.txmanager import GWEI, FeePolicy
from oracle.chain.txstore import TxRecord
from oracle.challenger.daemon import ChallengerConfig
from oracle.challenger.store import ClaimState
from tests.challenger.harness import (
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


class Miner:
    """Mines a block every ``interval`` seconds with automine off; ``lock`` keeps a block out of a moment."""

    def __init__(self, env: Env, interval: float = 0.3) -> None:
        self.env, self.interval = env, interval
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self.lock:
                self.env.rpc("evm_mine")

    def __enter__(self) -> Miner:
        self.env.rpc("evm_setAutomine", False)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.env.rpc("evm_setAutomine", True)


@pytest.fixture
def env(deployed: tuple[Deployment, int], w3: Web3) -> Iterator[Env]:
    yield env_of(w3, *deployed, WINDOW)


def sabotage_first_send(daemon: Daemon, miner: Miner, attack: Callable[[TxRecord], Any]) -> list[TxRecord]:
    """Runs ``attack`` on the daemon's first challenge right after it reaches the pool, before any block."""
    txs = daemon.challenger.txs
    original = txs.send
    hit: list[TxRecord] = []

    def send(kind: str, *args: Any, **kw: Any) -> TxRecord | None:
        if hit or kind != "challenge":
            return original(kind, *args, **kw)
        with miner.lock:
            sent = original(kind, *args, **kw)
            assert sent is not None
            attack(sent)
            hit.append(sent)
            return sent

    txs.send = send  # type: ignore[method-assign]
    return hit


def mined(env: Env, tx_hash: str) -> bool:
    try:
        env.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        return True
    except TransactionNotFound:
        return False


def assert_proven_in_time(env: Env, rid: int) -> dict[str, Any]:
    (event,) = proven_on_chain(env, rid)
    assert event["challenger"] == env.challenger
    assert event["timestamp"] < env.client.get_request(rid).submitted_at + WINDOW
    return event


def test_challenge_dropped_from_the_pool_is_resent_and_blocks_nothing(env: Env, tmp_path: Path) -> None:
    wrong = [answer(env, k) for k in range(3)]
    daemon = Daemon(make_challenger(env, tmp_path))
    with Miner(env) as miner:
        gone: list[str | None] = []
        dropped = sabotage_first_send(daemon, miner,
                                      lambda s: gone.append(env.rpc("anvil_dropTransaction", s.tx_hash)))
        daemon.start()
        try:
            wait_for(lambda: dropped, 30, "the first challenge sent")
            assert gone == [dropped[0].tx_hash]  # really removed from the pool before any block
            later = answer(env, 3)  # posted while the first challenge is gone from the pool
            wait_for(lambda: all(env.client.status_of(r).name == "FRAUD_PROVEN" for r in [*wrong, later]), 60,
                     "every wrong result proven")
            events = {r: assert_proven_in_time(env, r) for r in [*wrong, later]}
            # The victim's proof is a re-send on the dropped nonce (possibly the very same signed bytes again).
            victim = next(r for r in wrong if env.w3.eth.get_transaction(events[r]["tx"])["nonce"]  # type: ignore[arg-type]
                          == dropped[0].nonce)
            assert daemon.challenger.metrics.challenges_resent.labels(reason="dropped")._value.get() >= 1  # type: ignore[attr-defined]
            assert daemon.claim(victim).tx_hash == events[victim]["tx"]  # type: ignore[union-attr]
            wait_for(lambda: all(state_of(daemon, r) is ClaimState.PROVEN for r in [*wrong, later]), 10,
                     "the store says proven")
            assert not daemon.died and daemon.alive
        finally:
            daemon.stop()


def test_challenge_priced_out_by_a_fee_spike_is_resent_with_higher_fees(env: Env, tmp_path: Path) -> None:
    wrong = answer(env, 0)
    config = ChallengerConfig(poll_interval=0.1, recheck_interval=0.3,
                              fees=FeePolicy(stuck_after=2.0, max_fee=20_000 * GWEI))
    daemon = Daemon(make_challenger(env, tmp_path, config))
    with Miner(env) as miner:
        # A fee spike right after the challenge was sent: the next block's base fee is 10,000 gwei, and empty
        # blocks bring it down by only 12.5 % each, so the challenge as sent would wait ~50 blocks.
        stuck = sabotage_first_send(daemon, miner,
                                    lambda s: env.rpc("anvil_setNextBlockBaseFeePerGas", hex(10_000 * GWEI)))
        daemon.start()
        try:
            wait_for(lambda: stuck, 30, "the first challenge sent")
            first = env.w3.eth.get_transaction(stuck[0].tx_hash)  # type: ignore[arg-type]
            later = answer(env, 1)  # posted while the first is stuck
            wait_for(lambda: env.client.status_of(wrong).name == "FRAUD_PROVEN", 40, "the stuck one proven")
            event = assert_proven_in_time(env, wrong)
            proof = env.w3.eth.get_transaction(event["tx"])  # type: ignore[arg-type]
            assert event["tx"] != stuck[0].tx_hash and not mined(env, stuck[0].tx_hash)
            assert proof["nonce"] == first["nonce"]  # a replacement on the same nonce ...
            assert proof["maxFeePerGas"] > first["maxFeePerGas"]  # ... with higher fees
            assert resent(daemon) >= 1
            wait_for(lambda: env.client.status_of(later).name == "FRAUD_PROVEN", 30, "the later one proven")
            assert_proven_in_time(env, later)
            assert not daemon.died and daemon.alive
        finally:
            daemon.stop()  # the fee spike is undone with the chain by the w3 fixture (tests/conftest.py)


def test_challenge_stuck_in_the_pool_is_replaced_on_its_nonce_with_higher_fees(env: Env, tmp_path: Path) -> None:
    """No block includes the challenge for a while (congestion, a censoring producer): it stays pooled; after
    ``stuck_after`` seconds the daemon replaces it on the same nonce with both fees 25 % higher, and it keeps
    serving other claims meanwhile."""
    wrong = answer(env, 0)
    other = answer(env, 1, wrong=False)
    config = ChallengerConfig(poll_interval=0.1, recheck_interval=0.3, fees=FeePolicy(stuck_after=3.0))
    daemon = Daemon(make_challenger(env, tmp_path, config))
    env.rpc("evm_setAutomine", False)  # and no block at all until the replacement is in the pool
    try:
        daemon.start()
        first = wait_for(lambda: (c := daemon.claim(wrong)) and c.state is ClaimState.CHALLENGING and c, 30,
                         "the first challenge sent")
        assert first.tx_hash and first.nonce is not None
        old = env.w3.eth.get_transaction(first.tx_hash)  # type: ignore[arg-type]
        wait_for(lambda: state_of(daemon, other) is ClaimState.CORRECT, 10, "other claims go on meanwhile")
        replaced = wait_for(lambda: (c := daemon.claim(wrong)) and c.tx_hash != first.tx_hash and c, 15,
                            "the stuck challenge replaced")
        new = env.w3.eth.get_transaction(replaced.tx_hash)  # type: ignore[arg-type]
        assert new["nonce"] == old["nonce"] == first.nonce
        assert new["maxFeePerGas"] > old["maxFeePerGas"] and new["maxPriorityFeePerGas"] > old["maxPriorityFeePerGas"]
        assert daemon.challenger.metrics.challenges_resent.labels(reason="stuck")._value.get() >= 1  # type: ignore[attr-defined]
    finally:
        env.rpc("evm_setAutomine", True)
    try:
        env.rpc("evm_mine")
        wait_for(lambda: env.client.status_of(wrong).name == "FRAUD_PROVEN", 30, "proven once blocks come")
        event = assert_proven_in_time(env, wrong)
        proof = env.w3.eth.get_transaction(event["tx"])  # type: ignore[arg-type]
        assert proof["nonce"] == first.nonce and event["tx"] != first.tx_hash
        assert not mined(env, first.tx_hash)
        wait_for(lambda: state_of(daemon, wrong) is ClaimState.PROVEN, 10, "the store says proven")
        assert not daemon.died and daemon.alive
    finally:
        daemon.stop()
