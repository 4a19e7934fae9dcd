"""Gas of a consumer contract (``InferenceConsumer``) using a model whose fee is in an ERC-20, from real receipts
on anvil (64-byte input, 32-byte output, a plain ERC-20, 100,000 callback gas at 1 gwei).

- ``gas.request_consumer_erc20``: a consumer requests a token-fee model, paying the fee from its own token
  balance (its ``_requestInferenceInToken`` reads ``priceOf``, approves the oracle for exactly the fee, the oracle pulls
  it; steady state, after a first request). Compare with ``gas.request`` (the same consumer, an ETH fee) and
  ``gas.request_erc20`` (an account, its allowance already given).
- ``gas.consumer_reclaim_erc20``: a consumer's ``_reclaimFee`` of such a request left unanswered: the refund,
  both withdrawals (token and ETH credits) and the two payments back (the fee in the token, the deposit in ETH).
"""

from __future__ import annotations

from typing import Any

from web3 import Web3
from web3.logs import DISCARD

from oracle.chain import artifacts
from oracle.chain.client import OracleClient
from oracle.chain.deploy import DeployParams, deploy_system
from oracle.chain.tx import deploy
from oracle.chain.types import Mode, ModelSpec

FEE = 10**15
TIMEOUT = 600
GAS = 100_000
PRICE = 10**9


def run(w3: Web3) -> dict[str, float]:
    owner, operator, user = w3.eth.accounts[0], w3.eth.accounts[1], w3.eth.accounts[3]
    dep = deploy_system(w3, owner, DeployParams(challenge_window=60, request_timeout=TIMEOUT, unbonding_period=3600))
    client = OracleClient(w3, dep.oracle)
    client.stake(operator, 10**20)

    def contract(name: str, *args: Any) -> Any:
        art = artifacts.load(name)
        return w3.eth.contract(address=deploy(w3, art.abi, art.bytecode, owner, *args), abi=art.abi)

    def mined(tx: Any) -> Any:
        r = w3.eth.wait_for_transaction_receipt(tx)
        assert r["status"] == 1
        return r

    tok = contract("TestToken")
    model_id = client.register_model(owner, ModelSpec(
        onnx_hash=b"\x01" * 32, fee=FEE, bond=4 * FEE, input_length=64, output_length=32, mode=Mode.ATTESTED,
        uri="file:///bench.onnx", fee_token=tok.address))
    deposit = client.callback_gas_charged(GAS) * PRICE

    def request(consumer: Any, seed: int, function: str = "request") -> Any:
        data = bytes([seed]) * 64
        fn = getattr(consumer.functions, function)
        return mined(fn(model_id, data, GAS).transact({"from": user, "value": deposit}))

    noop = contract("NoopConsumer", dep.oracle)
    mined(tok.functions.mint(noop.address, 10 * FEE).transact({"from": owner}))
    request(noop, 1, "requestInToken")  # the oracle's first token balance and the consumer's first allowance slot
    steady = request(noop, 2, "requestInToken")

    sponsor = contract("SponsoringConsumer", dep.oracle)
    mined(tok.functions.mint(sponsor.address, 10 * FEE).transact({"from": owner}))
    r = request(sponsor, 3)
    rid = client.contract.events.InferenceRequested().process_receipt(r, errors=DISCARD)[0]["args"]["requestId"]
    w3.provider.make_request("evm_increaseTime", [TIMEOUT + 1])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    reclaim = mined(sponsor.functions.reclaim(rid).transact({"from": user}))
    return {
        "gas.request_consumer_erc20": steady["gasUsed"],
        "gas.consumer_reclaim_erc20": reclaim["gasUsed"],
    }


if __name__ == "__main__":
    from oracle.chain.devnet import Devnet

    with Devnet() as d:
        res = run(Web3(Web3.HTTPProvider(d.url)))
    for k, v in res.items():
        print(f"{k:40s} {v:>12,.0f}")
