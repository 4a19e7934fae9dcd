"""Red team, silent loss (issue 9, item 5): a wrong result the challenger cannot prove must raise an alarm.

Before, the daemon filed every refused challenge as ``lost_race`` with no alarm, so an operator never learnt
that a wrong result was about to finalize. Here the proof stops fitting in a block (the block gas limit falls
under the proof's gas, as an over-sized model would make it): the claim becomes ``unprovable`` with an error
log and ``challenger_alarms_total{kind="unprovable"}``, raised once; the daemon keeps trying while the window
is open and proves it when the proof fits again. ``lost_race`` is kept for what it means: another challenger
proved it first, which is no alarm.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from web3 import Web3

from oracle.chain.deploy import Deployment
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
    sample_io,
    state_of,
    wait_for,
)

WINDOW = 120
GAS_LIMIT = 100_000_000  # the devnet's (oracle.chain.devnet)


@pytest.fixture(scope="module")
def deployed(session_w3: Web3) -> tuple[Deployment, int]:
    return deploy(session_w3, WINDOW)


@pytest.fixture
def env(deployed: tuple[Deployment, int], w3: Web3) -> Iterator[Env]:
    yield env_of(w3, *deployed, WINDOW)


def alarms(daemon: Daemon, kind: str) -> float:
    return daemon.challenger.metrics.alarms.labels(kind=kind)._value.get()  # type: ignore[attr-defined, no-any-return]


def test_proof_that_does_not_fit_raises_an_alarm_and_is_retried(env: Env, tmp_path: Path) -> None:
    wrong = answer(env, 0)
    config = ChallengerConfig(poll_interval=0.1, recheck_interval=0.3, retry_unprovable=0.5)
    daemon = Daemon(make_challenger(env, tmp_path, config))
    try:
        env.rpc("evm_setBlockGasLimit", hex(300_000))  # the digits proof needs ~370k gas
        env.rpc("evm_mine")
        daemon.start()
        wait_for(lambda: state_of(daemon, wrong) is ClaimState.UNPROVABLE, 30, "the claim marked unprovable")
        claim = daemon.claim(wrong)
        assert claim is not None and "does not fit" in (claim.error or ""), claim
        assert claim.expected is not None  # the verdict is kept
        assert alarms(daemon, "unprovable") == 1
        wait_for(lambda: daemon.challenger.prover._last_retry > 0, 5, "a retry")
        time.sleep(1.5)  # several retries: still unprovable, the alarm is not raised again
        assert state_of(daemon, wrong) is ClaimState.UNPROVABLE and alarms(daemon, "unprovable") == 1
        assert env.client.status_of(wrong).name == "SUBMITTED"

        env.rpc("evm_setBlockGasLimit", hex(GAS_LIMIT))  # the cause goes away while the window is open
        env.rpc("evm_mine")
        wait_for(lambda: state_of(daemon, wrong) is ClaimState.PROVEN, 30, "proven once it fits")
        (event,) = proven_on_chain(env, wrong)
        assert event["timestamp"] < env.client.get_request(wrong).submitted_at + WINDOW
        assert not daemon.died and daemon.alive
    finally:
        env.rpc("evm_setBlockGasLimit", hex(GAS_LIMIT))
        daemon.stop()


def test_lost_race_only_when_another_challenger_proved_it(env: Env, tmp_path: Path) -> None:
    wrong = answer(env, 0)
    rival = env.w3.eth.accounts[6]
    env.client.challenge(rival, wrong, sample_io(0, True)[0])
    ch = make_challenger(env, tmp_path)
    try:
        ch.setup()
        while not ch.poll():
            pass
        ch.process()
        claim = ch.store.claim(wrong)
        assert claim is not None and claim.state is ClaimState.LOST_RACE, claim
        assert "another challenger" in (claim.error or "")
        assert ch.metrics.alarms.labels(kind="unprovable")._value.get() == 0  # type: ignore[attr-defined]
        assert ch.metrics.challenges_sent._value.get() == 0  # type: ignore[attr-defined]
    finally:
        ch.close()
        ch.store.close()
