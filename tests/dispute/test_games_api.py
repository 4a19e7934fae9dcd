"""The dashboard's read route of dispute games (``GET /api/dashboard/games``): open games first, who must act."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from oracle.api.dashboard import dashboard_router
from oracle.dispute.actors import Actor, play
from oracle.profile.trace import Trace, perturb_at
from tests.dispute.conftest import GAME_BOND, GameSystem


def test_games_route_lists_open_games_first(gs: GameSystem) -> None:
    app = FastAPI()
    app.include_router(dashboard_router(gs.client, start_block=gs.deployment.block))
    http = TestClient(app)
    assert http.get("/api/dashboard/games").json() == []
    games = []
    for seed in (5, 6):
        rid, x = gs.request(seed)
        lie = Trace.from_input_bytes(gs.program, x, tamper=perturb_at(9))
        gs.client.submit(gs.operator, rid, lie.output_bytes())
        ch = Actor(gs.w3, gs.game, gs.challenger, Trace.from_input_bytes(gs.program, x), "challenger")
        games.append((ch.open(rid, x, GAME_BOND), Actor(gs.w3, gs.game, gs.operator, lie, "operator"), ch))
    first, op, ch = games[0]
    play(gs.game, first, op, ch)  # the first game ends; the second stays open
    got = http.get("/api/dashboard/games").json()
    assert [(g["game"], g["phase"]) for g in got] == [(games[1][0], "DEFEND"), (first, "RESOLVED")]
    assert got[0]["to_move"] == "operator" and got[0]["seconds_left"] > 0 and got[0]["winner"] is None
    assert got[1]["winner"] == "challenger" and got[1]["lo"] == 9 and got[1]["to_move"] is None
    assert http.get("/api/dashboard/games?limit=0").status_code == 422
