"""Reorgs, deadlines and stuck transactions against the real anvil (threats 12, 14, 16)."""

from __future__ import annotations

import threading
import time

from oracle.chain.txstore import TxState
from oracle.chain.types import Status
from oracle.jobstate import JobState
from oracle.worker.node import Node

from .conftest import OPERATOR_INDEX, TIMEOUT, WorkerSystem, dev_account, int_input, wait_for

OP = dev_account(OPERATOR_INDEX).address


def _steps(node: Node, n: int = 10) -> None:
    for _ in range(n):
        node.step()


def test_reorg_dropping_a_request_event_submits_nothing(ws: WorkerSystem, node_factory) -> None:
    node: Node = node_factory(start=False)
    node.setup()
    try:
        snap = ws.rpc("evm_snapshot")
        rid = ws.request(ws.int_model_id, int_input([1, 2, 3, 4]))
        block = ws.w3.eth.block_number
        old_hash = ws.w3.eth.get_block(block)["hash"]
        node.listener.poll(node.rpc.head())  # ingested, not executed yet
        assert node.db.job(rid).state is JobState.SEEN
        ws.rpc("evm_revert", [snap])
        for _ in range(3):
            ws.rpc("evm_mine")
        assert ws.w3.eth.get_block(block)["hash"] != old_hash, "the reorg really replaced the block"
        assert ws.client.status_of(rid) is Status.NONE
        _steps(node)
        assert node.db.job(rid).state is JobState.ORPHANED
        assert node.metrics.reorgs._value.get() >= 1  # noqa: SLF001
        assert ws.submissions_by(OP, rid) == []
        assert node.db.all_txs() == []
    finally:
        node.cleanup()


def test_reorg_dropping_our_submission_resubmits(ws: WorkerSystem, node_factory) -> None:
    node: Node = node_factory(start=False)
    node.setup()
    try:
        rid = ws.request(ws.int_model_id, int_input([4, 3, 2, 1]))
        snap = ws.rpc("evm_snapshot")
        wait_for(lambda: (node.step(), node.db.job(rid).state is JobState.SUBMITTED)[1], what="first submission")
        first_tx = node.db.job(rid).tx_hash
        ws.rpc("evm_revert", [snap])
        for _ in range(3):
            ws.rpc("evm_mine")
        assert ws.client.status_of(rid) is Status.PENDING, "the reorg really dropped our submission"
        wait_for(lambda: (node.step(), ws.client.status_of(rid) is Status.SUBMITTED)[1], what="resubmission")
        _steps(node, 3)
        job = node.db.job(rid)
        assert job.state is JobState.SUBMITTED
        assert ws.client.get_request(rid).operator == OP
        assert len(ws.submissions_by(OP, rid)) == 1
        states = {t.tx_hash: t.state for t in node.db.all_txs()}
        if job.tx_hash == first_tx:
            # Re-signed with the same nonce, fees and calldata: byte-identical, so the same hash came back to
            # life and was mined on the new branch.
            assert states[first_tx] is TxState.MINED
        else:
            assert states[first_tx] is TxState.ORPHANED
        assert node.metrics.reorgs._value.get() >= 1  # noqa: SLF001
    finally:
        node.cleanup()


def test_too_little_time_before_deadline_is_skipped(ws: WorkerSystem, node_factory) -> None:
    rid = ws.request(ws.int_model_id, int_input([1, 1, 1, 1]))
    ws.rpc("evm_increaseTime", [TIMEOUT - 20])
    ws.rpc("evm_mine")
    node: Node = node_factory(start=False, min_time_left=30, start_block=ws.w3.eth.block_number - 2)
    node.setup()
    try:
        _steps(node, 5)
        job = node.db.job(rid)
        assert job is not None and job.state is JobState.SKIPPED
        assert "too little time" in (job.error or "")
        assert ws.client.status_of(rid) is Status.PENDING
        assert ws.submissions_by(OP, rid) == []
    finally:
        node.cleanup()


def test_stuck_underpriced_transaction_is_replaced_on_the_same_nonce(ws: WorkerSystem, node_factory) -> None:
    node: Node = node_factory(start=False, stuck_after=0.5, max_fee_gwei=10_000)
    node.setup()
    stop = threading.Event()
    try:
        rid = ws.request(ws.int_model_id, int_input([2, 2, 2, 2]))
        ws.rpc("evm_setAutomine", [False])
        wait_for(lambda: (node.step(), node.db.job(rid).state is JobState.SENT)[1], what="broadcast")
        (first,) = node.db.pending_txs()
        high = first.max_fee * 20

        def miner() -> None:  # blocks whose base fee the first transaction cannot pay
            while not stop.is_set():
                ws.rpc("anvil_setNextBlockBaseFeePerGas", [hex(high)])
                ws.rpc("evm_mine")
                time.sleep(0.1)

        t = threading.Thread(target=miner, daemon=True)
        t.start()
        time.sleep(0.4)
        assert node.submitter._receipt(first.tx_hash) is None, "the first transaction really is stuck"  # noqa: SLF001
        wait_for(lambda: (node.step(), node.db.job(rid).state is JobState.SUBMITTED)[1], timeout=30,
                 what="replacement mined")
        stop.set()
        t.join()
        txs = node.db.txs_for_nonce(first.nonce)
        assert len(txs) >= 2
        mined = [x for x in txs if x.state is TxState.MINED]
        assert len(mined) == 1 and mined[0].tx_hash != first.tx_hash and mined[0].max_fee > first.max_fee
        assert node.submitter._receipt(first.tx_hash) is None  # noqa: SLF001
        assert ws.client.get_request(rid).operator == OP
        assert node.metrics.txs_replaced._value.get() >= 1  # noqa: SLF001
    finally:
        stop.set()
        ws.rpc("evm_setAutomine", [True])
        node.cleanup()
