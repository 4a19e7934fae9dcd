"""The example dApps behave as a person would expect."""

from __future__ import annotations

from typing import Any

from web3.logs import DISCARD

from oracle.chain import artifacts
from oracle.chain.tx import deploy
from oracle.chain.types import Mode, ModelSpec
from oracle.profile.models import model_entry, program_bytes
from tests.contracts.conftest import BOND, FEE, TIMEOUT, System

DIGITS = model_entry("digits")["samples"]
CREDIT = model_entry("credit_risk")


def MINT_PRICE(system: System) -> int:  # noqa: N802 - reads like the constant it stands for
    """What a DigitMint request costs: the fee and DigitMint's 150,000 callback gas at twice the base fee."""
    return system.quote(150_000, system.exact_id)


def contract(system: System, name: str, *args: Any) -> Any:
    art = artifacts.load(name)
    return system.w3.eth.contract(address=deploy(system.w3, art.abi, art.bytecode, system.owner, *args), abi=art.abi)


def settle(system: System, receipt: Any, output: bytes) -> int:
    rid = system.client.events_in(receipt, "InferenceRequested")[0]["requestId"]
    system.submit(rid, output)
    system.finalize(rid, output, gas=1_000_000)
    return rid


def test_digit_mint_mints_only_recognised_digits(system: System) -> None:
    mint = contract(system, "DigitMint", system.deployment.oracle, system.exact_id, 1)
    sample = DIGITS[0]
    pixels, digit = bytes.fromhex(sample["input_hex"][2:]), int(sample["expected_output"][0])
    ok = system.chain.ok(mint.functions.requestMint(digit, pixels), system.user, value=MINT_PRICE(system))
    settle(system, ok, bytes([digit]))
    assert mint.functions.totalMinted().call() == 1
    assert mint.functions.ownerOf(1).call() == system.user and mint.functions.digitOf(1).call() == digit
    other = (digit + 1) % 10
    bad = system.chain.ok(mint.functions.requestMint(other, pixels), system.user, value=MINT_PRICE(system))
    settle(system, bad, bytes([digit]))
    assert mint.functions.totalMinted().call() == 1
    rejected = mint.events.DigitRejected().process_receipt(
        system.w3.eth.get_transaction_receipt(system.w3.eth.get_block("latest")["transactions"][0]),
        errors=DISCARD)
    assert rejected and rejected[0]["args"]["claimed"] == other
    system.chain.reverts(mint.functions.requestMint(10, pixels), system.user, "NotADigit", value=FEE)


def test_credit_lender_approves_low_risk_declines_high_risk(system: System) -> None:
    model_id = system.client.register_model(system.owner, ModelSpec(
        onnx_hash=bytes.fromhex(CREDIT["onnx_keccak256"][2:]), fee=FEE, bond=BOND, input_length=12,
        output_length=1, mode=Mode.EXACT, uri="file:///credit_risk.onnx",
        program_commitment=bytes.fromhex(CREDIT["program_commitment"][2:])), program_bytes("credit_risk"))
    lender = contract(system, "CreditLender", system.deployment.oracle, model_id, 10**18)
    system.chain.ok(lender.functions.fund(), system.owner, value=15 * 10**17)
    low = next(s for s in CREDIT["samples"] if s["expected_output"] == [0])
    high = next(s for s in CREDIT["samples"] if s["expected_output"] == [1])
    applicant = system.accounts[7]
    r = system.chain.ok(lender.functions.applyForLoan(10**18, bytes.fromhex(low["input_hex"][2:])), applicant,
                        value=system.quote(120_000, model_id))
    settle(system, r, b"\x00")
    assert lender.functions.approved(applicant).call() == 10**18
    assert lender.functions.available().call() == 5 * 10**17
    r = system.chain.ok(lender.functions.applyForLoan(10**17, bytes.fromhex(high["input_hex"][2:])), applicant,
                        value=system.quote(120_000, model_id))
    settle(system, r, b"\x01")
    assert lender.functions.approved(applicant).call() == 10**18  # declined: unchanged
    # Approved but the pool cannot cover it: declined, nothing reserved.
    r = system.chain.ok(lender.functions.applyForLoan(10**18, bytes.fromhex(low["input_hex"][2:])), applicant,
                        value=system.quote(120_000, model_id))
    settle(system, r, b"\x00")
    assert lender.functions.available().call() == 5 * 10**17
    before = system.chain.balance(applicant)
    receipt = system.chain.ok(lender.functions.claimLoan(), applicant)
    gas_cost = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert system.chain.balance(applicant) == before + 10**18 - gas_cost
    system.chain.reverts(lender.functions.claimLoan(), applicant, "NothingApproved")
    system.chain.reverts(lender.functions.applyForLoan(2 * 10**18, b"\x00" * 12), applicant, "LoanTooLarge",
                         value=FEE)


