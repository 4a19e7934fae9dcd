"""InferenceConsumer with a token-fee model: the consumer pays the fee from its own token balance with an allowance
of exactly the fee (none left after), sends only the callback deposit as ETH, and gives a refunded request back in
the assets it was paid in (the fee in the token, the deposit in ETH), once. The example dApps refuse such models."""

from __future__ import annotations

from typing import Any

import pytest
from web3.contract import Contract

from oracle.errors import ContractRevert
from tests.contracts.conftest import INPUT, OUTPUT, TIMEOUT, System
from tests.contracts.test_erc20 import TOKEN_FEE, TX_GAS_CAP, balance, token, token_model
from tests.contracts.test_examples import contract

GAS = 50_000
PRICE = 10**9  # the committed callback gas price (1 gwei, a whole number of the oracle's price unit)


def deposit(system: System) -> int:
    return system.client.callback_gas_charged(GAS) * PRICE


def sponsor(system: System, tok: Contract, tokens: int) -> Contract:
    consumer = system.consumer("SponsoringConsumer")
    if tokens:
        system.chain.ok(tok.functions.mint(consumer.address, tokens), system.owner)
    return consumer


def ask(system: System, consumer: Contract, model_id: int, who: str, **kw: Any) -> tuple[int, Any]:
    receipt = system.chain.ok(consumer.functions.request(model_id, INPUT, GAS), who,
                              value=kw.pop("value", deposit(system)), **kw)
    return int(system.client.events_in(receipt, "InferenceRequested")[0]["requestId"]), receipt


def allowance(tok: Contract, owner: str, spender: str) -> int:
    return int(tok.functions.allowance(owner, spender).call())


@pytest.mark.parametrize("name", ["TestToken", "StickyAllowanceToken", "NoReturnToken"])
def test_token_request_pays_exactly_the_fee_and_leaves_no_allowance(system: System, name: str) -> None:
    # StickyAllowanceToken never spends an approval: without the reset the oracle would stay approved.
    tok = token(system, name)
    model_id = token_model(system, tok)
    consumer = sponsor(system, tok, 3 * TOKEN_FEE)
    oracle_eth = system.chain.balance(system.deployment.oracle)
    rid, receipt = ask(system, consumer, model_id, system.user)
    assert balance(tok, consumer.address) == 2 * TOKEN_FEE and balance(tok, system.deployment.oracle) == TOKEN_FEE
    assert allowance(tok, consumer.address, system.deployment.oracle) == 0
    assert system.chain.balance(system.deployment.oracle) == oracle_eth + deposit(system)  # the deposit only
    assert receipt["gasUsed"] <= TX_GAS_CAP
    system.submit(rid, OUTPUT)
    system.finalize(rid, OUTPUT, gas=1_000_000)
    assert consumer.functions.deliveries().call() == 1
    assert system.client.token_credits_of(system.operator, tok.address) == TOKEN_FEE
    assert system.solvency_gap() == 0


def test_token_request_with_the_fee_in_eth_is_refused(system: System) -> None:
    tok = token(system)
    model_id = token_model(system, tok)
    consumer = sponsor(system, tok, TOKEN_FEE)
    system.chain.reverts(consumer.functions.request(model_id, INPUT, GAS), system.user, "IncorrectFee",
                         value=TOKEN_FEE + deposit(system))
    assert balance(tok, consumer.address) == TOKEN_FEE
    assert allowance(tok, consumer.address, system.deployment.oracle) == 0  # the approval reverted with it


def test_consumer_short_of_tokens_gets_a_clear_revert(system: System) -> None:
    tok = token(system)
    model_id = token_model(system, tok)
    consumer = sponsor(system, tok, TOKEN_FEE - 1)
    err = system.chain.reverts(consumer.functions.request(model_id, INPUT, GAS), system.user,
                               "FeeTokenBalanceTooLow", value=deposit(system))
    assert err.args_decoded == (tok.address, TOKEN_FEE - 1, TOKEN_FEE)


def test_expired_token_request_is_paid_back_in_the_token_and_the_deposit_in_eth_once(system: System) -> None:
    tok = token(system)
    model_id = token_model(system, tok)
    consumer = sponsor(system, tok, 2 * TOKEN_FEE)
    asker, other = system.user, system.accounts[7]
    mine, _ = ask(system, consumer, model_id, asker)
    theirs, _ = ask(system, consumer, model_id, other)
    # An ETH-fee request of another user sits in the same consumer: its refund must stay whole.
    eth_price = system.quote(GAS)
    eth_rid, _ = ask(system, consumer, system.model_id, other, value=eth_price)
    system.chain.reverts(consumer.functions.reclaim(mine), asker, "FeeNotRefundable")  # still pending
    system.chain.mine(system.chain.now() + TIMEOUT + 1)
    system.chain.ok(system.oracle.functions.refund(theirs), system.accounts[8])  # refunded by a stranger
    system.chain.reverts(consumer.functions.reclaim(mine), other, "NotYourRequest")
    for who, rid in ((asker, mine), (other, theirs)):
        eth_before, tok_before = system.chain.balance(who), balance(tok, who)
        receipt = system.chain.ok(consumer.functions.reclaim(rid), who)
        (ev,) = system.client.events_in(receipt, "RequestRefunded") or [None]
        assert (ev is None) == (rid == theirs)
        assert balance(tok, who) == tok_before + TOKEN_FEE
        cost = receipt["gasUsed"] * receipt["effectiveGasPrice"]
        assert system.chain.balance(who) == eth_before + deposit(system) - cost
        system.chain.reverts(consumer.functions.reclaim(rid), who, "NotYourRequest")  # once
    before = system.chain.balance(other)
    receipt = system.chain.ok(consumer.functions.reclaim(eth_rid), other)
    assert system.chain.balance(other) == before + eth_price - receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert balance(tok, consumer.address) == 0 and system.chain.balance(consumer.address) == 0
    assert system.client.token_credits_of(consumer.address, tok.address) == 0
    assert system.client.credits_of(consumer.address) == 0
    assert system.solvency_gap() == 0


