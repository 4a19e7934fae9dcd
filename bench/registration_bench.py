"""Registration of every shipped EXACT model, each transaction within the 16,777,216-gas cap (EIP-7825).

Figures (``models.<name>.*``, on a deployment with the dispute game, gas from real receipts):

- ``register_gas``: ``registerModel`` (its program check included). For a game-provable model (the
  transformer) it reads the bound ``fixPlan`` kept, so it costs what a small model's does.
- ``fix_plan_gas``: ``DisputeGame.fixPlan`` for a game-provable model, sent by ``OracleClient.register_model``
  before ``registerModel``: the tile plan computed off-chain, verified on-chain (one decode, one replay, at
  most two bound evaluations per op) and kept.
- ``open_gas`` (game-provable only): ``DisputeGame.open`` of a game against a claim on that model (reads
  the fixed plan, hashes the input: no decode, no planning).
- ``registration.max_tx_gas``: the largest of all these transactions (target: the cap). Writing the
  program chunks (``writeProgramChunk``, at most 24,575 bytes each) is left out: the same for every mode.
"""

from __future__ import annotations

from web3 import Web3

from oracle.chain import artifacts
from oracle.chain.client import OracleClient
from oracle.chain.deploy import DeployParams, deploy_system
from oracle.chain.types import Mode, ModelSpec
from oracle.dispute.actors import TX_GAS_CAP
from oracle.profile.models import model_entry, program_bytes

SHIPPED = ("digits", "digits_cnn", "credit_gbt", "digits_transformer")
FEE = 10**15
GAME_BOND = 10**16


def _gas(w3: Web3, tx_hash: bytes) -> int:
    return int(w3.eth.get_transaction_receipt(tx_hash)["gasUsed"])  # type: ignore[arg-type]


def run(w3: Web3) -> dict[str, float]:
    owner, operator, user, challenger = w3.eth.accounts[:4]
    params = DeployParams(challenge_window=3600, request_timeout=3600, unbonding_period=7 * 86_400,
                          dispute_game=True, game_bond=GAME_BOND, game_clock=3600)
    dep = deploy_system(w3, owner, params)
    client = OracleClient(w3, dep.oracle)
    client.stake(operator, 10**18)
    game = w3.eth.contract(address=dep.dispute_game, abi=artifacts.load("DisputeGame").abi)
    out: dict[str, float] = {}
    for name in SHIPPED:
        entry = model_entry(name)
        sample = entry["samples"][0]
        x = bytes.fromhex(sample["input_hex"][2:])
        model_id = client.register_model(owner, ModelSpec(
            onnx_hash=bytes.fromhex(entry["onnx_keccak256"][2:]), fee=FEE, bond=4 * FEE, input_length=len(x),
            output_length=entry["output_width"], mode=Mode.EXACT, uri=f"file:///{name}.onnx",
            program_commitment=bytes.fromhex(entry["program_commitment"][2:])), program_bytes(name))
        reg = client.contract.events.ModelRegistered().get_logs(from_block=0, argument_filters={"modelId": model_id})
        out[f"models.{name}.register_gas"] = float(_gas(w3, reg[-1]["transactionHash"]))
        key = game.functions.planKey(client.contract.functions.programChunks(model_id).call()).call()
        fixed = game.events.PlanFixed().get_logs(from_block=0, argument_filters={"key": key})
        if not fixed:
            continue
        out[f"models.{name}.fix_plan_gas"] = float(_gas(w3, fixed[-1]["transactionHash"]))
        rid, _ = client.request(user, model_id, x)
        client.submit(operator, rid, bytes.fromhex(sample["expected_output_hex"][2:]))
        opened = game.functions.open(rid, x).transact({"from": challenger, "value": GAME_BOND, "gas": TX_GAS_CAP})
        out[f"models.{name}.open_gas"] = float(_gas(w3, opened))
    out["registration.max_tx_gas"] = max(out.values())
    if out["registration.max_tx_gas"] > TX_GAS_CAP:
        raise AssertionError(f"a registration transaction used {out['registration.max_tx_gas']:,.0f} gas, over the cap")
    return out


if __name__ == "__main__":
    from oracle.chain.devnet import Devnet

    with Devnet() as d:
        for key, value in run(Web3(Web3.HTTPProvider(d.url, request_kwargs={"timeout": 300}))).items():
            print(f"{key:44s} {value:,.0f}")
