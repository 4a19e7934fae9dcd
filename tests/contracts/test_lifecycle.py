"""Request -> submit -> finalize, refunds, and the money each step moves."""

from __future__ import annotations

from eth_utils.crypto import keccak

from oracle.chain.types import Status, attested_hash
from tests.contracts.conftest import BOND, FEE, INPUT, OUTPUT, TIMEOUT, WINDOW, System


def test_request_escrows_fee_and_emits_input(system: System) -> None:
    before = system.chain.balance(system.deployment.oracle)
    receipt = system.chain.ok(system.oracle.functions.requestInference(system.model_id, INPUT, 0), system.user,
                              value=FEE)
    (ev,) = system.client.events_in(receipt, "InferenceRequested")
    assert ev["input"] == INPUT and ev["requester"] == system.user and ev["fee"] == FEE
    assert ev["modelId"] == system.model_id
    assert system.chain.balance(system.deployment.oracle) == before + FEE
    rid = ev["requestId"]
    assert system.client.status_of(rid) is Status.PENDING
    view = system.client.get_request(rid)
    assert view.requester == system.user and view.requested_at == system.chain.now()


def test_request_id_binds_nonce_and_input(system: System) -> None:
    r1 = system.request()
    r2 = system.request()
    assert r1 != r2
    assert r1 == system.client.compute_request_id(r1 >> 192, INPUT)
    assert r2 >> 192 == (r1 >> 192) + 1
    assert system.oracle.functions.computeRequestId(r1 >> 192, INPUT).call() == r1


def test_submit_locks_bond_and_emits_output(system: System) -> None:
    rid = system.request()
    before = system.client.stake_of(system.operator)
    receipt = system.submit(rid)
    (ev,) = system.client.events_in(receipt, "ResultSubmitted")
    assert ev["output"] == OUTPUT and ev["operator"] == system.operator
    after = system.client.stake_of(system.operator)
    assert after.locked == before.locked + BOND and after.staked == before.staked
    assert system.client.status_of(rid) is Status.SUBMITTED
    assert system.client.is_attested_output(rid, OUTPUT)
    assert not system.client.is_attested_output(rid, bytes(32))
    # What is stored: the first 24 bytes of the output's keccak256, in the result's one slot.
    view = system.client.get_request(rid)
    assert view.output_hash == keccak(OUTPUT)[:24] + bytes(8) == attested_hash(OUTPUT)
    assert view.attests(OUTPUT) and not view.attests(OUTPUT[:-1] + bytes([OUTPUT[-1] ^ 1]))
    # Finalizing with any other output is refused; a batch skips it.
    system.chain.mine(view.submitted_at + WINDOW)
    other = OUTPUT[:-1] + bytes([OUTPUT[-1] ^ 1])
    system.chain.reverts(system.oracle.functions.finalize(rid, other), system.operator, "OutputMismatch")
    assert system.oracle.functions.finalizeBatch([rid], [other]).call({"from": system.operator}) == 0


def test_finalize_pays_operator_unlocks_bond(system: System) -> None:
    rid = system.request()
    system.submit(rid)
    receipt = system.finalize(rid)
    (ev,) = system.client.events_in(receipt, "RequestFinalized")
    assert ev["operator"] == system.operator and ev["fee"] == FEE and ev["callbackSucceeded"] is False
    assert system.client.credits_of(system.operator) == FEE
    assert system.client.stake_of(system.operator).locked == 0
    assert system.client.status_of(rid) is Status.FINALIZED


def test_withdraw_sends_credits_once(system: System) -> None:
    rid = system.request()
    system.submit(rid)
    system.finalize(rid)
    payee = system.accounts[7]
    before = system.chain.balance(payee)
    receipt = system.chain.ok(system.oracle.functions.withdraw(payee), system.operator)
    assert system.client.events_in(receipt, "CreditsWithdrawn")[0]["amount"] == FEE
    assert system.chain.balance(payee) == before + FEE
    assert system.client.credits_of(system.operator) == 0
    system.chain.reverts(system.oracle.functions.withdraw(payee), system.operator, "NoCredits")


def test_first_submission_wins_second_reverts_cheaply(system: System) -> None:
    rid = system.request()
    first = system.submit(rid)
    late = system.chain.send(system.oracle.functions.submitResult(rid, OUTPUT), system.operator2)
    assert late["status"] == 0
    assert system.chain.revert_of(late).name == "AlreadySubmitted"
    # The late submission pays for one cold SLOAD, not for a whole submit.
    assert late["gasUsed"] < first["gasUsed"] // 2
    assert system.client.stake_of(system.operator2).locked == 0


