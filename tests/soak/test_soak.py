"""Soak under faults (issue 6, item 2): two honest workers, one dishonest, a challenger, real anvil, kill -9,
SIGSTOP pauses and RPC faults; then every invariant of protocol.md §8 is audited on the chain.

CI size by default (300 requests, about two and a half minutes); ``ORACLE_SOAK_REQUESTS=3000`` (or
``python -m bench.soak --requests 3000``) goes deeper. The report is printed even when the test passes.
"""

from __future__ import annotations

import pytest

from tests.soak.faults import ERROR_KINDS
from tests.soak.harness import SoakConfig, run_soak


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_soak_every_request_settles_once_and_every_lie_is_slashed(capsys: pytest.CaptureFixture[str]) -> None:
    run = run_soak(SoakConfig.from_env())
    with capsys.disabled():
        print("\n" + run.summary())
    f = run.figures

    # protocol.md §8 on the chain after the run (lifecycle, correctness, slashing, challenger, solvency)
    assert run.violations == [], "\n".join(run.violations[:20])
    assert run.final_balance == 0, "the oracle must hold nothing once everything is settled and withdrawn"

    # every fault really happened, and the nodes really saw them
    assert f["kills"] >= 3 and len(f["kills_by_worker"]) >= 2, f["kills_by_worker"]
    assert f["kills_at_broadcast"] >= 1 and f["kills_with_tx_pending"] >= 1, "no kill between broadcast and receipt"
    assert f["freezes"] >= 1 and f["challenger_kills"] >= 1
    for kind in ERROR_KINDS:
        assert run.faults.get(kind, 0) > 0, f"fault {kind} was never injected: {run.faults}"
    assert sum(run.worker_rpc_errors.values()) > 0, "the workers never noticed an RPC fault"
    assert f["frauds_proven"] >= 1, "the dishonest worker never landed a lie, nothing was proven"
    assert f["dishonest_lies_predicted_and_landed"] == f["frauds_proven"]
    assert f["refunded"] == f["requests_by_kind"].get("ghost", 0)

    # Liveness (issue 12): the workers finalize their own results; the driver's fallback may finalize at most
    # 1 % of them (the soak README's findings, fixed in the worker, made it 106 in a CI-sized run).
    print(f"driver finalized {run.driver_finalized} of {f['finalized']} results for the workers "
          f"(share {f['driver_finalized_share']})")
    assert f["driver_finalized_share"] <= 0.01, (
        f"the driver had to finalize {run.driver_finalized} of {f['finalized']} results for the workers")