def test_consumer_withdraws_its_token_credits(system: System) -> None:
    tok = token(system)
    model_id = token_model(system, tok)
    consumer = sponsor(system, tok, TOKEN_FEE)
    rid, _ = ask(system, consumer, model_id, system.user, value=0)  # no callback deposit: gas price 0
    system.chain.mine(system.chain.now() + TIMEOUT + 1)
    system.chain.ok(system.oracle.functions.refund(rid), system.user)
    assert system.client.token_credits_of(consumer.address, tok.address) == TOKEN_FEE
    system.chain.ok(consumer.functions.withdrawTokenCredits(tok.address, system.owner), system.owner)
    assert balance(tok, system.owner) == TOKEN_FEE
    assert system.client.token_credits_of(consumer.address, tok.address) == 0


@pytest.mark.parametrize("name", ["DigitMint", "CreditLender"])
def test_example_dapps_refuse_a_token_fee_model(system: System, name: str) -> None:
    # They take the fee from the user as msg.value: with a token model they would pay it from their own tokens.
    tok = token(system)
    model_id = token_model(system, tok)
    with pytest.raises(ContractRevert) as err:
        contract(system, name, system.deployment.oracle, model_id, 1)
    assert err.value.name == "TokenFeeModel"
    contract(system, name, system.deployment.oracle, system.model_id, 1)  # an ETH model is fine


def test_the_eth_path_on_a_token_model_reverts_and_takes_nothing(system: System) -> None:
    """`_requestInference` reads nothing first (an ETH request costs no lookup), so on a token-fee model the
    oracle finds no allowance and the token refuses the pull: the request reverts whole, the consumer keeps its
    tokens and its ETH. `_requestInferenceInToken` is the call for such a model."""
    tok = token(system)
    model_id = token_model(system, tok)
    consumer = system.consumer("NoopConsumer")
    system.chain.ok(tok.functions.mint(consumer.address, TOKEN_FEE), system.owner)
    err = system.chain.reverts(consumer.functions.request(model_id, INPUT, GAS), system.user,
                               "ERC20InsufficientAllowance", value=deposit(system))
    assert err.args_decoded == (system.deployment.oracle, 0, TOKEN_FEE)
    assert balance(tok, consumer.address) == TOKEN_FEE and system.chain.balance(consumer.address) == 0
    rid = int(system.client.events_in(system.chain.ok(
        consumer.functions.requestInToken(model_id, INPUT, GAS), system.user, value=deposit(system)),
        "InferenceRequested")[0]["requestId"])
    assert system.client.status_of(rid).name == "PENDING" and balance(tok, consumer.address) == 0


def test_a_dapp_that_keeps_its_record_still_pays_each_refund_once(system: System) -> None:
    # Attack: the dApp forgets to delete its record, so anyone can call its reclaim again. Credits are pooled per
    # consumer: before the base contract remembered reclaimed requests, the second call paid the asker again out
    # of another user's refund (the ETH-fee request below), leaving that user's reclaim unpayable.
    tok = token(system)
    consumer = sponsor(system, tok, 0)
    asker, other = system.user, system.accounts[7]
    price = system.quote(GAS)
    mine, _ = ask(system, consumer, system.model_id, asker, value=price)
    theirs, _ = ask(system, consumer, system.model_id, other, value=price)
    system.chain.mine(system.chain.now() + TIMEOUT + 1)
    system.chain.ok(system.oracle.functions.refund(theirs), system.accounts[8])  # their refund is pooled already
    before = system.chain.balance(asker)
    system.chain.ok(consumer.functions.reclaimKeepingTheRecord(mine), system.accounts[8])
    assert system.chain.balance(asker) == before + price
    err = system.chain.reverts(consumer.functions.reclaimKeepingTheRecord(mine), system.accounts[8],
                               "FeeAlreadyReclaimed")
    assert err.args_decoded == (mine,)
    assert system.chain.balance(asker) == before + price  # paid once
    before = system.chain.balance(other)
    system.chain.ok(consumer.functions.reclaimKeepingTheRecord(theirs), system.accounts[8])
    assert system.chain.balance(other) == before + price  # the other user's refund is whole
    assert system.chain.balance(consumer.address) == 0 and system.client.credits_of(consumer.address) == 0
    assert system.solvency_gap() == 0
