"""The SDK with a model whose fee is in an ERC-20: price, approval, settlement credited in the token, refund."""

from __future__ import annotations

import pytest
from web3 import Web3
from web3.contract import Contract

from oracle.chain import artifacts
from oracle.chain.client import OracleClient
from oracle.chain.deploy import DeployParams, deploy_system
from oracle.chain.tx import deploy, send
from oracle.chain.types import Mode, ModelSpec, Status
from oracle.errors import ChainError
from oracle.profile.models import model_entry, program_bytes
from oracle.sdk import OracleSDK, Price, RequestExpired

TOKEN_FEE = 7 * 10**18
DIGITS = model_entry("digits")
PIXELS = bytes.fromhex(DIGITS["samples"][0]["input_hex"][2:])
CORRECT = bytes.fromhex(DIGITS["samples"][0]["expected_output_hex"][2:])


@pytest.fixture(scope="module")
def setup(session_w3: Web3) -> tuple[str, int, Contract]:
    a = session_w3.eth.accounts
    dep = deploy_system(session_w3, a[0], DeployParams(challenge_window=30, request_timeout=60,
                                                       unbonding_period=3600))
    client = OracleClient(session_w3, dep.oracle)
    art = artifacts.load("TestToken")
    token = session_w3.eth.contract(address=deploy(session_w3, art.abi, art.bytecode, a[0]), abi=art.abi)
    mid = client.register_model(a[0], ModelSpec(
        onnx_hash=bytes.fromhex(DIGITS["onnx_keccak256"][2:]), fee=TOKEN_FEE, bond=10**16, input_length=64,
        output_length=1, mode=Mode.EXACT, uri="file:///digits.onnx",
        program_commitment=bytes.fromhex(DIGITS["program_commitment"][2:]), fee_token=token.address),
        program_bytes("digits"))
    client.stake(a[1], 10**18)
    send(session_w3, token.functions.mint(a[3], 10 * TOKEN_FEE), a[0])
    return dep.oracle, mid, token


def warp(w3: Web3, seconds: int) -> None:
    w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def test_price_approval_and_settlement_in_the_token(setup: tuple[str, int, Contract], w3: Web3) -> None:
    oracle, mid, token = setup
    user, operator = w3.eth.accounts[3], w3.eth.accounts[1]
    sdk = OracleSDK(OracleClient(w3, oracle), user)
    assert sdk.price(mid) == Price(token.address, TOKEN_FEE, 0)
    priced = sdk.price(mid, callback_gas=50_000, callback_gas_price=10**9)
    assert priced.value == sdk.client.callback_gas_charged(50_000) * 10**9 == sdk.quote(mid, 50_000, 10**9)
    before = token.functions.balanceOf(user).call()
    handle = sdk.request(mid, PIXELS)  # approves the oracle for the fee, then requests
    assert handle.fee_token == token.address and handle.fee == TOKEN_FEE
    assert token.functions.balanceOf(user).call() == before - TOKEN_FEE
    assert token.functions.allowance(user, oracle).call() == 0  # exactly the fee was approved
    sdk.client.submit(operator, handle.request_id, CORRECT)
    warp(w3, 31)
    assert sdk.wait_final(handle.request_id, timeout=10).status is Status.FINALIZED
    op_sdk = OracleSDK(OracleClient(w3, oracle), operator)
    assert op_sdk.credits(token.address) == TOKEN_FEE and op_sdk.credits() == 0
    assert op_sdk.withdraw(token.address) == TOKEN_FEE
    assert token.functions.balanceOf(operator).call() == TOKEN_FEE and op_sdk.withdraw(token.address) == 0


def test_expired_token_request_refunds_the_token(setup: tuple[str, int, Contract], w3: Web3) -> None:
    oracle, mid, token = setup
    user = w3.eth.accounts[3]
    sdk = OracleSDK(OracleClient(w3, oracle), user)
    before = token.functions.balanceOf(user).call()
    handle = sdk.request(mid, PIXELS)
    warp(w3, 61)
    with pytest.raises(RequestExpired):
        sdk.wait_final(handle.request_id, timeout=5)
    assert sdk.refund_and_withdraw(handle.request_id) == TOKEN_FEE
    assert token.functions.balanceOf(user).call() == before


def test_request_without_enough_tokens_says_so_before_sending(setup: tuple[str, int, Contract], w3: Web3) -> None:
    oracle, mid, _ = setup
    sdk = OracleSDK(OracleClient(w3, oracle), w3.eth.accounts[5])  # holds no token
    with pytest.raises(ChainError, match="less than"):
        sdk.request(mid, PIXELS)
