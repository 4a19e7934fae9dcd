"""Benchmark: the interactive dispute game (protocol §6 v2) end to end on anvil.

A synthetic chained MLP (a batch of ``ROWS`` inputs, one shared ``WIDTH x WIDTH`` int8 weight matrix,
``LAYERS`` x MatMul/Clip, random weights) far over the one-transaction proof cap, each of its MatMuls alone
over it too, is registered as game-provable; a request is answered with a wrong result (a lying operator
whose trace is wrong from one MatMul on: it shows at that op's last tile), an honest challenger opens a
game and both sides play every move as soon as possible (instant-mining anvil, no clock waits). Every
transaction is sent with the EIP-7825 cap as its gas limit.

- ``dispute.largest_model_macs``: multiply-accumulates of that model; ``dispute.largest_op_macs``: of its
  largest op (one MatMul);
- ``dispute.proof_bound_over_cap``: its one-transaction proof bound / 16,777,216;
- ``dispute.steps``: steps the game bisects over (ops and tiles); ``dispute.txs``: game transactions, both
  sides (the goal: at most 2 ceil(log2 steps) + 3);
- ``dispute.max_tx_gas`` / ``dispute.total_gas``: over those transactions; ``dispute.step_gas_bound``:
  the registered bound of the largest step; ``dispute.step_bound_over_measured``: the plan's bound of the
  proven tile over its measured gas;
- ``dispute.wall_s``: seconds from the opening transaction to resolution;
- ``dispute.submit_gas``: the operator's submit of this model's 2,048-byte result (the submit path is
  unchanged by the game: its cost is the output's calldata and event; ``gas.submit`` is the standard
  model's figure).

Run: ``.venv/bin/python -m bench.run --only dispute``
"""

from __future__ import annotations

import time

import numpy as np
from web3 import Web3

from oracle.chain import artifacts
from oracle.chain.client import OracleClient
from oracle.chain.deploy import DeployParams, deploy_system
from oracle.chain.types import Mode, ModelSpec
from oracle.dispute.actors import TX_GAS_CAP, Actor, play
from oracle.dispute.synthetic import chained_mlp
from oracle.profile import gas_bound, tiles
from oracle.profile.codec import encode_tensor
from oracle.profile.opcodes import Opcode
from oracle.profile.program import encode, macs
from oracle.profile.trace import Trace, perturb_at

LAYERS, WIDTH, ROWS = 7, 512, 32
GAME_BOND = 10**16


def run(w3: Web3) -> dict[str, float]:
    accounts = w3.eth.accounts
    owner, operator, user, challenger = accounts[:4]
    params = DeployParams(challenge_window=3600, request_timeout=3600, unbonding_period=7 * 86_400,
                          dispute_game=True, game_bond=GAME_BOND, game_clock=3600)
    dep = deploy_system(w3, owner, params)
    client = OracleClient(w3, dep.oracle)
    game = w3.eth.contract(address=dep.dispute_game, abi=artifacts.load("DisputeGame").abi)
    program = chained_mlp(LAYERS, WIDTH, div=False, rows=ROWS)
    data = encode(program)
    fee = 10**15
    spec = ModelSpec(onnx_hash=b"\x44" * 32, fee=fee, bond=4 * fee, input_length=ROWS * WIDTH,
                     output_length=ROWS * WIDTH * program.output_width, mode=Mode.EXACT, uri="file:///bench-mlp.onnx",
                     program_commitment=Web3.keccak(data))
    model_id = client.register_model(owner, spec, data)
    client.stake(operator, 10**18)
    chunks = client.contract.functions.programChunks(model_id).call()
    steps = w3.eth.contract(address=game.functions.STEP_GAS_BOUND().call(), abi=artifacts.load("StepGasBound").abi)
    step_bound = int(steps.functions.stepGasBound(chunks, TX_GAS_CAP).call())
    whole = gas_bound.execution_bound(program, len(data)).total

    x = np.random.default_rng(8).integers(-128, 128, size=program.input_shape)
    x_bytes = encode_tensor(x, 1)
    rid, _ = client.request(user, model_id, x_bytes)
    honest = Trace(program, x)
    # The first op from two thirds of the program on whose lie shows in the output, a MatMul if one does
    # (the heaviest step: one of its tiles).
    n = len(program.ops)
    later = range(n * 2 // 3, n)
    for lie_at in [i for i in later if program.ops[i].opcode is Opcode.MATMUL] + list(later):
        lie = Trace(program, x, tamper=perturb_at(lie_at))
        if lie.output_bytes() != honest.output_bytes():
            break
    else:
        raise RuntimeError("no visible lie")
    submit = client.submit(operator, rid, lie.output_bytes())

    ch = Actor(w3, game, challenger, honest, "challenger")
    op = Actor(w3, game, operator, lie, "operator")
    started = time.perf_counter()
    game_id = ch.open(rid, x_bytes, GAME_BOND)
    end = play(game, game_id, op, ch)
    wall = time.perf_counter() - started
    if not end.challenger_won or client.status_of(rid).name != "FRAUD_PROVEN":
        raise RuntimeError("the honest challenger did not win")
    used = [int(r["gasUsed"]) for r in ch.receipts + op.receipts]
    step_gas = int(ch.receipts[-1]["gasUsed"])  # the honest challenger's one-step proof ends the game
    if max(used) > TX_GAS_CAP:
        raise RuntimeError(f"a game transaction used {max(used)} gas > {TX_GAS_CAP}")
    if len(used) > 2 * (honest.num_steps - 1).bit_length() + 3:
        raise RuntimeError(f"{len(used)} game transactions for {honest.num_steps} steps")
    return {
        "dispute.largest_model_macs": float(macs(program)),
        "dispute.largest_op_macs": float(ROWS * WIDTH * WIDTH),
        "dispute.proof_bound_over_cap": round(whole / TX_GAS_CAP, 2),
        "dispute.steps": float(honest.num_steps),
        "dispute.txs": float(len(used)),
        "dispute.max_tx_gas": float(max(used)),
        "dispute.total_gas": float(sum(used)),
        "dispute.step_gas_bound": float(step_bound),
        "dispute.step_bound_over_measured": round(tiles.step_gas_bound(program, lie_at) / step_gas, 2),
        "dispute.wall_s": round(wall, 2),
        "dispute.submit_gas": float(submit["gasUsed"]),
    }


if __name__ == "__main__":
    from oracle.chain.devnet import Devnet

    with Devnet() as dev:
        for k, v in run(Web3(Web3.HTTPProvider(dev.url, request_kwargs={"timeout": 120}))).items():
            print(f"{k:36s} {v:,.2f}")
