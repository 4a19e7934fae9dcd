"""Fraud proofs for EXACT models: re-execution on-chain, slash, reward, burn, correct output delivered."""

from __future__ import annotations

import pytest

from oracle.profile.models import model_entry
from tests.contracts.conftest import BOND, FEE, UNBONDING, WINDOW, System

BURN = "0x000000000000000000000000000000000000dEaD"
SAMPLES = model_entry("digits")["samples"]
PIXELS = bytes.fromhex(SAMPLES[0]["input_hex"][2:])
CORRECT = bytes.fromhex(SAMPLES[0]["expected_output_hex"][2:])
WRONG = bytes([(CORRECT[0] + 1) % 10])


def exact_request(system: System, consumer_name: str = "RecordingConsumer") -> tuple[int, object]:
    consumer = system.consumer(consumer_name)
    receipt = system.chain.ok(consumer.functions.request(system.exact_id, PIXELS, 200_000), system.user,
                              value=system.quote(200_000, system.exact_id))
    rid = system.client.events_in(receipt, "InferenceRequested")[0]["requestId"]
    return rid, consumer


def deposit_of(system: System, rid: int) -> int:
    """The callback deposit the request paid: the settler (here the challenger) is reimbursed with it."""
    view = system.client.get_request(rid)
    return system.client.callback_gas_charged(view.callback_gas_limit) * system.client.callback_gas_price_of(rid)


def test_wrong_result_is_proven_slashed_rewarded_burned_and_corrected(system: System) -> None:
    rid, consumer = exact_request(system)
    deposit = deposit_of(system, rid)
    assert deposit > 0
    system.submit(rid, WRONG)
    stake_before = system.client.stake_of(system.operator)
    burn_before = system.chain.balance(BURN)
    oracle_before = system.chain.balance(system.deployment.oracle)
    receipt = system.chain.ok(system.oracle.functions.challenge(rid, PIXELS), system.challenger, gas=5_000_000)
    (ev,) = system.client.events_in(receipt, "FraudProven")
    assert ev["correctOutput"] == CORRECT and ev["challenger"] == system.challenger
    assert ev["reward"] == BOND // 2 + FEE and ev["burned"] == BOND // 2 and ev["callbackSucceeded"] is True
    (slash,) = system.client.events_in(receipt, "Slashed")
    assert slash["operator"] == system.operator and slash["amount"] == BOND
    after = system.client.stake_of(system.operator)
    assert after.staked == stake_before.staked - BOND and after.locked == stake_before.locked - BOND
    assert system.client.credits_of(system.challenger) == BOND // 2 + FEE + deposit
    assert system.client.credits_of(system.operator) == 0
    assert system.chain.balance(BURN) == burn_before + BOND // 2
    assert system.chain.balance(system.deployment.oracle) == oracle_before - BOND // 2
    # The requester got the correct output at once, and the request is settled for good.
    assert consumer.functions.lastOutput().call() == CORRECT and consumer.functions.deliveries().call() == 1
    assert system.client.status_of(rid).name == "FRAUD_PROVEN"
    assert system.client.is_attested_output(rid, CORRECT) and not system.client.is_attested_output(rid, WRONG)
    system.chain.reverts(system.oracle.functions.finalize(rid, WRONG), system.user, "AlreadyFinalized",
                         at=system.submitted_at(rid) + WINDOW)
    assert system.solvency_gap() == 0


def test_correct_result_cannot_be_challenged(system: System) -> None:
    rid, _ = exact_request(system)
    system.submit(rid, CORRECT)
    system.chain.reverts(system.oracle.functions.challenge(rid, PIXELS), system.challenger, "ResultIsCorrect",
                         gas=5_000_000)
    assert system.client.stake_of(system.operator).locked == BOND


@pytest.mark.parametrize("sample", SAMPLES[:8])
def test_verifier_agrees_with_reference_on_shipped_samples(system: System, sample: dict) -> None:
    chunks = system.client.program_chunks(system.exact_id)
    verifier = system.w3.eth.contract(address=system.deployment.verifier,
                                      abi=__import__("oracle.chain.artifacts", fromlist=["load"]).load(
                                          "IExactVerifier").abi)
    out = verifier.functions.executeStored(chunks, bytes.fromhex(sample["input_hex"][2:])).call()
    assert out == bytes.fromhex(sample["expected_output_hex"][2:])


def test_challenge_at_deadline_minus_one_works_at_deadline_reverts(system: System) -> None:
    rid, _ = exact_request(system)
    system.submit(rid, WRONG)
    deadline = system.submitted_at(rid) + WINDOW
    late = system.chain.send(system.oracle.functions.challenge(rid, PIXELS), system.challenger, gas=5_000_000,
                             at=deadline)
    assert late["status"] == 0 and system.chain.revert_of(late).name == "ChallengeWindowClosed"
    # State was reverted with the failed tx: the request can now only be finalized (window over).
    rid2, _ = exact_request(system)
    system.submit(rid2, WRONG)
    system.chain.ok(system.oracle.functions.challenge(rid2, PIXELS), system.challenger, gas=5_000_000,
                    at=system.submitted_at(rid2) + WINDOW - 1)
    assert system.client.status_of(rid2).name == "FRAUD_PROVEN"


def test_self_challenge_loses_money(system: System) -> None:
    rid, _ = exact_request(system)
    system.submit(rid, WRONG)
    staked_before = system.client.stake_of(system.operator).staked
    system.chain.ok(system.oracle.functions.challenge(rid, PIXELS), system.operator, gas=5_000_000)
    # The callback deposit only pays back the callback gas the challenge transaction spent.
    gained = system.client.credits_of(system.operator) - deposit_of(system, rid)
    lost = staked_before - system.client.stake_of(system.operator).staked
    assert lost - gained == BOND // 2 - FEE > 0


def test_pending_withdrawal_cannot_escape_a_slash(system: System) -> None:
    op = system.accounts[6]
    system.chain.ok(system.oracle.functions.stake(), op, value=2 * BOND)
    rid, _ = exact_request(system)
    system.submit(rid, WRONG, operator=op)
    # The cheater unstakes everything it can right after submitting: only the free part moves.
    system.chain.ok(system.oracle.functions.requestUnstake(BOND), op)
    ready = system.client.stake_of(op).withdrawable_at
    assert ready >= system.submitted_at(rid) + WINDOW + UNBONDING - WINDOW
    system.chain.ok(system.oracle.functions.challenge(rid, PIXELS), system.challenger, gas=5_000_000)
    s = system.client.stake_of(op)
    assert (s.staked, s.locked, s.pending) == (0, 0, BOND)
    system.chain.reverts(system.oracle.functions.withdrawStake(op), op, "UnbondingNotOver")


def test_attested_model_cannot_be_challenged(system: System) -> None:
    rid = system.request()
    system.submit(rid)
    from tests.contracts.conftest import INPUT

    system.chain.reverts(system.oracle.functions.challenge(rid, INPUT), system.challenger, "NotChallengeable")
