"""ERC-20 fees: a model's fee in a token fixed at registration, pulled with SafeERC20 and a balance-delta check;
credits and withdrawals per asset; callback gas and bonds stay in ETH. Non-standard tokens are refused
(fee-on-transfer, false-returning) or contained (a token that later reverts only blocks its own withdrawals)."""

from __future__ import annotations

from typing import Any

from web3.contract import Contract

from oracle.chain import artifacts
from oracle.chain.tx import deploy
from oracle.chain.types import Mode, ModelSpec
from oracle.profile.models import model_entry, program_bytes
from tests.contracts.conftest import BOND, FEE, INPUT, OUTPUT, TIMEOUT, System
from tests.contracts.test_challenge import CORRECT, PIXELS, WRONG

TX_GAS_CAP = 16_777_216  # EIP-7825
TOKEN_FEE = 5 * 10**18  # token base units: the fee need not be comparable to the (ETH) bond


def token(system: System, name: str = "TestToken") -> Contract:
    art = artifacts.load(name)
    return system.w3.eth.contract(address=deploy(system.w3, art.abi, art.bytecode, system.owner), abi=art.abi)


def token_model(system: System, tok: Contract, exact: bool = False) -> int:
    if exact:
        digits = model_entry("digits")
        spec = ModelSpec(onnx_hash=bytes.fromhex(digits["onnx_keccak256"][2:]), fee=TOKEN_FEE, bond=BOND,
                         input_length=64, output_length=1, mode=Mode.EXACT, uri="file:///models/digits.onnx",
                         program_commitment=bytes.fromhex(digits["program_commitment"][2:]), fee_token=tok.address)
        return system.client.register_model(system.owner, spec, program_bytes("digits"))
    spec = ModelSpec(onnx_hash=b"\x22" * 32, fee=TOKEN_FEE, bond=BOND, input_length=64, output_length=32,
                     mode=Mode.ATTESTED, uri="file:///models/test.onnx", fee_token=tok.address)
    return system.client.register_model(system.owner, spec)


def fund(system: System, tok: Contract, who: str, amount: int = 10 * TOKEN_FEE) -> None:
    system.chain.ok(tok.functions.mint(who, amount), system.owner)
    system.chain.ok(tok.functions.approve(system.deployment.oracle, amount), who)


def request(system: System, model_id: int, data: bytes = INPUT, **kw: Any) -> int:
    return system.request(model_id=model_id, data=data, value=kw.pop("value", 0), **kw)


def balance(tok: Contract, who: str) -> int:
    return int(tok.functions.balanceOf(who).call())


def test_token_fee_lifecycle_credits_the_operator_in_the_token(system: System) -> None:
    tok = token(system)
    model_id = token_model(system, tok)
    fund(system, tok, system.user)
    eth_before = system.chain.balance(system.deployment.oracle)
    user_before = balance(tok, system.user)
    rid = request(system, model_id)
    assert balance(tok, system.deployment.oracle) == TOKEN_FEE and balance(tok, system.user) == user_before - TOKEN_FEE
    assert system.chain.balance(system.deployment.oracle) == eth_before  # no ETH fee
    assert system.client.get_model(model_id).fee_token == tok.address
    logs = system.oracle.events.ModelRegistered().get_logs(from_block=0, argument_filters={"modelId": model_id})
    assert logs[-1]["args"]["feeToken"] == tok.address  # indexers learn the fee's asset from the event
    receipts = [system.submit(rid), system.finalize(rid)]
    assert system.client.token_credits_of(system.operator, tok.address) == TOKEN_FEE
    assert system.client.credits_of(system.operator) == 0  # nothing in ETH: the bond is released, not paid
    assert system.client.stake_of(system.operator).locked == 0
    op_before = balance(tok, system.operator)
    receipts.append(system.chain.ok(system.oracle.functions.withdrawToken(tok.address, system.operator),
                                    system.operator))
    (ev,) = system.client.events_in(receipts[-1], "TokenCreditsWithdrawn")
    assert ev["token"] == tok.address and ev["amount"] == TOKEN_FEE
    assert balance(tok, system.operator) == op_before + TOKEN_FEE and balance(tok, system.deployment.oracle) == 0
    system.chain.reverts(system.oracle.functions.withdrawToken(tok.address, system.operator), system.operator,
                         "NoCredits")
    assert all(r["gasUsed"] <= TX_GAS_CAP for r in receipts)
    assert system.solvency_gap() == 0


