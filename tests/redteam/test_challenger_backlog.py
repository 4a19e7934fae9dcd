"""Red team, flooding (issue 9, "a backlog of hundreds fits the window"): many wrong results at once.

An attacker (or a broken operator) posts a burst of wrong results so that a challenger proving them one by
one (about 0.5-0.7 s each, every proof simulated twice and its receipt awaited) runs out of window. The real
daemon starts against 150 wrong results mixed with 50 honest ones: every wrong one must be proven before
its window closes, no honest one touched, and the throughput is reported (``-s`` shows it).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from web3 import Web3

from oracle.chain.deploy import Deployment
from oracle.challenger.store import ClaimState
from tests.challenger.harness import BOND, Daemon, Env, deploy, env_of, make_challenger, sample_io, wait_for

WINDOW = 300
WRONG, HONEST = 150, 50


@pytest.fixture(scope="module")
def deployed(session_w3: Web3) -> tuple[Deployment, int]:
    return deploy(session_w3, WINDOW)


@pytest.fixture
def env(deployed: tuple[Deployment, int], w3: Web3) -> Iterator[Env]:
    yield env_of(w3, *deployed, WINDOW)


def post_burst(env: Env) -> tuple[list[int], list[int]]:
    ids, outs, wrong, honest = [], [], [], []
    for k in range(WRONG + HONEST):
        is_wrong = k % 4 != 3  # 3 of every 4 wrong, interleaved
        if not is_wrong and len(honest) >= HONEST or is_wrong and len(wrong) >= WRONG:
            is_wrong = not is_wrong
        pixels, out = sample_io(k, is_wrong)
        rid, _ = env.client.request(env.user, env.digits_id, pixels)
        ids.append(rid)
        outs.append(out)
        (wrong if is_wrong else honest).append(rid)
    for k in range(0, len(ids), 50):
        env.client.contract.functions.submitResults(ids[k:k + 50], outs[k:k + 50]).transact(
            {"from": env.operator, "gas": 30_000_000})
    return wrong, honest


def test_backlog_of_wrong_results_is_proven_within_the_window(env: Env, tmp_path: Path,
                                                              record_property: pytest.RecordProperty) -> None:
    wrong, honest = post_burst(env)
    assert len(wrong) == WRONG and len(honest) == HONEST
    stake_before = env.client.stake_of(env.operator).staked
    daemon = Daemon(make_challenger(env, tmp_path))
    started = time.monotonic()
    daemon.start()
    try:
        wait_for(lambda: daemon.challenger.store.counts().get("pending", 0) == 0
                 and daemon.challenger.store.counts().get("correct", 0) == HONEST, 60, "everything seen")
        seen = time.monotonic()
        wait_for(lambda: daemon.challenger.store.counts().get("proven", 0) == WRONG, WINDOW / 2,
                 f"all {WRONG} wrong results proven", interval=0.05)
        done = time.monotonic()
        assert not daemon.died and daemon.alive
        assert [c for c in daemon.challenger.store.claims()
                if c.state not in (ClaimState.PROVEN, ClaimState.CORRECT)] == []
    finally:
        daemon.stop()
    for rid in wrong:
        assert env.client.status_of(rid).name == "FRAUD_PROVEN"
    for rid in honest:
        assert env.client.status_of(rid).name == "SUBMITTED"
    logs = env.client.contract.events.FraudProven().get_logs(from_block=env.deployment.block)
    assert {int(e["args"]["requestId"]) for e in logs} == set(wrong) and len(logs) == WRONG
    last = max(int(env.w3.eth.get_block(e["blockNumber"])["timestamp"]) for e in logs)
    first_deadline = min(env.client.get_request(r).submitted_at for r in wrong) + WINDOW
    assert last < first_deadline, "a proof landed after the earliest window closed"
    assert env.client.stake_of(env.operator).staked == stake_before - WRONG * BOND
    end_to_end = WRONG / (done - started)
    record_property("frauds_per_second_end_to_end", round(end_to_end, 1))
    record_property("seconds_to_prove_all", round(done - started, 2))
    print(f"\nbacklog: {WRONG} wrong + {HONEST} honest results; all wrong proven {done - started:.2f} s after "
          f"start ({seen - started:.2f} s to verify all): {end_to_end:.1f} frauds/s end to end, "
          f"{(done - started) / WRONG * 1000:.0f} ms per fraud; chain time used {last - first_deadline + WINDOW} s "
          f"of the {WINDOW} s window")
