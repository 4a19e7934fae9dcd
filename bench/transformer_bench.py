"""The shipped digits transformer (``digits_transformer``, EXACT): accuracy, size and the gas of proving it.

Figures (``models.transformer.*``):

- ``float_accuracy`` / ``int_accuracy``: held-out accuracy of the float graph and of the integer program
  (from the manifest, which ``scripts/build_models.py`` computes and ``tests/profile`` re-checks);
  ``int_accuracy_drop_pp`` is float minus int in percentage points (negative: the integer model is better).
- ``macs``: multiply-accumulates of the program's MatMuls (``program.macs``); ``ops``: program ops.
- ``program_bytes``: size of the committed program.
- ``execute_gas``: ``eth_estimateGas`` of the verifier re-executing the whole program on a held-out digit
  (over the 2^24 cap: the model is registered game-provable, so its fraud proof is the dispute game);
  ``proof_bound``: the registered one-transaction proof bound; ``step_gas_bound``: the game's bound on
  its largest one-step proof.
- ``proof_gas``: the largest ``gasUsed`` of any transaction of a real game on anvil in which an honest
  challenger proves a lying operator wrong (what "proof gas, max per transaction" means for a
  game-provable model); ``game_txs`` / ``game_total_gas``: that game's transactions, both sides.
"""

from __future__ import annotations

from web3 import Web3

from oracle.chain import artifacts
from oracle.chain.client import OracleClient
from oracle.chain.deploy import DeployParams, deploy_system
from oracle.chain.types import Mode, ModelSpec
from oracle.dispute.actors import TX_GAS_CAP, Actor, play
from oracle.profile.models import model_entry, program_bytes
from oracle.profile.program import decode, macs
from oracle.profile.trace import Trace, perturb_at

FEE = 10**15
GAME_BOND = 10**16


def run(w3: Web3) -> dict[str, float]:
    owner, operator, user, challenger = w3.eth.accounts[:4]
    params = DeployParams(challenge_window=3600, request_timeout=3600, unbonding_period=7 * 86_400,
                          dispute_game=True, game_bond=GAME_BOND, game_clock=3600)
    dep = deploy_system(w3, owner, params)
    client = OracleClient(w3, dep.oracle)
    game = w3.eth.contract(address=dep.dispute_game, abi=artifacts.load("DisputeGame").abi)
    entry = model_entry("digits_transformer")
    data = program_bytes("digits_transformer")
    program = decode(data)
    spec = ModelSpec(onnx_hash=bytes.fromhex(entry["onnx_keccak256"][2:]), fee=FEE, bond=4 * FEE, input_length=64,
                     output_length=1, mode=Mode.EXACT, uri="file:///digits_transformer.onnx",
                     program_commitment=bytes.fromhex(entry["program_commitment"][2:]))
    model_id = client.register_model(owner, spec, data)
    client.stake(operator, 10**18)
    chunks = client.contract.functions.programChunks(model_id).call()
    proof_bound, _ = client.contract.functions.proofGasBound(model_id).call()
    steps = w3.eth.contract(address=game.functions.STEP_GAS_BOUND().call(), abi=artifacts.load("StepGasBound").abi)
    step_bound = int(steps.functions.stepGasBound(chunks, TX_GAS_CAP).call())

    x = bytes.fromhex(entry["samples"][0]["input_hex"][2:])
    verifier = w3.eth.contract(address=dep.verifier, abi=artifacts.load("IntegerVerifier").abi)
    execute = verifier.functions.executeStored(chunks, x)
    honest = Trace.from_input_bytes(program, x)
    if bytes(execute.call({"gas": 200_000_000})) != honest.output_bytes():
        raise AssertionError("verifier and reference disagree on digits_transformer")
    execute_gas = int(execute.estimate_gas({"from": owner, "gas": 200_000_000}))

    rid, _ = client.request(user, model_id, x)
    # The lie: the logit of class 0 pushed up (or down if the honest digit is 0), so the digit changes.
    delta = (1 << 20) if honest.output_bytes() != b"\x00" else -(1 << 20)
    lie = Trace.from_input_bytes(program, x, tamper=perturb_at(len(program.ops) - 2, delta))
    client.submit(operator, rid, lie.output_bytes())
    honest_actor = Actor(w3, game, challenger, honest, "challenger")
    liar = Actor(w3, game, operator, lie, "operator")
    end = play(game, honest_actor.open(rid, x, GAME_BOND), liar, honest_actor)
    if not end.challenger_won:
        raise AssertionError("the honest challenger lost the game")
    used = [int(r["gasUsed"]) for r in honest_actor.receipts + liar.receipts]
    if max(used) > TX_GAS_CAP:
        raise AssertionError(f"a game transaction used {max(used)} gas, over the cap")
    return {
        "models.transformer.float_accuracy": float(entry["float_accuracy"]),
        "models.transformer.int_accuracy": float(entry["int_accuracy"]),
        "models.transformer.int_accuracy_drop_pp": round(100 * (entry["float_accuracy"] - entry["int_accuracy"]), 3),
        "models.transformer.macs": float(macs(program)),
        "models.transformer.ops": float(len(program.ops)),
        "models.transformer.program_bytes": float(len(data)),
        "models.transformer.execute_gas": float(execute_gas),
        "models.transformer.proof_bound": float(proof_bound),
        "models.transformer.step_gas_bound": float(step_bound),
        "models.transformer.proof_gas": float(max(used)),
        "models.transformer.game_txs": float(len(used)),
        "models.transformer.game_total_gas": float(sum(used)),
    }


if __name__ == "__main__":
    from oracle.chain.devnet import Devnet

    with Devnet() as d:
        for key, value in run(Web3(Web3.HTTPProvider(d.url, request_kwargs={"timeout": 300}))).items():
            print(f"{key:44s} {value:,.4f}")
