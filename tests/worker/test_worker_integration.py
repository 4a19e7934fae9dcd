"""Integration on real anvil + onnxruntime + SQLite: a request is answered, finalized and paid."""

from __future__ import annotations

import httpx

from oracle.app import start_api
from oracle.chain.types import Status
from oracle.jobstate import JobState

from .conftest import (
    FEE,
    OPERATOR_INDEX,
    WINDOW,
    WorkerSystem,
    dev_account,
    expected_float_output,
    expected_int_output,
    float_input,
    int_input,
    wait_for,
)


def test_request_is_answered_finalized_and_paid(ws: WorkerSystem, node_factory) -> None:
    rn = node_factory(admin_key="k" * 20)
    op = dev_account(OPERATOR_INDEX).address
    rid_int = ws.request(ws.int_model_id, int_input([1, 2, 3, -4]))
    rid_float = ws.request(ws.float_model_id, float_input([1.5, -2.0, 0.25]))
    wait_for(lambda: ws.client.status_of(rid_int) == Status.SUBMITTED
             and ws.client.status_of(rid_float) == Status.SUBMITTED, what="both submitted")
    assert ws.client.is_attested_output(rid_int, expected_int_output([1, 2, 3, -4]))
    assert ws.client.is_attested_output(rid_float, expected_float_output([1.5, -2.0, 0.25]))
    assert ws.client.get_request(rid_int).operator == op
    credits_before = ws.client.credits_of(op)
    ws.rpc("evm_increaseTime", [WINDOW + 1])
    ws.rpc("evm_mine", [])
    wait_for(lambda: ws.client.status_of(rid_int) == Status.FINALIZED
             and ws.client.status_of(rid_float) == Status.FINALIZED, what="both finalized")
    assert ws.client.credits_of(op) == credits_before + 2 * FEE
    wait_for(lambda: rn.node.db.job(rid_int).state is JobState.FINALIZED, what="db finalized")

    port = start_api(rn.node, 0)
    base = f"http://127.0.0.1:{port}"
    jobs = httpx.get(f"{base}/jobs").json()
    assert jobs["counts"]["finalized"] == 2
    assert httpx.get(f"{base}/jobs/{hex(rid_int)}").json()["state"] == "finalized"
    assert httpx.post(f"{base}/admin/withdraw").status_code == 401
    assert httpx.post(f"{base}/admin/withdraw", headers={"X-API-Key": "wrong-key-wrong-key"}).status_code == 403
    balance = ws.w3.eth.get_balance(op)
    r = httpx.post(f"{base}/admin/withdraw", headers={"X-API-Key": "k" * 20}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["sent"] is True
    wait_for(lambda: ws.client.credits_of(op) == 0, what="credits withdrawn")
    assert ws.w3.eth.get_balance(op) > balance
    m = httpx.get(f"{base}/metrics").text
    assert "oracle_worker_requests_submitted_total 2.0" in m
    assert "oracle_worker_requests_finalized_total 2.0" in m
    assert rn.error is None


def test_refused_model_fails_its_jobs_and_the_worker_keeps_serving(ws: WorkerSystem, node_factory) -> None:
    from oracle.chain.types import Mode

    from .conftest import int_model

    bad_id = ws.register(int_model().SerializeToString(), Mode.EXACT, 8, 16, onnx_hash=b"\x42" * 32, name="bad")
    rn = node_factory(operator_index=OPERATOR_INDEX + 3)
    bad = ws.request(bad_id, int_input([1, 2, 3, 4]))
    good = ws.request(ws.int_model_id, int_input([1, 2, 3, 4]))
    wait_for(lambda: ws.client.status_of(good) == Status.SUBMITTED, what="good model served")
    wait_for(lambda: rn.node.db.job(bad).state is JobState.FAILED, what="bad model refused")
    assert "does not match the registered" in rn.node.db.job(bad).error
    assert ws.client.status_of(bad) == Status.PENDING
    assert rn.error is None and rn.thread.is_alive()