def test_price_quotes_the_fee_in_its_token_and_the_callback_gas_in_eth(system: System) -> None:
    tok = token(system)
    model_id = token_model(system, tok)
    fee_token, fee, value = system.oracle.functions.priceOf(model_id, 100_000, 10**9).call()
    deposit = system.client.callback_gas_charged(100_000) * 10**9
    assert (fee_token, fee, value) == (tok.address, TOKEN_FEE, deposit)
    assert system.oracle.functions.quoteRequest(model_id, 100_000, 10**9).call() == deposit
    assert tuple(system.oracle.functions.priceOf(system.model_id, 0, 0).call()) == ("0x" + "00" * 20, FEE, FEE)
    # ETH sent as if the fee were in ETH is refused: msg.value is only the callback deposit.
    fund(system, tok, system.user)
    system.chain.reverts(system.oracle.functions.requestInference(model_id, INPUT, 0), system.user, "IncorrectFee",
                         value=TOKEN_FEE)


def test_token_request_without_allowance_reverts(system: System) -> None:
    tok = token(system)
    model_id = token_model(system, tok)
    system.chain.ok(tok.functions.mint(system.user, TOKEN_FEE), system.owner)
    system.chain.reverts(system.oracle.functions.requestInference(model_id, INPUT, 0), system.user,
                         "ERC20InsufficientAllowance")


