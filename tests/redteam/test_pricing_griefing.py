# ruff: noqa: F811 - `system` parameters are the imported fixture
"""Issue 12, problem 1: a consumer that asks for the largest callback gas and burns all of it.

Before: 32 such requests (0.032 ETH of fees) made every ``finalizeBatch`` revert with
``InsufficientGasForCallback`` and cost the operator ~1.07M gas per finalize for a 0.001 ETH fee. Now the
requester pays ``callbackGasCharged(limit) * price`` at a gas price it commits to, whoever finalizes is paid that
deposit, a batch skips the items it cannot give their full callback gas (they stay finalizable), and a request that
committed a price below the base fee has its callback skipped. Both griefers are run on anvil against the real
contract; the operator's net (fees + reimbursements - gas of its finalize transactions at the committed price)
must be at least the fees it earned.
"""

from __future__ import annotations

from typing import Any

from web3.logs import DISCARD

# The contract tests' fixtures (a deployed system, reverted after each test) are imported by name.
from tests.contracts.conftest import FEE, OUTPUT, WINDOW, System, deployed, system  # noqa: F401

GRIEFERS = 32
ORDINARY = 3
MAX_CALLBACK = 1_000_000
BATCH_GAS = 5_000_000  # a worker's batch: room for only a few 1M callbacks


def _rid(system: System, receipt: Any) -> int:
    events = system.oracle.events.InferenceRequested().process_receipt(receipt, errors=DISCARD)
    return int(events[0]["args"]["requestId"])


def _setup(system: System, *, pay_callback: bool) -> tuple[list[int], list[int], Any, int]:
    griefer = system.consumer("GasHungryConsumer")
    value = system.quote(MAX_CALLBACK) if pay_callback else FEE
    bad = [_rid(system, system.chain.ok(griefer.functions.request(system.model_id, bytes([i]) * 64, MAX_CALLBACK),
                                        system.user, value=value)) for i in range(GRIEFERS)]
    good = [system.request(data=bytes([200 + i]) * 64) for i in range(ORDINARY)]
    ids = [*bad, *good]
    system.chain.ok(system.oracle.functions.submitResults(ids, [OUTPUT] * len(ids)), system.operator, gas=10_000_000)
    system.chain.mine(system.chain.now() + WINDOW + 1)
    price = system.client.callback_gas_price_of(bad[0])
    return bad, good, griefer, price


def _finalize_like_a_worker(system: System, ids: list[int], price: int) -> tuple[int, int]:
    """Finalizes like the worker: batches packed by the callback gas each item needs
    (``callbackGasCharged`` plus the item's own work) within ``BATCH_GAS``, each sent at `price` (a worker that
    bids the committed price), until none is left. Returns (transactions, gas paid at the committed price).
    Every transaction must succeed and make progress."""
    txs = gas_cost = 0
    left = list(ids)
    while left:
        batch, budget = [], 100_000
        base = system.w3.eth.get_block("latest")["baseFeePerGas"]
        for rid in left:
            # A callback whose committed price is below the base fee is skipped: it needs no gas.
            paid = system.client.callback_gas_price_of(rid) >= base
            limit = system.client.get_request(rid).callback_gas_limit if paid else 0
            need = system.client.callback_gas_charged(limit) + 40_000
            if batch and budget + need > BATCH_GAS:
                continue
            batch.append(rid)
            budget += need
        fn = system.oracle.functions.finalizeBatch(batch, [OUTPUT] * len(batch))
        tx = fn.transact({"from": system.operator, "gas": BATCH_GAS, "maxFeePerGas": max(price, 1),
                          "maxPriorityFeePerGas": 0})
        receipt = system.w3.eth.wait_for_transaction_receipt(tx)
        assert receipt["status"] == 1, "one griefing item must not revert the batch"
        txs += 1
        gas_cost += receipt["gasUsed"] * price
        done = {int(e["args"]["requestId"]) for e in
                system.oracle.events.RequestFinalized().process_receipt(receipt, errors=DISCARD)}
        assert done == set(batch), "a packed batch left items out"
        left = [i for i in left if i not in done]
    return txs, gas_cost


def test_paying_griefer_reimburses_the_operator(system: System) -> None:
    bad, good, _, price = _setup(system, pay_callback=True)
    assert price > 0 and price >= system.w3.eth.get_block("latest")["baseFeePerGas"]
    txs, gas_cost = _finalize_like_a_worker(system, [*bad, *good], price)
    assert txs > 1  # a 5M-gas batch holds only a few 1M callbacks
    assert all(system.client.status_of(i).name == "FINALIZED" for i in [*bad, *good])
    fees = FEE * (GRIEFERS + ORDINARY)
    credits = system.client.credits_of(system.operator)
    deposits = GRIEFERS * system.client.callback_gas_charged(MAX_CALLBACK) * price
    assert credits == fees + deposits
    net = credits - gas_cost
    assert net >= fees, f"operator lost {fees - net} wei to the griefer's callbacks"
    assert system.client.stake_of(system.operator).locked == 0
    assert system.solvency_gap() == 0


def test_underpaying_griefer_gets_no_callback_and_costs_nothing(system: System) -> None:
    bad, good, griefer, price = _setup(system, pay_callback=False)
    assert price == 0
    base = system.w3.eth.get_block("latest")["baseFeePerGas"]
    assert base > 0
    txs, gas_cost_at_base = _finalize_like_a_worker(system, [*bad, *good], base)
    assert txs == 1  # nothing to give gas to: all 35 in one batch
    for rid in bad:
        view = system.client.get_request(rid)
        assert view.status.name == "FINALIZED" and view.callback_succeeded is False
    assert system.client.credits_of(system.operator) == FEE * (GRIEFERS + ORDINARY)
    # Without callbacks an item costs a fraction of its fee even at today's base fee.
    assert gas_cost_at_base < FEE * (GRIEFERS + ORDINARY)
    assert system.solvency_gap() == 0


def test_batch_skips_an_item_it_cannot_give_its_callback_gas(system: System) -> None:
    """The single ``finalize`` still reverts rather than starve a callback; the batch skips it instead."""
    bad, good, _, _ = _setup(system, pay_callback=True)
    ids = [bad[0], *good]
    receipt = system.chain.ok(system.oracle.functions.finalizeBatch(ids, [OUTPUT] * len(ids)), system.operator,
                              gas=600_000)
    done = {int(e["args"]["requestId"]) for e in
            system.oracle.events.RequestFinalized().process_receipt(receipt, errors=DISCARD)}
    assert done == set(good)
    assert system.client.status_of(bad[0]).name == "FINALIZABLE"
    system.chain.reverts(system.oracle.functions.finalize(bad[0], OUTPUT), system.operator,
                         "InsufficientGasForCallback", gas=600_000)
    system.chain.ok(system.oracle.functions.finalize(bad[0], OUTPUT), system.operator, gas=1_500_000)
    assert system.client.status_of(bad[0]).name == "FINALIZED"
