"""Who may open and settle games, and which models the game can carry."""

from __future__ import annotations

import numpy as np
from web3 import Web3

from oracle.chain.types import Mode, ModelSpec
from oracle.dispute.synthetic import chained_mlp
from oracle.profile.codec import encode_tensor
from oracle.profile.program import encode
from oracle.profile.trace import Trace
from tests.dispute.conftest import FEE, GAME_BOND, WINDOW, GameSystem, revert_named


def _spec(program, data: bytes) -> ModelSpec:  # type: ignore[no-untyped-def]
    n_in = int(np.prod(program.input_shape)) * program.input_width
    n_out = int(np.prod(program.output_shape)) * program.output_width
    return ModelSpec(onnx_hash=b"\x55" * 32, fee=FEE, bond=4 * FEE, input_length=n_in, output_length=n_out,
                     mode=Mode.EXACT, uri="file:///g.onnx", program_commitment=Web3.keccak(data))


def test_small_models_keep_the_one_transaction_proof(gs: GameSystem) -> None:
    """A model under the cap registers as before and cannot be disputed through the game."""
    program = chained_mlp(2, 64)
    data = encode(program)
    model_id = gs.client.register_model(gs.owner, _spec(program, data), data)
    bound, _ = gs.client.contract.functions.proofGasBound(model_id).call()
    assert bound <= 16_777_216
    x = encode_tensor(np.random.default_rng(0).integers(-128, 128, size=program.input_shape), 1)
    rid, _ = gs.client.request(gs.user, model_id, x)
    gs.client.submit(gs.operator, rid, Trace.from_input_bytes(program, x).output_bytes())
    with revert_named("ClaimNotDisputable"):
        gs.game.functions.open(rid, x).call({"from": gs.challenger, "value": GAME_BOND})


def test_open_checks_bond_input_and_window(gs: GameSystem) -> None:
    rid, x = gs.request(21)
    gs.client.submit(gs.operator, rid, Trace.from_input_bytes(gs.program, x).output_bytes())
    with revert_named("WrongBond"):
        gs.game.functions.open(rid, x).call({"from": gs.challenger, "value": GAME_BOND - 1})
    other = bytes([(x[0] + 1) % 256]) + x[1:]
    with revert_named("ClaimNotDisputable"):
        gs.game.functions.open(rid, other).call({"from": gs.challenger, "value": GAME_BOND})
    gs.advance(WINDOW + 1)
    with revert_named("ClaimNotDisputable"):
        gs.game.functions.open(rid, x).call({"from": gs.challenger, "value": GAME_BOND})


def test_only_the_game_settles_disputes(gs: GameSystem) -> None:
    rid, x = gs.request(22)
    gs.client.submit(gs.operator, rid, Trace.from_input_bytes(gs.program, x).output_bytes())
    with revert_named("NotDisputeGame"):
        gs.client.contract.functions.setDisputed(rid, False, gs.challenger).call({"from": gs.challenger})
    assert gs.client.contract.functions.DISPUTE_GAME().call() == gs.game.address


def test_moves_only_by_the_side_to_move(gs: GameSystem) -> None:
    rid, x = gs.request(23)
    honest = Trace.from_input_bytes(gs.program, x)
    gs.client.submit(gs.operator, rid, honest.output_bytes())
    tx = gs.game.functions.open(rid, x).transact({"from": gs.challenger, "value": GAME_BOND})
    game_id = gs.game.events.GameOpened().process_receipt(gs.w3.eth.wait_for_transaction_receipt(tx))[0][
        "args"]["gameId"]
    n, out = honest.num_steps, gs.program.output_id
    args = (game_id, honest.root(n), honest.output_values(), honest.proof(n, out))
    with revert_named("NotYourMove"):
        gs.game.functions.defend(*args).call({"from": gs.challenger})
    with revert_named("WrongPhase"):
        gs.game.functions.choose(game_id, True).call({"from": gs.challenger})
    with revert_named("WrongPhase"):
        gs.game.functions.bisect(game_id, honest.root(1)).call({"from": gs.operator})
    # The game's first state is the reference's input state.
    ev = gs.game.events.GameOpened().process_receipt(gs.w3.eth.wait_for_transaction_receipt(tx))[0]["args"]
    assert bytes(ev["root0"]) == honest.root(0) and ev["numSteps"] == n
