"""``oracle dispute status``: a game's phase, interval, clocks and who must act, from the chain."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from oracle.cli import app
from oracle.dispute.actors import Actor, play
from oracle.profile.trace import Trace, perturb_at
from tests.dispute.conftest import GAME_BOND, GameSystem


def test_status_follows_the_game(gs: GameSystem, tmp_path: Path) -> None:
    rid, x = gs.request(2)
    lie = Trace.from_input_bytes(gs.program, x, tamper=perturb_at(31))
    gs.client.submit(gs.operator, rid, lie.output_bytes())
    challenger = Actor(gs.w3, gs.game, gs.challenger, Trace.from_input_bytes(gs.program, x), "challenger")
    operator = Actor(gs.w3, gs.game, gs.operator, lie, "operator")
    game_id = challenger.open(rid, x, GAME_BOND)
    path = tmp_path / "deployment.json"
    gs.deployment.save(path)
    rpc = gs.w3.provider.endpoint_uri  # type: ignore[attr-defined]
    runner = CliRunner()

    def status() -> dict:
        res = runner.invoke(app, ["dispute", "status", str(game_id), "--deployment", str(path), "--rpc", rpc])
        assert res.exit_code == 0, res.output
        return json.loads(res.output)

    s = status()
    assert s["phase"] == "DEFEND" and s["to_move"] == "operator" and s["lo"] == 0
    assert s["hi"] == len(gs.program.ops) and 0 < s["seconds_left"] <= s["operator_clock_s"]
    operator.move(game_id)
    operator.move(game_id)
    assert status()["to_move"] == "challenger"
    play(gs.game, game_id, operator, challenger)
    s = status()
    assert s["phase"] == "RESOLVED" and s["winner"] == "challenger" and s["lo"] == 31
    moves = [m["move"] for m in s["moves"]]  # every move, in order, from the game's events
    assert moves[:2] == ["GameOpened", "Defended"] and moves[-2:] == ["StepProven", "GameResolved"]
    assert moves.count("MidpointPosted") == moves.count("MidpointChosen") == (len(gs.program.ops) - 1).bit_length()
    res = runner.invoke(app, ["dispute", "status", "999", "--deployment", str(path), "--rpc", rpc])
    assert res.exit_code == 1 and "no game 999" in res.output
