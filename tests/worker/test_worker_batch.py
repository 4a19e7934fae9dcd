"""Batches isolate bad items (issue 12, problem 2): one unaffordable, reverting or mismatched item never fails
the rest of its submit or finalize batch, and attempts are counted per job, not per batch. Real anvil."""

from __future__ import annotations

from eth_utils import keccak

from oracle.chain.types import Mode, ModelSpec, Status
from oracle.jobstate import JobState
from oracle.worker.node import Node

from .conftest import (
    FEE,
    OPERATOR_INDEX,
    WINDOW,
    WorkerSystem,
    dev_account,
    float_input,
    float_model,
    int_input,
    wait_for,
)

OP_INDEX = OPERATOR_INDEX + 1
OP = dev_account(OP_INDEX).address


def _execute_all(node: Node, rids: list[int]) -> None:
    head = node.rpc.head()
    node.listener.poll(head)
    wait_for(lambda: (node.processor.step(node.rpc.head()),
                      all(node.db.job(r).state is JobState.EXECUTED for r in rids))[1], what="executed")


def _mine_pending(node: Node) -> None:
    wait_for(lambda: not node.submitter.tick(node.rpc.head()), what="in-flight transaction mined")


def test_unaffordable_bond_waits_while_the_rest_of_the_batch_is_submitted(ws: WorkerSystem, node_factory) -> None:
    """The issue's case: a request whose bond exceeds the operator's free stake sat in a batch with five digits
    requests, and all five ended ``failed after 7 attempts``. Now the five go out at once, no attempt counted."""
    free = ws.client.contract.functions.freeStake(OP).call()
    data = float_model().SerializeToString()
    path = ws.model_dir / "float-expensive.onnx"
    path.write_bytes(data)
    spec = ModelSpec(onnx_hash=keccak(data), fee=FEE, bond=free + 1, input_length=12, output_length=8,
                     mode=Mode.ATTESTED, uri=path.as_uri())
    expensive = ws.client.register_model(ws.accounts[0], spec)
    # The operator accepts any bond (max_bond_wei off): the bond is refused by the stake, not by its risk setting.
    rn = node_factory(operator_index=OP_INDEX, batch_size=10, start_block=ws.w3.eth.block_number + 1,
                      max_bond_wei=None)
    rn.node.pause()  # everything executes before the first batch goes out, so all six share it
    big = ws.request(expensive, float_input([1.0, 2.0, 3.0]))
    small = [ws.request(ws.int_model_id, int_input([i, 1, 2, 3])) for i in range(5)]
    wait_for(lambda: rn.node.db.counts().get("seen", 0) == 6, what="six requests ingested")
    rn.node.resume()
    wait_for(lambda: all(ws.client.status_of(r) is Status.SUBMITTED for r in small), timeout=60,
             what="the five affordable results submitted")
    wait_for(lambda: all(rn.node.db.job(r).state is JobState.SUBMITTED for r in small), what="db submitted")
    for r in small:
        job = rn.node.db.job(r)
        assert job.attempts == 1, "its inference only: no submission attempt counted against the good items"
        assert ws.client.get_request(r).operator == OP
    sub_txs = {rn.node.db.job(r).tx_hash for r in small}
    assert len(sub_txs) == 1, "one batch carried all five"
    job = rn.node.db.job(big)
    assert job.state is JobState.EXECUTED and job.attempts == 1, "the unaffordable one waits for free stake"
    assert ws.client.status_of(big) is Status.PENDING
    assert ws.submissions_by(OP, big) == []


def test_a_reverting_item_is_bisected_out_and_fails_alone(ws: WorkerSystem, node_factory) -> None:
    node: Node = node_factory(start=False, operator_index=OP_INDEX, batch_size=10, max_attempts=1)
    node.setup()
    try:
        rids = [ws.request(ws.int_model_id, int_input([i, i, 5, 6])) for i in range(5)]
        _execute_all(node, rids)
        a0 = node.db.job(rids[0]).attempts  # the inference's
        bad = rids[2]
        node.db.set_state([bad], JobState.EXECUTED, output=b"\x01\x02\x03")  # wrong length: submitResults reverts
        assert node.submitter.simulate(node.rpc.client.submit_batch_fn(
            rids, [node.db.job(r).output or b"" for r in rids])) is None, "the whole batch really reverts"
        assert node.submitter.submit_ready(node.rpc.head()) == 4
        _mine_pending(node)
        good = [r for r in rids if r != bad]
        for r in good:
            assert ws.client.status_of(r) is Status.SUBMITTED
            assert node.db.job(r).state is JobState.SUBMITTED and node.db.job(r).attempts == a0
        assert node.db.job(bad).state is JobState.EXECUTED and node.db.job(bad).attempts == a0 + 1
        # it keeps failing alone, one attempt per try, until it is given up; nothing else is held back
        for _ in range(10):
            node.submitter.submit_ready(node.rpc.head())
            if node.db.job(bad).state is JobState.FAILED:
                break
        job = node.db.job(bad)
        assert job.state is JobState.FAILED and "submission kept failing" in (job.error or "")
        assert job.attempts == 1 + 3 + 1, "given up once past max_attempts + 3"
        assert ws.client.status_of(bad) is Status.PENDING and ws.submissions_by(OP, bad) == []
    finally:
        node.cleanup()


def test_a_mismatched_output_is_skipped_on_chain_and_dropped_by_the_finalizer(ws: WorkerSystem,
                                                                                node_factory) -> None:
    node: Node = node_factory(start=False, operator_index=OP_INDEX, batch_size=10)
    node.setup()
    try:
        rids = [ws.request(ws.int_model_id, int_input([3, i, 3, 3])) for i in range(3)]
        _execute_all(node, rids)
        assert node.submitter.submit_ready(node.rpc.head()) == 3
        _mine_pending(node)
        ws.rpc("evm_increaseTime", [WINDOW + 1])
        ws.rpc("evm_mine")
        bad = rids[1]
        wrong = bytes(16)
        node.db.set_state([bad], JobState.SUBMITTED, output=wrong)
        outs = [node.db.job(r).output or b"" for r in rids]
        # on-chain: finalizeBatch skips the mismatched item instead of reverting with OutputMismatch
        fn = node.rpc.client.finalize_batch_fn(rids, outs)
        assert fn.call({"from": OP}) == 2
        assert node.finalizer.step(node.rpc.head()) == 2
        _mine_pending(node)
        for r in rids:
            want = Status.FINALIZABLE if r == bad else Status.FINALIZED
            assert ws.client.status_of(r) is want
        job = node.db.job(bad)
        assert job.state is JobState.FAILED and "not the attested one" in (job.error or "")
        assert all(node.db.job(r).state is JobState.FINALIZED for r in rids if r != bad)
    finally:
        node.cleanup()
