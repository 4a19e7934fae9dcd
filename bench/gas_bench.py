"""Gas of the request lifecycle, from real receipts on anvil (64-byte input, 32-byte output).

- ``gas.request``: a consumer contract requests (the way dApps use the oracle; includes the consumer's
  own forwarding call); ``gas.request_eoa``: an account requests directly (no callback).
- ``gas.submit``: an operator attests the 32-byte output.
- ``gas.finalize``: settlement with a consumer whose callback does nothing (the oracle's own overhead).
- ``gas.lifecycle``: request + submit + finalize with that consumer (its callback paid for at twice the base
  fee, so the request stores its committed gas price and the finalizer is credited the deposit).
- ``gas.lifecycle_storing_consumer``: the same with a consumer that stores the output in one slot.
- ``gas.submit_batch_per_result`` / ``gas.finalize_batch_per_result``: per item in batches of 20.
- ``gas.request_erc20`` / ``gas.lifecycle_erc20``: an account requests a model whose fee is in an ERC-20 (pulled
  with ``transferFrom``, balance checked before and after; allowance already given), then submit and finalize
  (the operator credited in the token); steady state, after a first lifecycle. Compare with ``gas.request_eoa``.
"""

from __future__ import annotations

import os
from typing import Any

from web3 import Web3
from web3.logs import DISCARD

from oracle.chain import artifacts
from oracle.chain.client import OracleClient
from oracle.chain.deploy import DeployParams, deploy_system
from oracle.chain.tx import deploy
from oracle.chain.types import Mode, ModelSpec

FEE = 10**15
WINDOW = 60


def _rand(n: int, seed: int) -> bytes:
    import random

    return random.Random(seed).randbytes(n)


def run(w3: Web3) -> dict[str, float]:
    acct = w3.eth.accounts
    owner, operator, user = acct[0], acct[1], acct[3]
    dep = deploy_system(w3, owner, DeployParams(challenge_window=WINDOW, request_timeout=600,
                                                unbonding_period=3600))
    client = OracleClient(w3, dep.oracle)
    spec = ModelSpec(onnx_hash=_rand(32, 1), fee=FEE, bond=4 * FEE, input_length=64, output_length=32,
                     mode=Mode.ATTESTED, uri="file:///bench.onnx")
    model_id = client.register_model(owner, spec)
    client.stake(operator, 10**20)
    oracle = client.contract

    def consumer(name: str) -> Any:
        art = artifacts.load(name)
        return w3.eth.contract(address=deploy(w3, art.abi, art.bytecode, owner, dep.oracle), abi=art.abi)

    def mined(tx: Any) -> Any:
        r = w3.eth.wait_for_transaction_receipt(tx)
        assert r["status"] == 1
        return r

    def warp(seconds: int) -> None:
        w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    def lifecycle(name: str, seed: int) -> tuple[int, int, int]:
        c = consumer(name)
        data, out = _rand(64, seed), _rand(32, seed + 1)
        # Warm-up request so the consumer's own first-write costs don't count against the oracle.
        # The request pays for its callback at twice the base fee (the SDK's default commitment).
        value = client.quote(model_id, 100_000)
        r = mined(c.functions.request(model_id, data, 100_000).transact({"from": user, "value": value}))
        r = mined(c.functions.request(model_id, data, 100_000).transact({"from": user, "value": value}))
        rid = oracle.events.InferenceRequested().process_receipt(r, errors=DISCARD)[0]["args"]["requestId"]
        s = mined(oracle.functions.submitResult(rid, out).transact({"from": operator}))
        warp(WINDOW)
        f = mined(oracle.functions.finalize(rid, out).transact({"from": operator}))
        return r["gasUsed"], s["gasUsed"], f["gasUsed"]

    # First finalize credits a fresh slot for the operator; measure the steady state.
    lifecycle("NoopConsumer", 10)
    req, sub, fin = lifecycle("NoopConsumer", 20)
    sreq, ssub, sfin = lifecycle("StoringConsumer", 30)
    eoa = mined(oracle.functions.requestInference(model_id, _rand(64, 40), 0).transact({"from": user, "value": FEE}))

    # A token-fee model: the same shape, its fee in a plain ERC-20.
    tok_art = artifacts.load("TestToken")
    tok = w3.eth.contract(address=deploy(w3, tok_art.abi, tok_art.bytecode, owner), abi=tok_art.abi)
    token_model = client.register_model(owner, ModelSpec(onnx_hash=_rand(32, 2), fee=FEE, bond=4 * FEE,
                                                          input_length=64, output_length=32, mode=Mode.ATTESTED,
                                                          uri="file:///bench.onnx", fee_token=tok.address))
    mined(tok.functions.mint(user, 100 * FEE).transact({"from": owner}))
    mined(tok.functions.approve(dep.oracle, 100 * FEE).transact({"from": user}))

    def token_lifecycle(seed: int) -> tuple[int, int, int]:
        data, out = _rand(64, seed), _rand(32, seed + 1)
        r = mined(oracle.functions.requestInference(token_model, data, 0).transact({"from": user}))
        rid = oracle.events.InferenceRequested().process_receipt(r, errors=DISCARD)[0]["args"]["requestId"]
        s = mined(oracle.functions.submitResult(rid, out).transact({"from": operator}))
        warp(WINDOW)
        f = mined(oracle.functions.finalize(rid, out).transact({"from": operator}))
        return r["gasUsed"], s["gasUsed"], f["gasUsed"]

    token_lifecycle(50)  # first token credit of the operator and first token balance of the oracle
    treq, tsub, tfin = token_lifecycle(60)

    # Batches of 20.
    n = 20
    ids = []
    for i in range(n):
        r = mined(oracle.functions.requestInference(model_id, _rand(64, 100 + i), 0).transact(
            {"from": user, "value": FEE}))
        ids.append(oracle.events.InferenceRequested().process_receipt(r, errors=DISCARD)[0]["args"]["requestId"])
    outs = [_rand(32, 200 + i) for i in range(n)]
    sb = mined(oracle.functions.submitResults(ids, outs).transact({"from": operator}))
    warp(WINDOW)
    fb = mined(oracle.functions.finalizeBatch(ids, outs).transact({"from": operator}))
    return {
        "gas.request": req,
        "gas.request_eoa": eoa["gasUsed"],
        "gas.submit": sub,
        "gas.finalize": fin,
        "gas.lifecycle": req + sub + fin,
        "gas.lifecycle_storing_consumer": sreq + ssub + sfin,
        "gas.request_erc20": treq,
        "gas.lifecycle_erc20": treq + tsub + tfin,
        "gas.submit_batch_per_result": round(sb["gasUsed"] / n),
        "gas.finalize_batch_per_result": round(fb["gasUsed"] / n),
    }


if __name__ == "__main__":
    from oracle.chain.devnet import Devnet

    with Devnet() as d:
        res = run(Web3(Web3.HTTPProvider(d.url)))
    for k, v in res.items():
        print(f"{k:40s} {v:>12,.0f}")
    _ = os
