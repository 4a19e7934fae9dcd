"""The CNN on chain: the verifier returns the reference's bytes for the shipped digits_cnn and for
converted CNNs in both rescale layouts, and on anvil a wrong digits_cnn answer is proven and slashed in
one transaction well under the 2^24 transaction gas cap, while a right one cannot be challenged."""

from __future__ import annotations

import numpy as np
import pytest
from test_cnn import _tiny_cnn
from web3.contract import Contract

from oracle.chain.types import Mode, ModelSpec
from oracle.profile.cnn import convert_cnn, quantize_cnn, to_onnx
from oracle.profile.cnn_lowering import extract_cnn
from oracle.profile.codec import encode_tensor, width_range
from oracle.profile.compiler import compile_onnx
from oracle.profile.datasets import load_split
from oracle.profile.models import model_entry, program_bytes
from oracle.profile.program import decode
from oracle.profile.quantizer import Quantizer
from tests.contracts.conftest import BOND, FEE, System, deployed, system  # noqa: F401 (fixtures)
from tests.verifier.conftest import verifier  # noqa: F401 (fixture)
from tests.verifier.helpers import assert_conforms, call

TX_GAS_CAP = 16_777_216  # EIP-7825 per-transaction gas limit
ENTRY = model_entry("digits_cnn")
LO, HI = width_range(1)
ALTERNATING = np.where(np.arange(64) % 2, LO, HI).reshape(1, 64)


def _extremes_and_random(n_random: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    xs = [np.full((1, 64), LO), np.full((1, 64), HI), ALTERNATING, np.zeros((1, 64), dtype=np.int64)]
    return xs + [rng.integers(LO, HI, size=(1, 64), endpoint=True) for _ in range(n_random)]


def test_verifier_equals_reference_for_shipped_digits_cnn(verifier: Contract) -> None:  # noqa: F811
    program = decode(program_bytes("digits_cnn"))
    for x in _extremes_and_random(12, seed=5):
        assert_conforms(verifier, program, x)
    q = Quantizer.from_dict(ENTRY["quantizer"]).quantize(load_split("digits").x_test[:4])
    for x in q:
        assert_conforms(verifier, program, x.reshape(1, 64))


@pytest.mark.parametrize("rescale_first", [False, True])
def test_verifier_equals_reference_for_both_layouts(verifier: Contract, rescale_first: bool) -> None:  # noqa: F811
    model = _tiny_cnn()
    quantizer = Quantizer.identity(64, 1)
    program = compile_onnx(to_onnx(quantize_cnn(extract_cnn(model), quantizer, 1, 8), quantizer, rescale_first), 1, 1)
    for x in _extremes_and_random(10, seed=6):
        assert_conforms(verifier, program, x)


def test_verifier_equals_reference_for_int32_input_conversion(verifier: Contract) -> None:  # noqa: F811
    model = _tiny_cnn()
    x = load_split("digits").x_train[:200]
    conv = convert_cnn(model, x, extract_cnn(model).predict_index(x), input_width=4)
    program = compile_onnx(conv.model, 4, 1)
    lo, hi = width_range(4)
    rng = np.random.default_rng(8)
    xs = [np.full((1, 64), lo), np.full((1, 64), hi), np.where(np.arange(64) % 2, lo, hi).reshape(1, 64)]
    for q in xs + [rng.integers(lo, hi, size=(1, 64), endpoint=True) for _ in range(8)]:
        assert_conforms(verifier, program, q)


def test_execute_gas_of_digits_cnn_is_far_below_one_transaction(verifier: Contract) -> None:  # noqa: F811
    data = program_bytes("digits_cnn")
    gas = []
    for x in _extremes_and_random(6, seed=7):
        fn = verifier.functions.execute(data, encode_tensor(x, 1))
        assert not hasattr(call(fn), "name")  # no revert
        gas.append(fn.estimate_gas({"from": verifier.w3.eth.accounts[0]}))
    # execute() carries the 67 kB program as calldata (about 1M gas of it); still a quarter of the cap.
    assert max(gas) < TX_GAS_CAP // 4, gas


def _register_cnn(system: System) -> int:  # noqa: F811
    spec = ModelSpec(onnx_hash=bytes.fromhex(ENTRY["onnx_keccak256"][2:]), fee=FEE, bond=BOND,
                     input_length=64, output_length=1, mode=Mode.EXACT, uri="file:///models/digits_cnn.onnx",
                     program_commitment=bytes.fromhex(ENTRY["program_commitment"][2:]))
    data = program_bytes("digits_cnn")
    assert len(data) == ENTRY["program_size"] > 24_575  # several chunks
    return system.client.register_model(system.owner, spec, data)


def test_wrong_cnn_answer_is_slashed_right_one_cannot_be_challenged(system: System) -> None:  # noqa: F811
    model_id = _register_cnn(system)
    sample = ENTRY["samples"][0]
    pixels = bytes.fromhex(sample["input_hex"][2:])
    correct = bytes.fromhex(sample["expected_output_hex"][2:])
    wrong = bytes([(correct[0] + 3) % 10])

    rid = system.request(data=pixels, model_id=model_id)
    system.submit(rid, wrong)
    staked = system.client.stake_of(system.operator).staked
    receipt = system.chain.ok(system.oracle.functions.challenge(rid, pixels), system.challenger, gas=TX_GAS_CAP)
    (ev,) = system.client.events_in(receipt, "FraudProven")
    assert ev["correctOutput"] == correct and ev["challenger"] == system.challenger
    (slash,) = system.client.events_in(receipt, "Slashed")
    assert slash["operator"] == system.operator and slash["amount"] == BOND
    assert system.client.stake_of(system.operator).staked == staked - BOND
    assert system.client.status_of(rid).name == "FRAUD_PROVEN"

    # An adversarial input (int8 extremes, nothing for the kernel to skip) still proves in one transaction.
    hostile = encode_tensor(ALTERNATING, 1)
    rid2 = system.request(data=hostile, model_id=model_id)
    truth = int(call(system.w3.eth.contract(address=system.deployment.verifier, abi=_verifier_abi())
                     .functions.execute(program_bytes("digits_cnn"), hostile))[0])
    system.submit(rid2, bytes([(truth + 1) % 10]))
    receipt2 = system.chain.ok(system.oracle.functions.challenge(rid2, hostile), system.challenger, gas=TX_GAS_CAP)
    assert system.client.events_in(receipt2, "FraudProven")[0]["correctOutput"] == bytes([truth])
    assert max(receipt["gasUsed"], receipt2["gasUsed"]) < TX_GAS_CAP // 4

    rid3 = system.request(data=pixels, model_id=model_id)
    system.submit(rid3, correct)
    system.chain.reverts(system.oracle.functions.challenge(rid3, pixels), system.challenger, "ResultIsCorrect",
                         gas=TX_GAS_CAP)
    assert system.client.stake_of(system.operator).locked == BOND  # only rid3's bond is still locked
    assert system.solvency_gap() == 0


def _verifier_abi() -> list:
    from oracle.chain import artifacts

    return artifacts.load("IntegerVerifier").abi

