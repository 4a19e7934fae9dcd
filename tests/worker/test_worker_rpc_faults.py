"""RPC faults from a local proxy (5xx, resets, timeouts): back off, no crash, no loss, no duplicate (threat 13)."""

from __future__ import annotations

import pytest

from oracle.chain.types import Status
from oracle.jobstate import JobState

from .conftest import OPERATOR_INDEX, WorkerSystem, dev_account, int_input, wait_for
from .rpc_proxy import FaultProxy

OP_INDEX = OPERATOR_INDEX + 2
OP = dev_account(OP_INDEX).address


@pytest.mark.timeout(150)
def test_rpc_faults_back_off_without_loss_or_duplicates(ws: WorkerSystem, node_factory) -> None:
    with FaultProxy(ws.url) as proxy:
        proxy.enabled = False  # clean start; faults begin once the node runs
        rn = node_factory(operator_index=OP_INDEX, rpc_urls=[proxy.url], rpc_timeout=1.0, batch_size=2)
        proxy.enabled = True
        rids = []
        for i in range(8):
            rids.append(ws.request(ws.int_model_id, int_input([i, i + 1, i + 2, i + 3])))
        wait_for(lambda: all(ws.client.status_of(r) is Status.SUBMITTED for r in rids), timeout=120,
                 what="all submitted through the faulty proxy")
        wait_for(lambda: all(rn.node.db.job(r).state is JobState.SUBMITTED for r in rids), timeout=60,
                 what="db caught up")
        assert rn.thread.is_alive() and rn.error is None
        assert rn.node.metrics.rpc_errors._value.get() > 0  # noqa: SLF001
        faults = dict(proxy.faults)
    rn.stop()
    for kind in ("http_502", "reset_before", "reset_after", "timeout"):
        assert faults.get(kind, 0) > 0, f"fault {kind} was really injected: {faults}"
    for r in rids:
        assert len(ws.submissions_by(OP, r)) == 1
        assert ws.client.get_request(r).operator == OP
