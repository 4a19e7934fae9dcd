"""The SDK end to end on a real chain: final results, corrected results, expiry and refund."""

from __future__ import annotations

import threading
import time

import pytest
from web3 import Web3

from oracle.chain.client import OracleClient
from oracle.chain.deploy import DeployParams, deploy_system
from oracle.chain.types import Mode, ModelSpec, Status
from oracle.profile.models import model_entry, program_bytes
from oracle.sdk import OracleSDK, RequestExpired, ResultTimeout, SDKError

FEE = 10**15
DIGITS = model_entry("digits")
PIXELS = bytes.fromhex(DIGITS["samples"][0]["input_hex"][2:])
CORRECT = bytes.fromhex(DIGITS["samples"][0]["expected_output_hex"][2:])


@pytest.fixture(scope="module")
def setup(session_w3: Web3) -> tuple[str, int]:
    a = session_w3.eth.accounts
    dep = deploy_system(session_w3, a[0], DeployParams(challenge_window=30, request_timeout=60,
                                                       unbonding_period=3600))
    client = OracleClient(session_w3, dep.oracle)
    mid = client.register_model(a[0], ModelSpec(
        onnx_hash=bytes.fromhex(DIGITS["onnx_keccak256"][2:]), fee=FEE, bond=4 * FEE, input_length=64,
        output_length=1, mode=Mode.EXACT, uri="file:///digits.onnx",
        program_commitment=bytes.fromhex(DIGITS["program_commitment"][2:])), program_bytes("digits"))
    client.stake(a[1], 10**18)
    return dep.oracle, mid


def warp(w3: Web3, seconds: int) -> None:
    w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def test_request_and_wait_final(setup: tuple[str, int], w3: Web3) -> None:
    oracle, mid = setup
    sdk = OracleSDK(OracleClient(w3, oracle), w3.eth.accounts[3])
    handle = sdk.request(mid, PIXELS)
    assert sdk.status(handle.request_id) is Status.PENDING and handle.fee == FEE
    sdk.client.submit(w3.eth.accounts[1], handle.request_id, CORRECT)
    with pytest.raises(ResultTimeout):
        sdk.wait_final(handle.request_id, timeout=0.2, poll=0.05)
    warp(w3, 31)
    result = sdk.wait_final(handle.request_id, timeout=10)
    assert (result.output, result.status, result.mode, result.fraud_proven) == (
        CORRECT, Status.FINALIZED, Mode.EXACT, False)
    assert result.operator == w3.eth.accounts[1]


def test_wait_final_returns_the_corrected_output_after_a_fraud(setup: tuple[str, int], w3: Web3) -> None:
    oracle, mid = setup
    sdk = OracleSDK(OracleClient(w3, oracle), w3.eth.accounts[3])
    handle = sdk.request(mid, PIXELS)
    sdk.client.submit(w3.eth.accounts[1], handle.request_id, bytes([(CORRECT[0] + 1) % 10]))
    sdk.client.challenge(w3.eth.accounts[4], handle.request_id, PIXELS)
    result = sdk.wait_final(handle.request_id, timeout=5)
    assert result.fraud_proven and result.output == CORRECT and result.status is Status.FRAUD_PROVEN


def test_expired_request_raises_and_refunds(setup: tuple[str, int], w3: Web3) -> None:
    oracle, mid = setup
    user = w3.eth.accounts[5]
    sdk = OracleSDK(OracleClient(w3, oracle), user)
    handle = sdk.request(mid, PIXELS)
    warp(w3, 61)
    with pytest.raises(RequestExpired, match="refund"):
        sdk.wait_final(handle.request_id, timeout=5)
    assert sdk.refund_and_withdraw(handle.request_id) == FEE
    assert sdk.status(handle.request_id) is Status.REFUNDED


def test_wrong_input_length_is_refused_before_sending(setup: tuple[str, int], w3: Web3) -> None:
    oracle, mid = setup
    sdk = OracleSDK(OracleClient(w3, oracle), w3.eth.accounts[3])
    with pytest.raises(SDKError, match="64 input bytes"):
        sdk.request(mid, PIXELS[:10])


def test_wait_final_while_an_operator_answers_concurrently(setup: tuple[str, int], w3: Web3) -> None:
    oracle, mid = setup
    sdk = OracleSDK(OracleClient(w3, oracle), w3.eth.accounts[3])
    handle = sdk.request(mid, PIXELS)

    def operator() -> None:
        time.sleep(0.3)
        sdk.client.submit(w3.eth.accounts[1], handle.request_id, CORRECT)
        warp(w3, 31)

    t = threading.Thread(target=operator)
    t.start()
    result = sdk.wait_final(handle.request_id, timeout=20, poll=0.1)
    t.join()
    assert result.output == CORRECT
