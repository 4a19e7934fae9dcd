# ruff: noqa: F811 - `ws`/`node_factory` parameters are the imported worker fixtures
"""Issue 12, problem 1, as reported: a real worker facing the gas-burning consumer.

Before: 32 requests at the 1,000,000 callback-gas maximum from a consumer that burns all of it made every
``finalizeBatch`` of the worker revert in simulation (112 times) and left 35 jobs, 3 ordinary ones included,
unfinalized. Now the worker packs its finalize batches by callback gas and adds that gas to the estimate; every
item is paid for by the requester's deposit. Asserted: all 35 finalize, no finalize transaction of the worker
reverts, and the operator's net (fees + deposits - gas of its finalize transactions at the committed price) is
at least its fees.
"""

from __future__ import annotations

from web3.logs import DISCARD

from oracle.chain import artifacts
from oracle.chain.tx import deploy
from oracle.chain.types import Status
from tests.worker.conftest import (  # noqa: F401 - fixtures are imported by name
    FEE,
    OPERATOR_INDEX,
    WINDOW,
    WorkerSystem,
    dev_account,
    float_input,
    node_factory,
    wait_for,
    worker_deployed,
    ws,
)

GRIEFERS = 32
ORDINARY = 3
MAX_CALLBACK = 1_000_000


def test_worker_finalizes_griefing_callbacks_without_losing_money(ws: WorkerSystem, node_factory) -> None:
    node_factory()  # follows the chain from the next block: started before the requests
    art = artifacts.load("GasHungryConsumer")
    griefer = ws.w3.eth.contract(address=deploy(ws.w3, art.abi, art.bytecode, ws.accounts[0], ws.deployment.oracle),
                                 abi=art.abi)
    data = float_input([1.5, -2.0, 0.25])
    value = ws.client.quote(ws.float_model_id, MAX_CALLBACK)
    bad = []
    for _ in range(GRIEFERS):
        tx = griefer.functions.request(ws.float_model_id, data, MAX_CALLBACK).transact(
            {"from": ws.requester, "value": value, "gas": 500_000})
        receipt = ws.w3.eth.wait_for_transaction_receipt(tx)
        assert receipt["status"] == 1
        bad.append(int(ws.client.contract.events.InferenceRequested().process_receipt(
            receipt, errors=DISCARD)[0]["args"]["requestId"]))
    good = [ws.request(ws.float_model_id, data) for _ in range(ORDINARY)]
    ids = [*bad, *good]
    price = ws.client.callback_gas_price_of(bad[0])
    assert price > 0
    op = dev_account(OPERATOR_INDEX).address
    credits_before = ws.client.credits_of(op)
    first_block = ws.w3.eth.block_number + 1

    wait_for(lambda: all(ws.client.status_of(i) == Status.SUBMITTED for i in ids), timeout=60, what="all submitted")
    ws.rpc("evm_increaseTime", [WINDOW + 1])
    ws.rpc("evm_mine", [])
    wait_for(lambda: all(ws.client.status_of(i) == Status.FINALIZED for i in ids), timeout=90, what="all finalized")

    finalize_sel = ws.client.contract.functions.finalizeBatch([], [])._encode_transaction_data()[:10]  # noqa: SLF001
    finalize_txs = []
    for n in range(first_block, ws.w3.eth.block_number + 1):
        for tx in ws.w3.eth.get_block(n, full_transactions=True)["transactions"]:
            if tx["from"].lower() == op.lower() and tx["input"].to_0x_hex().startswith(finalize_sel):
                finalize_txs.append(ws.w3.eth.get_transaction_receipt(tx["hash"]))
    assert finalize_txs and all(r["status"] == 1 for r in finalize_txs), "a finalize transaction reverted"
    gas_at_committed_price = sum(r["gasUsed"] for r in finalize_txs) * price
    fees = FEE * len(ids)
    earned = ws.client.credits_of(op) - credits_before
    assert earned == fees + GRIEFERS * ws.client.callback_gas_charged(MAX_CALLBACK) * price
    assert earned - gas_at_committed_price >= fees, (
        f"operator lost {fees - (earned - gas_at_committed_price)} wei to the griefer")
