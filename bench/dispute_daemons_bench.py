"""Benchmark: the dispute game played by the real daemons, end to end on anvil.

The model of ``bench.dispute_bench`` (a synthetic chained MLP far over the one-transaction cap, registered
game-provable). A lying operator's claim is on-chain; its node (a real :class:`oracle.worker.node.Node`, the
demo's fault injection: it defends a tampered trace) and the challenger daemon (a real
:class:`oracle.challenger.daemon.Challenger`) are started, and nothing else happens: the challenger finds the
wrong result, opens a game and both daemons play it to the end on instant-mining anvil.

- ``dispute.daemons.wall_s``: seconds from starting both daemons to the claim's ``FRAUD_PROVEN`` (the
  challenger's re-execution, both traces, every move, each daemon's poll interval of 0.1 s included);
- ``dispute.daemons.txs`` / ``dispute.daemons.max_tx_gas`` / ``dispute.daemons.total_gas``: the game's
  transactions, both sides (from the game's events and their receipts).

Run: ``.venv/bin/python -m bench.run --only dispute_daemons``
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from web3 import Web3

from oracle.chain.client import OracleClient
from oracle.chain.deploy import DeployParams, deploy_system
from oracle.chain.types import Mode, ModelSpec, Status
from oracle.demo.actors import make_challenger, make_node
from oracle.dispute.party import TX_GAS_CAP, game_contract
from oracle.dispute.synthetic import chained_mlp
from oracle.profile.codec import encode_tensor
from oracle.profile.program import encode
from oracle.profile.trace import Trace, perturb_at

LAYERS, WIDTH, ROWS = 100, 512, 2
LIE_AT = 160  # a Clip two thirds in (every later op computed from the lie: it shows in the output)
MOVE_EVENTS = ("GameOpened", "Defended", "MidpointPosted", "MidpointChosen", "StepProven")


def run(w3: Web3) -> dict[str, float]:
    accounts = w3.eth.accounts
    owner, operator, user, challenger = accounts[:4]
    dep = deploy_system(w3, owner, DeployParams(challenge_window=3600, request_timeout=3600,
                                                unbonding_period=7 * 86_400, game_bond=10**16))
    client = OracleClient(w3, dep.oracle)
    program = chained_mlp(LAYERS, WIDTH, div=False, rows=ROWS)
    data = encode(program)
    fee = 10**15
    model_id = client.register_model(owner, ModelSpec(
        onnx_hash=Web3.keccak(data), fee=fee, bond=4 * fee, input_length=ROWS * WIDTH,
        output_length=ROWS * WIDTH * program.output_width, mode=Mode.EXACT, uri="synthetic:chained_mlp",
        program_commitment=Web3.keccak(data)), data)
    client.stake(operator, 10**18)
    x = np.random.default_rng(8).integers(-128, 128, size=program.input_shape)
    rid, _ = client.request(user, model_id, encode_tensor(x, 1))
    lie = Trace(program, x, tamper=perturb_at(LIE_AT))
    if lie.output_bytes() == Trace(program, x).output_bytes():
        raise RuntimeError("the lie does not show in the output")
    client.submit(operator, rid, lie.output_bytes())
    url = w3.provider.endpoint_uri  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory(prefix="bench-daemons-") as tmp:
        node = make_node("liar", url, dep.oracle, w3.eth.block_number, Path(tmp), 1)
        node.node.game_tamper = perturb_at(LIE_AT)
        daemon = make_challenger(client, Path(tmp), dep.block, challenger)
        started = time.perf_counter()
        node.start()
        daemon.start()
        try:
            deadline = started + 600
            while client.status_of(rid) is not Status.FRAUD_PROVEN:
                if time.perf_counter() > deadline:
                    raise RuntimeError("the daemons did not finish the game in 600 s")
                time.sleep(0.05)
            wall = time.perf_counter() - started
        finally:
            daemon.stop()
            node.stop()
    game = game_contract(w3, dep.dispute_game)
    hashes = {bytes(e["transactionHash"]) for name in MOVE_EVENTS
              for e in getattr(game.events, name)().get_logs(from_block=dep.block)}
    used = [int(w3.eth.get_transaction_receipt(h)["gasUsed"]) for h in hashes]  # type: ignore[arg-type]
    if max(used) > TX_GAS_CAP:
        raise RuntimeError(f"a game transaction used {max(used)} gas > {TX_GAS_CAP}")
    return {
        "dispute.daemons.wall_s": round(wall, 2),
        "dispute.daemons.txs": float(len(used)),
        "dispute.daemons.max_tx_gas": float(max(used)),
        "dispute.daemons.total_gas": float(sum(used)),
    }


if __name__ == "__main__":
    from oracle.chain.devnet import Devnet

    with Devnet() as dev:
        for k, v in run(Web3(Web3.HTTPProvider(dev.url, request_kwargs={"timeout": 120}))).items():
            print(f"{k:36s} {v:,.2f}")