def test_example_dapps_give_unanswered_fees_back_to_who_paid(system: System) -> None:
    """A request nobody answers is refunded by the oracle to the dApp; the dApp forwards it to its user, once."""
    mint = contract(system, "DigitMint", system.deployment.oracle, system.exact_id, 1)
    pixels = bytes.fromhex(DIGITS[0]["input_hex"][2:])
    price = MINT_PRICE(system)  # fee + callback deposit: both are given back
    first = system.client.events_in(system.chain.ok(mint.functions.requestMint(1, pixels), system.user, value=price),
                                    "InferenceRequested")[0]["requestId"]
    second = system.client.events_in(system.chain.ok(mint.functions.requestMint(2, pixels), system.user,
                                                     value=price), "InferenceRequested")[0]["requestId"]
    system.chain.reverts(mint.functions.reclaimFee(first), system.user, "FeeNotRefundable")  # still pending
    system.chain.mine(system.chain.now() + TIMEOUT + 1)
    system.chain.reverts(mint.functions.reclaimFee(first), system.accounts[7], "NotYourRequest")
    # Someone else already refunded the second one to the dApp: the minter still gets exactly its fee.
    system.chain.ok(system.oracle.functions.refund(second), system.accounts[7])
    for rid in (first, second):
        before = system.chain.balance(system.user)
        receipt = system.chain.ok(mint.functions.reclaimFee(rid), system.user)
        assert system.chain.balance(system.user) == before + price - receipt["gasUsed"] * receipt["effectiveGasPrice"]
        system.chain.reverts(mint.functions.reclaimFee(rid), system.user, "NotYourRequest")  # once
    assert system.chain.balance(mint.address) == 0
    assert system.oracle.functions.creditsOf(mint.address).call() == 0
    # Only the oracle may send the dApp ETH (a stray transfer would be owed to nobody).
    tx = {"from": system.user, "to": mint.address, "value": 1, "gas": 100_000}
    receipt = system.w3.eth.wait_for_transaction_receipt(system.w3.eth.send_transaction(tx))  # type: ignore[arg-type]
    assert receipt["status"] == 0


def test_credit_lender_gives_unanswered_fees_back(system: System) -> None:
    model_id = system.client.register_model(system.owner, ModelSpec(
        onnx_hash=bytes.fromhex(CREDIT["onnx_keccak256"][2:]), fee=FEE, bond=BOND, input_length=12,
        output_length=1, mode=Mode.EXACT, uri="file:///credit_risk.onnx",
        program_commitment=bytes.fromhex(CREDIT["program_commitment"][2:])), program_bytes("credit_risk"))
    lender = contract(system, "CreditLender", system.deployment.oracle, model_id, 10**18)
    system.chain.ok(lender.functions.fund(), system.owner, value=10**18)
    applicant = system.accounts[7]
    price = system.quote(120_000, model_id)
    r = system.chain.ok(lender.functions.applyForLoan(10**17, b"\x00" * 12), applicant, value=price)
    rid = system.client.events_in(r, "InferenceRequested")[0]["requestId"]
    system.chain.mine(system.chain.now() + TIMEOUT + 1)
    before = system.chain.balance(applicant)
    receipt = system.chain.ok(lender.functions.reclaimFee(rid), applicant)
    assert system.chain.balance(applicant) == before + price - receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert lender.functions.available().call() == 10**18  # the pool is untouched
    system.chain.reverts(lender.functions.reclaimFee(rid), applicant, "NotYourApplication")
