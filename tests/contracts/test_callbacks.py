"""Consumers cannot jam settlement: reverting, gas-hungry and reentrant callbacks; exact callback gas."""

from __future__ import annotations

import pytest

from tests.contracts.conftest import FEE, INPUT, OUTPUT, WINDOW, System


def settle(system: System, consumer_name: str, gas_limit: int = 100_000) -> tuple[int, dict, object]:
    consumer = system.consumer(consumer_name)
    rid = system.consumer_request(consumer, gas_limit)
    system.submit(rid)
    receipt = system.finalize(rid)
    (ev,) = system.client.events_in(receipt, "RequestFinalized")
    return rid, ev, consumer


def money_state(system: System) -> tuple[int, int, int]:
    s = system.client.stake_of(system.operator)
    return system.client.credits_of(system.operator), s.locked, s.staked


def test_good_consumer_receives_output_once(system: System) -> None:
    rid, ev, consumer = settle(system, "RecordingConsumer")
    assert ev["callbackSucceeded"] is True
    assert consumer.functions.deliveries().call() == 1
    assert consumer.functions.lastOutput().call() == OUTPUT
    assert consumer.functions.lastRequestId().call() == rid
    assert system.client.get_request(rid).callback_succeeded is True


@pytest.mark.parametrize("name", ["RevertingConsumer", "GasHungryConsumer", "ReentrantConsumer"])
def test_bad_consumer_cannot_block_finalize_or_move_money(system: System, name: str) -> None:
    rid_good, _, _ = settle(system, "NoopConsumer")
    good = money_state(system)
    rid, ev, _ = settle(system, name)
    after = money_state(system)
    # Exactly the same money movement as a good consumer: one more fee credited, no bond left locked.
    assert after[0] - good[0] == FEE and after[1] == good[1] == 0 and after[2] == good[2]
    assert system.client.status_of(rid).name == "FINALIZED"
    expected_ok = name == "ReentrantConsumer"  # its reentry attempts revert inside, then it returns
    assert ev["callbackSucceeded"] is expected_ok
    assert system.client.is_attested_output(rid, OUTPUT)  # the result stays provable on-chain
    system.chain.reverts(system.oracle.functions.finalize(rid, OUTPUT), system.user, "AlreadyFinalized")


def test_reentrant_consumer_reentry_reverts(system: System) -> None:
    _, ev, consumer = settle(system, "ReentrantConsumer")
    assert consumer.functions.attempted().call() is True
    assert consumer.functions.finalizeReverted().call() is True
    assert consumer.functions.withdrawReverted().call() is True


def test_gas_hungry_consumer_uses_only_its_limit(system: System) -> None:
    _, _, _ = settle(system, "NoopConsumer", gas_limit=300_000)
    consumer = system.consumer("GasHungryConsumer")
    rid = system.consumer_request(consumer, 300_000)
    system.submit(rid)
    receipt = system.finalize(rid, gas=2_000_000)
    assert receipt["gasUsed"] < 300_000 + 120_000


def test_callback_receives_exactly_the_requested_gas(system: System) -> None:
    consumer = system.consumer("GasProbeConsumer")
    for limit in (50_000, 500_000):
        rid = system.consumer_request(consumer, limit)
        system.submit(rid)
        system.finalize(rid, gas=3_000_000)
        at_entry = consumer.functions.gasAtEntry().call()
        # Only the consumer's own dispatch and sender check run before gasleft() is read.
        assert limit - 1_000 < at_entry < limit


def test_too_little_outer_gas_reverts_instead_of_starving_callback(system: System) -> None:
    """63/64 rule: with too little gas the whole finalize reverts; the callback is never marked failed."""
    consumer = system.consumer("GasProbeConsumer")
    rid = system.consumer_request(consumer, 500_000)
    system.submit(rid)
    at = system.submitted_at(rid) + WINDOW
    err = system.chain.reverts(system.oracle.functions.finalize(rid, OUTPUT), system.user,
                               "InsufficientGasForCallback", gas=300_000, at=at)
    assert err.args_decoded[0] > 500_000
    assert system.client.status_of(rid).name == "FINALIZABLE"
    system.finalize(rid, gas=3_000_000)
    assert system.client.get_request(rid).callback_succeeded is True


def test_eoa_requester_gets_no_callback(system: System) -> None:
    rid = system.request()
    system.submit(rid)
    ev = system.client.events_in(system.finalize(rid), "RequestFinalized")[0]
    assert ev["callbackSucceeded"] is False and system.client.credits_of(system.operator) == FEE


def test_consumer_may_chain_a_request_from_its_callback(system: System) -> None:
    consumer = system.consumer("ChainingConsumer")
    system.chain.ok(consumer.functions.arm(system.model_id, INPUT), system.user, value=FEE)
    rid = system.consumer_request(consumer, 300_000)
    system.submit(rid)
    system.finalize(rid, gas=3_000_000)
    chained = consumer.functions.chainedRequestId().call()
    assert chained != 0 and system.client.status_of(chained).name == "PENDING"


def test_only_oracle_can_deliver(system: System) -> None:
    consumer = system.consumer("RecordingConsumer")
    system.chain.reverts(consumer.functions.onInferenceResult(1, OUTPUT), system.user, "OnlyOracle")