def test_fee_on_transfer_token_is_refused_not_short_paid(system: System) -> None:
    # The attack: a fee token that delivers 99% would leave the oracle owing more than it holds.
    tok = token(system, "FeeOnTransferToken")
    model_id = token_model(system, tok)
    fund(system, tok, system.user)
    err = system.chain.reverts(system.oracle.functions.requestInference(model_id, INPUT, 0), system.user,
                               "FeeTokenShortfall")
    assert err.args_decoded[1:] == (TOKEN_FEE, TOKEN_FEE - TOKEN_FEE // 100)
    assert balance(tok, system.deployment.oracle) == 0


def test_false_returning_token_is_refused(system: System) -> None:
    tok = token(system, "FalseReturningToken")
    model_id = token_model(system, tok)
    fund(system, tok, system.user)
    system.chain.reverts(system.oracle.functions.requestInference(model_id, INPUT, 0), system.user,
                         "SafeERC20FailedOperation")


def test_token_without_return_value_is_handled(system: System) -> None:
    tok = token(system, "NoReturnToken")
    model_id = token_model(system, tok)
    fund(system, tok, system.user)
    rid = request(system, model_id)
    system.submit(rid)
    system.finalize(rid)
    system.chain.ok(system.oracle.functions.withdrawToken(tok.address, system.operator), system.operator)
    assert balance(tok, system.operator) == TOKEN_FEE


def test_frozen_token_blocks_only_its_own_withdrawal(system: System) -> None:
    tok = token(system, "FreezableToken")
    model_id = token_model(system, tok)
    fund(system, tok, system.user)
    rid = request(system, model_id)
    eth_rid = system.request()
    for r in (rid, eth_rid):
        system.submit(r)
        system.finalize(r)
    system.chain.ok(tok.functions.setFrozen(True), system.owner)
    system.chain.reverts(system.oracle.functions.withdrawToken(tok.address, system.operator), system.operator,
                         "Frozen")
    assert system.client.token_credits_of(system.operator, tok.address) == TOKEN_FEE  # kept for a retry
    system.chain.ok(system.oracle.functions.withdraw(system.operator), system.operator)  # ETH unaffected
    system.chain.ok(tok.functions.setFrozen(False), system.owner)
    system.chain.ok(system.oracle.functions.withdrawToken(tok.address, system.operator), system.operator)
    assert balance(tok, system.operator) == TOKEN_FEE


def test_refund_returns_the_token_fee_and_the_eth_deposit(system: System) -> None:
    tok = token(system)
    model_id = token_model(system, tok)
    fund(system, tok, system.user)
    price = 10**9
    deposit = system.client.callback_gas_charged(50_000) * price
    receipt = system.chain.ok(system.oracle.functions.requestInference(model_id, INPUT, 50_000), system.user,
                              value=deposit)
    rid = system.client.events_in(receipt, "InferenceRequested")[0]["requestId"]
    deadline = system.client.get_request(rid).requested_at + TIMEOUT
    system.chain.ok(system.oracle.functions.refund(rid), system.user, at=deadline)
    assert system.client.token_credits_of(system.user, tok.address) == TOKEN_FEE
    assert system.client.credits_of(system.user) == deposit
    assert system.solvency_gap() == 0


def test_fraud_on_a_token_model_rewards_the_fee_in_the_token_and_half_the_bond_in_eth(system: System) -> None:
    tok = token(system)
    model_id = token_model(system, tok, exact=True)
    fund(system, tok, system.user)
    rid = request(system, model_id, PIXELS)
    system.submit(rid, WRONG)
    receipt = system.chain.ok(system.oracle.functions.challenge(rid, PIXELS), system.challenger, gas=5_000_000)
    (ev,) = system.client.events_in(receipt, "FraudProven")
    assert ev["correctOutput"] == CORRECT and ev["reward"] == BOND // 2  # the ETH part
    assert system.client.credits_of(system.challenger) == BOND // 2
    assert system.client.token_credits_of(system.challenger, tok.address) == TOKEN_FEE
    assert system.client.token_credits_of(system.operator, tok.address) == 0
    assert system.solvency_gap() == 0


def test_fee_token_must_be_a_contract(system: System) -> None:
    spec = ModelSpec(onnx_hash=b"\x22" * 32, fee=FEE, bond=BOND, input_length=64, output_length=32,
                     mode=Mode.ATTESTED, uri="file:///models/test.onnx", fee_token=system.user)
    system.chain.reverts(system.oracle.functions.registerModel(spec.as_tuple(), []), system.owner, "InvalidFeeToken")


def test_eth_model_still_reports_eth(system: System) -> None:
    model = system.client.get_model(system.model_id)
    assert not model.fee_in_token and system.client.quote(system.model_id) == FEE
    rid = system.request()
    system.submit(rid, OUTPUT)
    system.finalize(rid)
    assert system.client.credits_of(system.operator) == FEE


def test_token_reentering_request_from_transfer_from_is_refused(system: System) -> None:
    # The attack: the fee token (chosen by the model's owner) re-enters requestInference while the oracle pulls
    # the fee, so one pull observes two deposits; the balance delta check refuses the whole transaction.
    tok = token(system, "ReentrantToken")
    model_id = token_model(system, tok)
    fund(system, tok, system.user)
    system.chain.ok(tok.functions.mint(tok.address, 10 * TOKEN_FEE), system.owner)
    system.chain.ok(tok.functions.arm(system.deployment.oracle, model_id, INPUT), system.owner)
    err = system.chain.reverts(system.oracle.functions.requestInference(model_id, INPUT, 0), system.user,
                               "FeeTokenShortfall")
    assert err.args_decoded[1:] == (TOKEN_FEE, 2 * TOKEN_FEE)
    assert balance(tok, system.deployment.oracle) == 0 and system.solvency_gap() == 0
