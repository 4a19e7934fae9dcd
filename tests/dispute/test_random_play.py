"""Random play: whatever a dishonest side does (random choices, random roots, silence), the honest side wins."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oracle.dispute.actors import TX_GAS_CAP, Actor, GameView, Phase
from oracle.profile.trace import Trace, perturb_at
from tests.dispute.conftest import GAME_BOND, GameSystem, gas_used

SETTINGS = settings(max_examples=int(os.environ.get("DISPUTE_FUZZ_EXAMPLES", "15")), deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def _send(gs: GameSystem, fn, sender: str) -> bool:  # type: ignore[no-untyped-def]
    """Sends a move if it would succeed; returns whether it did."""
    try:
        fn.call({"from": sender, "gas": TX_GAS_CAP})
    except Exception:  # noqa: BLE001 - a random move may be refused; that is part of the play
        return False
    receipt = gs.w3.eth.wait_for_transaction_receipt(fn.transact({"from": sender, "gas": TX_GAS_CAP}))
    gas_used([receipt])
    return True


@SETTINGS
@given(st.data())
def test_random_challenger_never_beats_an_honest_operator(gs: GameSystem, data: st.DataObject) -> None:
    snap = gs.w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    try:
        rid, x = gs.request(31)
        honest = Trace.from_input_bytes(gs.program, x)
        gs.client.submit(gs.operator, rid, honest.output_bytes())
        operator = Actor(gs.w3, gs.game, gs.operator, honest, "operator")
        game_id = Actor(gs.w3, gs.game, gs.challenger, honest, "challenger").open(rid, x, GAME_BOND)
        for _ in range(40):
            g = GameView.read(gs.game, game_id)
            if g.phase is Phase.RESOLVED:
                break
            if g.phase in (Phase.DEFEND, Phase.BISECT, Phase.STEP) and operator.move(game_id):
                continue
            action = data.draw(st.sampled_from(["agree", "disagree", "silent"]))
            if action == "silent":
                gs.advance(gs.game.functions.CLOCK().call() + 1)
                _send(gs, gs.game.functions.timeout(game_id), gs.operator)
            else:
                _send(gs, gs.game.functions.choose(game_id, action == "agree"), gs.challenger)
        end = GameView.read(gs.game, game_id)
        assert end.phase is Phase.RESOLVED and not end.challenger_won
        assert gs.client.status_of(rid).name != "FRAUD_PROVEN"
        gas_used(operator.receipts)
    finally:
        gs.w3.provider.make_request("evm_revert", [snap])  # type: ignore[arg-type]


@SETTINGS
@given(st.data())
def test_random_operator_never_beats_an_honest_challenger(gs: GameSystem, data: st.DataObject) -> None:
    snap = gs.w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    try:
        rid, x = gs.request(2)
        lie = Trace.from_input_bytes(gs.program, x, tamper=perturb_at(31))
        gs.client.submit(gs.operator, rid, lie.output_bytes())
        honest = Trace.from_input_bytes(gs.program, x)
        challenger = Actor(gs.w3, gs.game, gs.challenger, honest, "challenger")
        game_id = challenger.open(rid, x, GAME_BOND)
        liar = Actor(gs.w3, gs.game, gs.operator, lie, "operator")
        for _ in range(40):
            g = GameView.read(gs.game, game_id)
            if g.phase is Phase.RESOLVED:
                break
            if g.phase in (Phase.CHOOSE, Phase.STEP) and challenger.move(game_id):
                continue
            action = data.draw(st.sampled_from(["lie-trace", "random-root", "honest-root", "silent"]))
            mid = (g.lo + g.hi) // 2
            if g.phase is Phase.DEFEND and action != "silent":
                liar.move(game_id)
            elif g.phase is Phase.BISECT and action == "lie-trace":
                liar.move(game_id)
            elif g.phase is Phase.BISECT and action == "random-root":
                _send(gs, gs.game.functions.bisect(game_id, data.draw(st.binary(min_size=32, max_size=32))),
                      gs.operator)
            elif g.phase is Phase.BISECT and action == "honest-root":
                _send(gs, gs.game.functions.bisect(game_id, honest.root(mid)), gs.operator)
            else:
                gs.advance(gs.game.functions.CLOCK().call() + 1)
                _send(gs, gs.game.functions.timeout(game_id), gs.challenger)
        end = GameView.read(gs.game, game_id)
        assert end.phase is Phase.RESOLVED and end.challenger_won
        assert gs.client.status_of(rid).name == "FRAUD_PROVEN"
        gas_used(challenger.receipts + liar.receipts)
    finally:
        gs.w3.provider.make_request("evm_revert", [snap])  # type: ignore[arg-type]
