"""The shipped digits CNN (``digits_cnn``, EXACT): accuracy, size and the gas of proving it wrong.

Figures (``models.cnn.*``):

- ``float_accuracy`` / ``int_accuracy``: held-out accuracy of the float graph and of the integer program
  (from the manifest, which ``scripts/build_models.py`` computes and ``tests/profile`` re-checks);
  ``int_accuracy_drop_pp`` is float minus int in percentage points (negative: the integer model is better).
- ``macs``: multiply-accumulates of the program's MatMuls, zeros of the Toeplitz matrices included (the
  verifier's kernel reads every weight of a row of B for each non-zero activation).
- ``program_bytes``: size of the committed program (int8 weights; stored on-chain in 24,575-byte chunks).
- ``registration_gas``: gas of writing those chunks plus ``registerModel``.
- ``execute_gas_max``: the largest ``eth_estimateGas`` of ``executeStored`` over hostile inputs (int8
  extremes, an alternating pattern) and random inputs without a zero pixel (nothing the kernel can skip),
  plus the held-out samples; ``execute_inputs`` says how many inputs were tried.
- ``challenge_gas_worst``: ``gasUsed`` of a real successful ``challenge`` (re-execution, slash, reward,
  burn) on the input with the largest execute gas; ``challenge_gas_typical``: the same on a held-out digit.
  Both must stay under the per-transaction cap of 2^24 = 16,777,216 gas.
"""

from __future__ import annotations

import numpy as np
from web3 import Web3
from web3.logs import DISCARD

from oracle.chain import artifacts
from oracle.chain.client import OracleClient
from oracle.chain.deploy import DeployParams, deploy_system
from oracle.chain.types import Mode, ModelSpec
from oracle.profile.codec import encode_tensor
from oracle.profile.models import model_entry, program_bytes
from oracle.profile.program import decode
from oracle.profile.reference import run_bytes

FEE = 10**15
N_RANDOM = 32


def _inputs(entry: dict) -> list[bytes]:
    rng = np.random.default_rng(12)
    hostile = [np.full(64, -128), np.full(64, 127), np.where(np.arange(64) % 2, -128, 127)]
    nonzero = [np.where(v >= 0, v + 1, v) for v in rng.integers(-128, 127, size=(N_RANDOM, 64))]
    out = [encode_tensor(np.asarray(x, dtype=np.int64).reshape(1, 64), 1) for x in hostile + nonzero]
    return out + [bytes.fromhex(s["input_hex"][2:]) for s in entry["samples"]]


def run(w3: Web3) -> dict[str, float]:
    owner, operator, user, challenger = w3.eth.accounts[0], w3.eth.accounts[1], w3.eth.accounts[3], w3.eth.accounts[4]
    dep = deploy_system(w3, owner, DeployParams(challenge_window=600, request_timeout=600, unbonding_period=3600))
    client = OracleClient(w3, dep.oracle)
    entry = model_entry("digits_cnn")
    data = program_bytes("digits_cnn")
    spec = ModelSpec(onnx_hash=bytes.fromhex(entry["onnx_keccak256"][2:]), fee=FEE, bond=4 * FEE,
                     input_length=64, output_length=1, mode=Mode.EXACT, uri="file:///digits_cnn.onnx",
                     program_commitment=bytes.fromhex(entry["program_commitment"][2:]))
    start = w3.eth.block_number
    model_id = client.register_model(owner, spec, data)
    registration = sum(w3.eth.get_block(b, full_transactions=False)["gasUsed"]
                       for b in range(start + 1, w3.eth.block_number + 1))
    client.stake(operator, 10**18)

    verifier = w3.eth.contract(address=dep.verifier, abi=artifacts.load("IntegerVerifier").abi)
    chunks = client.program_chunks(model_id)
    program = decode(data)
    inputs = _inputs(entry)
    execute = []
    for inp in inputs:
        fn = verifier.functions.executeStored(chunks, inp)
        if bytes(fn.call({"gas": 30_000_000})) != run_bytes(program, inp):
            raise AssertionError("verifier and reference disagree on digits_cnn")
        execute.append(int(fn.estimate_gas({"from": owner})))
    worst = inputs[int(np.argmax(execute))]

    def challenge_gas(inp: bytes) -> int:
        correct = run_bytes(program, inp)
        rid, _ = client.request(user, model_id, inp)
        client.submit(operator, rid, bytes([(correct[0] + 1) % 10]))
        receipt = client.challenge(challenger, rid, inp)
        (ev,) = client.contract.events.FraudProven().process_receipt(receipt, errors=DISCARD)
        if bytes(ev["args"]["correctOutput"]) != correct:
            raise AssertionError("the challenge delivered a different output than the reference")
        return int(receipt["gasUsed"])

    return {
        "models.cnn.float_accuracy": float(entry["float_accuracy"]),
        "models.cnn.int_accuracy": float(entry["int_accuracy"]),
        "models.cnn.int_accuracy_drop_pp": round(100 * (entry["float_accuracy"] - entry["int_accuracy"]), 3),
        "models.cnn.macs": float(entry["macs"]),
        "models.cnn.program_bytes": float(len(data)),
        "models.cnn.registration_gas": float(registration),
        "models.cnn.execute_gas_max": float(max(execute)),
        "models.cnn.execute_inputs": float(len(inputs)),
        "models.cnn.challenge_gas_worst": float(challenge_gas(worst)),
        "models.cnn.challenge_gas_typical": float(challenge_gas(inputs[-len(entry["samples"])])),
    }


if __name__ == "__main__":
    from oracle.chain.devnet import Devnet

    with Devnet() as d:
        for key, value in run(Web3(Web3.HTTPProvider(d.url, request_kwargs={"timeout": 300}))).items():
            print(f"{key:36s} {value:,.4f}")
