"""Gas of a whole successful challenge (re-execution + slash + reward + burn + callback) on the shipped
digits model: ``fraudproof.challenge_gas_digits``."""

from __future__ import annotations

from web3 import Web3
from web3.logs import DISCARD

from oracle.chain.client import OracleClient
from oracle.chain.deploy import DeployParams, deploy_system
from oracle.chain.types import Mode, ModelSpec
from oracle.profile.models import model_entry, program_bytes

FEE = 10**15


def run(w3: Web3) -> dict[str, float]:
    owner, operator, user, challenger = w3.eth.accounts[0], w3.eth.accounts[1], w3.eth.accounts[3], w3.eth.accounts[4]
    dep = deploy_system(w3, owner, DeployParams(challenge_window=600, request_timeout=600, unbonding_period=3600))
    client = OracleClient(w3, dep.oracle)
    entry = model_entry("digits")
    spec = ModelSpec(onnx_hash=bytes.fromhex(entry["onnx_keccak256"][2:]), fee=FEE, bond=4 * FEE,
                     input_length=64, output_length=1, mode=Mode.EXACT, uri="file:///digits.onnx",
                     program_commitment=bytes.fromhex(entry["program_commitment"][2:]))
    model_id = client.register_model(owner, spec, program_bytes("digits"))
    client.stake(operator, 10**18)
    gases = []
    for sample in entry["samples"][:5]:
        pixels = bytes.fromhex(sample["input_hex"][2:])
        correct = bytes.fromhex(sample["expected_output_hex"][2:])
        rid, _ = client.request(user, model_id, pixels)
        client.submit(operator, rid, bytes([(correct[0] + 3) % 10]))
        receipt = client.challenge(challenger, rid, pixels)
        assert client.contract.events.FraudProven().process_receipt(receipt, errors=DISCARD)
        gases.append(receipt["gasUsed"])
    return {"fraudproof.challenge_gas_digits": round(sum(gases) / len(gases))}


if __name__ == "__main__":
    from oracle.chain.devnet import Devnet

    with Devnet() as d:
        print(run(Web3(Web3.HTTPProvider(d.url))))
