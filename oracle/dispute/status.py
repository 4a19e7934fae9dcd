"""A dispute game as people read it (``oracle dispute status``, the dashboard): phase, interval, clocks, who
must act, and the moves so far (from the game's events)."""

from __future__ import annotations

from typing import Any

from web3.contract import Contract

from oracle.dispute.actors import GameView, Phase

#: event name -> how a move reads in the list (every event of a game is indexed by its id)
_MOVES = ("GameOpened", "Defended", "MidpointPosted", "MidpointChosen", "StepProven", "GameResolved")


def game_status(game: Contract, game_id: int, moves: bool = True) -> dict[str, object]:
    """A game's state: phase, bisection interval, clocks, who must move and the seconds left on its clock;
    with ``moves``, every move so far in order (block, what, arguments)."""
    if not 0 < game_id <= game.functions.gameCount().call():
        raise ValueError(f"no game {game_id}")
    g = GameView.read(game, game_id)
    raw = game.functions.getGame(game_id).call()
    who, left = game.functions.toMove(game_id).call()
    out: dict[str, object] = {
        "game": game_id, "request_id": hex(g.request_id), "phase": g.phase.name,
        "challenger": g.challenger, "operator": g.operator, "lo": g.lo, "hi": g.hi,
        "challenger_clock_s": int(raw.challengerClock), "operator_clock_s": int(raw.operatorClock),
        "root_lo": "0x" + g.root_lo.hex(), "root_hi": "0x" + g.root_hi.hex(),
    }
    if g.phase is Phase.RESOLVED:
        out["winner"] = "challenger" if g.challenger_won else "operator"
    else:
        out["to_move"] = "operator" if who == g.operator else "challenger"
        out["seconds_left"] = int(left)
    if moves:
        out["moves"] = game_moves(game, game_id)
    return out


def game_moves(game: Contract, game_id: int) -> list[dict[str, Any]]:
    found = []
    head = game.w3.eth.block_number  # one block for every query: a move mined in between shows whole or not at all
    for name in _MOVES:
        for e in getattr(game.events, name)().get_logs(from_block=0, to_block=head,
                                                       argument_filters={"gameId": game_id}):
            args = {k: ("0x" + v.hex() if isinstance(v, bytes) else v) for k, v in e["args"].items()
                    if k not in ("gameId", "requestId")}
            found.append((e["blockNumber"], e["logIndex"], {"block": e["blockNumber"], "move": name, **args}))
    return [m for _, _, m in sorted(found, key=lambda t: (t[0], t[1]))]


def open_games(game: Contract, limit: int = 50) -> list[dict[str, object]]:
    """The newest ``limit`` games, open ones first (without their move lists)."""
    count = int(game.functions.gameCount().call())
    games = [game_status(game, gid, moves=False) for gid in range(count, max(0, count - limit), -1)]
    return sorted(games, key=lambda s: s["phase"] == "RESOLVED")
