"""Tree ensembles on chain: the verifier runs converted ensembles of every library bit-exactly, and the
shipped ``credit_gbt`` model is a working EXACT model (wrong answers slashed, right ones unchallengeable)."""

from __future__ import annotations

import numpy as np
import pytest
from trees_helpers import LIBRARIES, converted, extremes
from web3 import Web3
from web3.contract import Contract

from oracle.chain.types import Mode, ModelSpec
from oracle.profile.codec import encode_tensor
from oracle.profile.datasets import load_split
from oracle.profile.models import model_entry, program_bytes
from oracle.profile.program import decode
from oracle.profile.reference import run_bytes
from tests.contracts.conftest import BOND, FEE, System, deployed, system  # noqa: F401 (fixtures)
from tests.verifier.helpers import assert_conforms, deploy

#: A challenge must fit one transaction: EIP-7825's per-transaction gas cap.
TX_GAS_CAP = 16_777_216
ENTRY = model_entry("credit_gbt")


@pytest.fixture(scope="module")
def verifier(session_w3: Web3) -> Contract:
    return deploy(session_w3, "IntegerVerifier")


@pytest.mark.parametrize("library", LIBRARIES)
def test_verifier_matches_reference_on_held_out_and_extreme_inputs(verifier: Contract, library: str) -> None:
    conv, _ = converted(library, "credit")
    quant = conv.quantizer
    rows = list(quant.quantize(load_split("credit").x_test[:3])) + extremes(quant.n_features, quant.width)[:4]
    outputs = {assert_conforms(verifier, conv.program, np.asarray(r).reshape(quant.shape)) for r in rows}
    assert outputs <= {b"\x00", b"\x01"}


def test_verifier_matches_reference_on_a_multiclass_ensemble(verifier: Contract) -> None:
    conv, _ = converted("lightgbm", "wine")
    quant = conv.quantizer
    for r in list(quant.quantize(load_split("wine").x_test[:3])) + extremes(quant.n_features, quant.width)[:2]:
        assert_conforms(verifier, conv.program, np.asarray(r).reshape(quant.shape))


def _register(sys_: System) -> int:
    spec = ModelSpec(onnx_hash=bytes.fromhex(ENTRY["onnx_keccak256"][2:]), fee=FEE, bond=BOND,
                     input_length=2 * ENTRY["input_shape"][1], output_length=1, mode=Mode.EXACT,
                     uri="file:///credit_gbt.onnx",
                     program_commitment=bytes.fromhex(ENTRY["program_commitment"][2:]))
    return sys_.client.register_model(sys_.owner, spec, program_bytes("credit_gbt"))


def _request(sys_: System, model_id: int, data: bytes) -> int:
    return sys_.request(data=data, model_id=model_id)


def test_credit_gbt_wrong_answer_is_slashed_right_answer_stands(system: System) -> None:  # noqa: F811
    model_id = _register(system)
    program = decode(program_bytes("credit_gbt"))
    extreme = encode_tensor(np.array([[32767, -32768, 32767, -32768, 32767, -32768]]), 2)
    inputs = [bytes.fromhex(s["input_hex"][2:]) for s in ENTRY["samples"][:2]] + [extreme]
    for data in inputs:
        correct = run_bytes(program, data)
        wrong = bytes([1 - correct[0]])
        rid = _request(system, model_id, data)
        system.submit(rid, wrong)
        before = system.client.stake_of(system.operator).staked
        receipt = system.chain.ok(system.oracle.functions.challenge(rid, data), system.challenger,
                                  gas=TX_GAS_CAP)
        (ev,) = system.client.events_in(receipt, "FraudProven")
        assert ev["correctOutput"] == correct
        assert system.client.stake_of(system.operator).staked == before - BOND
        assert system.client.status_of(rid).name == "FRAUD_PROVEN"
        assert receipt["gasUsed"] < TX_GAS_CAP // 2

        rid = _request(system, model_id, data)
        system.submit(rid, correct)
        system.chain.reverts(system.oracle.functions.challenge(rid, data), system.challenger, "ResultIsCorrect",
                             gas=TX_GAS_CAP)
        assert system.client.status_of(rid).name == "SUBMITTED"