def test_refund_after_deadline_exactly_once(system: System) -> None:
    rid = system.request()
    deadline = system.client.get_request(rid).requested_at + TIMEOUT
    system.chain.reverts(system.oracle.functions.refund(rid), system.user, "RequestNotExpired", at=deadline - 1)
    receipt = system.chain.ok(system.oracle.functions.refund(rid), system.accounts[9], at=deadline)
    (ev,) = system.client.events_in(receipt, "RequestRefunded")
    assert ev["requester"] == system.user and ev["fee"] == FEE
    assert system.client.credits_of(system.user) == FEE
    assert system.client.status_of(rid) is Status.REFUNDED
    system.chain.reverts(system.oracle.functions.refund(rid), system.user, "AlreadyRefunded")
    system.chain.reverts(system.oracle.functions.submitResult(rid, OUTPUT), system.operator, "RequestExpired")
    assert system.client.credits_of(system.user) == FEE


def test_expired_status_and_submit_after_deadline_reverts(system: System) -> None:
    rid = system.request()
    deadline = system.client.get_request(rid).requested_at + TIMEOUT
    system.chain.mine(deadline)
    assert system.client.status_of(rid) is Status.EXPIRED
    system.chain.reverts(system.oracle.functions.submitResult(rid, OUTPUT), system.operator, "RequestExpired")


def test_submit_at_deadline_minus_one_succeeds(system: System) -> None:
    rid = system.request()
    deadline = system.client.get_request(rid).requested_at + TIMEOUT
    system.submit(rid, at=deadline - 1)
    assert system.client.status_of(rid) is Status.SUBMITTED
    system.chain.reverts(system.oracle.functions.refund(rid), system.user, "AlreadySubmitted", at=deadline + 5)


def test_batch_submit_skips_lost_races(system: System) -> None:
    ids = [system.request() for _ in range(3)]
    system.submit(ids[1], operator=system.operator2)
    receipt = system.chain.ok(system.oracle.functions.submitResults(ids, [OUTPUT] * 3), system.operator)
    events = system.client.events_in(receipt, "ResultSubmitted")
    assert [e["requestId"] for e in events] == [ids[0], ids[2]]
    assert system.client.stake_of(system.operator).locked == 2 * BOND


def test_batch_finalize_skips_open_and_done(system: System) -> None:
    ids = [system.request() for _ in range(3)]
    for rid in ids[:2]:
        system.submit(rid)
    system.finalize(ids[0])
    t = system.submitted_at(ids[1]) + WINDOW
    system.chain.set_next_time(max(t, system.chain.now() + 1))
    receipt = system.chain.ok(system.oracle.functions.finalizeBatch(ids, [OUTPUT] * 3), system.user)
    assert [e["requestId"] for e in system.client.events_in(receipt, "RequestFinalized")] == [ids[1]]
    assert system.client.credits_of(system.operator) == 2 * FEE


def test_batch_length_mismatch(system: System) -> None:
    system.chain.reverts(system.oracle.functions.submitResults([1, 2], [OUTPUT]), system.operator, "LengthMismatch")
    system.chain.reverts(system.oracle.functions.finalizeBatch([1], []), system.operator, "LengthMismatch")


def test_full_settlement_leaves_contract_empty(system: System) -> None:
    """Solvency: after every request settles and everything is withdrawn, the contract holds nothing."""
    paid = system.request()
    system.submit(paid)
    system.finalize(paid)
    expired = system.request()
    system.chain.ok(system.oracle.functions.refund(expired), system.user,
                    at=system.client.get_request(expired).requested_at + TIMEOUT + 1)
    assert system.solvency_gap() == 0
    for acct in (system.operator, system.user):
        system.chain.ok(system.oracle.functions.withdraw(acct), acct)
    for op in (system.operator, system.operator2):
        system.chain.ok(system.oracle.functions.requestUnstake(system.client.stake_of(op).staked), op)
    system.chain.mine(system.chain.now() + 3 * 24 * 3600)
    for op in (system.operator, system.operator2):
        system.chain.ok(system.oracle.functions.withdrawStake(op), op)
    assert system.chain.balance(system.deployment.oracle) == 0
