"""The demo's act on a model too large for one transaction: a wrong answer proven by the dispute game.

A synthetic deep MLP (random int8 weights, :func:`oracle.dispute.synthetic.chained_mlp`) is registered; its
one-transaction proof would need several times the 16,777,216-gas cap, so the registry accepts it as
game-provable. A dishonest operator answers a request wrongly and its node (a real one, with the demo's
fault injection: it defends a tampered trace) plays the game; the challenger daemon that is already running
finds the wrong result, opens a game and plays it. The narration prints every move as it lands on-chain.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from web3 import Web3
from web3.types import Wei

from oracle.chain.client import OracleClient
from oracle.chain.deploy import Deployment
from oracle.chain.types import Mode, ModelSpec, Status
from oracle.demo.actors import dev_account, make_node
from oracle.dispute.actors import GameView, Phase
from oracle.dispute.party import TX_GAS_CAP, game_contract
from oracle.dispute.status import game_moves
from oracle.dispute.synthetic import chained_mlp
from oracle.errors import ContractRevert
from oracle.profile.codec import encode_tensor
from oracle.profile.program import Program, encode, macs
from oracle.profile.trace import Trace, perturb_at

LAYERS, WIDTH = 20, 512
LIE_AT = 41  # the op whose output the dishonest operator alters (every later op computed from it)
KEY_INDEX = 6  # the large model's dishonest operator (a devnet account of its own)
STAKE = 3 * 10**18  # its stake: the larger, the likelier each request is drawn to it
ASK_LIMIT = 20


@dataclass
class GameOutcome:
    macs: int = 0
    ops: int = 0
    moves: int = 0
    max_gas: int = 0
    slashed: bool = False
    seconds: float = 0.0


def play_act(console: Console, w3: Web3, client: OracleClient, dep: Deployment, owner: str, user: str,
             workdir: Path, cast: list[Any], fee: int, bond: int) -> GameOutcome:
    out = GameOutcome()
    program = chained_mlp(LAYERS, WIDTH)
    data = encode(program)
    out.macs, out.ops = macs(program), len(program.ops)
    model_id = client.register_model(owner, ModelSpec(
        onnx_hash=Web3.keccak(data), fee=fee, bond=bond, input_length=WIDTH, output_length=WIDTH * program.output_width,
        mode=Mode.EXACT, uri="synthetic:chained_mlp", program_commitment=Web3.keccak(data)), data)
    proof_gas, _ = client.proof_gas_bound(model_id)
    console.print(f"model #{model_id}: a synthetic {LAYERS}-layer MLP ({WIDTH}x{WIDTH} int8 weights, {out.ops} ops, "
                  f"{out.macs / 1e6:.1f}M multiply-accumulates); its one-transaction proof would need "
                  f"{proof_gas / 1e6:.0f}M gas, {proof_gas / TX_GAS_CAP:.1f}x the cap: registered game-provable")
    acct = dev_account(KEY_INDEX)
    w3.eth.send_transaction({"from": owner, "to": acct.address, "value": Wei(STAKE + 10**18)})
    client.stake(acct, STAKE)
    rid, asked, lie = _lie_when_assigned(client, user, acct, model_id, program)
    staked = client.stake_of(acct.address).staked
    console.print(f"  a user asks it; the request is drawn to a dishonest operator {acct.address[:10]}… "
                  f"({asked} asked: requests go by stake, others answered honestly), which answers wrongly (its "
                  f"op {LIE_AT} altered) and its node stands ready to defend that answer move by move")
    node = make_node("dishonest-large", w3.provider.endpoint_uri, dep.oracle,  # type: ignore[attr-defined]
                     w3.eth.block_number, workdir, KEY_INDEX)
    node.node.game_tamper = perturb_at(LIE_AT)
    cast.append(node.start())
    game = game_contract(w3, dep.dispute_game)
    started = time.monotonic()
    deadline = started + 180
    game_id, shown = 0, 0
    while time.monotonic() < deadline:
        if not game_id:
            opened = game.events.GameOpened().get_logs(from_block=0, argument_filters={"requestId": rid})
            game_id = int(opened[0]["args"]["gameId"]) if opened else 0
        if game_id:
            # The phase alone (getGame): toMove, which game_status also reads, can revert with an underflow
            # on anvil when blocks mined faster than one a second put lastMove ahead of the call's timestamp.
            over = GameView.read(game, game_id).phase is Phase.RESOLVED
            moves = game_moves(game, game_id)
            for m in moves[shown:]:
                out.max_gas = max(out.max_gas, _gas_of(w3, game, game_id, m))
                console.print("    " + _say(m, lie.steps))
            shown = len(moves)
            if over:
                break
        time.sleep(0.2)
    out.moves = max(0, shown - 1)  # every event but the final GameResolved is one transaction
    out.seconds = time.monotonic() - started
    out.slashed = client.status_of(rid) is Status.FRAUD_PROVEN
    if out.slashed:
        console.print(f"  [bold red]FRAUD PROVEN[/] by the game: the operator's stake "
                      f"{staked / 1e18:.4f} → {client.stake_of(acct.address).staked / 1e18:.4f} ETH; "
                      f"largest transaction {out.max_gas:,} gas (cap {TX_GAS_CAP:,})")
    return out


def _lie_when_assigned(client: OracleClient, user: str, acct: Any, model_id: int, program: Program
                       ) -> tuple[int, int, Trace]:
    """Asks until a request is drawn to the dishonest operator (or to nobody, and it answers first), which then
    submits its wrong answer; returns (request id, requests asked, the wrong trace). A request drawn to another
    operator is answered by it (honestly) like any other."""
    rng = np.random.default_rng(7)
    for asked in range(1, ASK_LIMIT + 1):
        x = rng.integers(-128, 128, size=program.input_shape)
        rid, _ = client.request(user, model_id, encode_tensor(x, program.input_width))
        if int(client.get_request(rid).operator, 16) not in (0, int(acct.address, 16)):
            continue
        lie = Trace(program, x, perturb_at(LIE_AT))
        try:
            client.submit(acct, rid, lie.output_bytes())
        except ContractRevert:
            continue  # open to all, and an honest operator answered first
        return rid, asked, lie
    raise TimeoutError(f"demo: none of {ASK_LIMIT} requests was drawn to the dishonest operator")


def _say(m: dict[str, Any], steps: list[tuple[int, Any]]) -> str:
    """One move in words; ``steps`` maps the game's step index to (op index, tile) (:attr:`Trace.steps`)."""
    name = m["move"]

    def op(step: int) -> str:
        return f"step {step} (op {steps[step][0]}{'' if steps[step][1] is None else ', a tile'})"

    if name == "GameOpened":
        return (f"challenger opens a game over {m['numSteps']} steps ({steps[-1][0] + 1} ops), posting the game "
                f"bond (block {m['block']})")
    if name == "Defended":
        return f"operator posts its final state {m['finalRoot'][:12]}… with the claimed output in it"
    if name == "MidpointPosted":
        return f"operator posts its state after {m['index']} steps: {m['root'][:12]}…"
    if name == "MidpointChosen":
        verdict = "agrees" if m["agree"] else "disagrees"
        last = m["hi"] - 1
        where = op(last) if last == m["lo"] else f"steps {m['lo']}..{last}"
        return f"challenger {verdict}: the fault is in {where}"
    if name == "StepProven":
        who = "challenger" if m["challengerWon"] else "operator"
        return f"one-step proof: {op(m['stepIndex'])} re-executed on-chain, the {who} is right"
    if name == "GameResolved":
        return f"game over: {'the challenger' if m['challengerWon'] else 'the operator'} wins" + (
            " (on time)" if m["byTimeout"] else "")
    return str(name)


def _gas_of(w3: Web3, game: Any, game_id: int, m: dict[str, Any]) -> int:
    """The gas of the transaction that made move ``m`` (looked up by the game's event in that block)."""
    for name in ("GameOpened", "Defended", "MidpointPosted", "MidpointChosen", "StepProven"):
        if m["move"] != name:
            continue
        for e in getattr(game.events, name)().get_logs(from_block=m["block"], to_block=m["block"],
                                                       argument_filters={"gameId": game_id}):
            return int(w3.eth.get_transaction_receipt(e["transactionHash"])["gasUsed"])
    return 0
