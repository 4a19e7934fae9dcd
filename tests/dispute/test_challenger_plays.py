"""The challenger daemon plays the dispute game to the end against the operator's node (both real processes).

A lying node (test-only knob ``WORKER_TEST_GAME_LIE``: it defends a tampered trace) claimed a wrong output of a
model whose one-transaction proof does not fit; the challenger daemon finds it, opens a game posting the bond,
plays every move, and the operator is slashed; the challenger collects its bond back. Then the same with each
daemon killed (``kill -9``) at a random move and restarted: the game still ends the same way, with one game
opened (one bond posted).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from oracle.challenger.daemon import Challenger, ChallengerConfig
from oracle.challenger.games import GamePolicy
from oracle.challenger.store import ClaimState, Store
from oracle.challenger.verify import ClaimVerifier
from oracle.dispute.actors import GameView, Phase
from oracle.profile.trace import Trace, perturb_at
from oracle.runtime.model_store import ModelStore
from tests.challenger.harness import Daemon, state_of
from tests.cli.helpers import closed_port
from tests.dispute.conftest import BOND, FEE, GAME_BOND, GameSystem
from tests.dispute.daemons import kill9, metric, spawn_challenger, spawn_node, stop, wait_until

LIE_AT = 41


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kill", [None, "node", "challenger"])
def test_challenger_daemon_slashes_a_lying_node(gs: GameSystem, devnet: Any, tmp_path: Path,
                                                kill: str | None) -> None:
    rid, x = gs.request(21)
    lie = Trace.from_input_bytes(gs.program, x, perturb_at(LIE_AT))
    assert lie.output_bytes() != Trace.from_input_bytes(gs.program, x).output_bytes()
    gs.client.submit(gs.operator, rid, lie.output_bytes())
    staked = gs.client.stake_of(gs.operator).staked
    node_port, port = closed_port(), closed_port()  # free ports for the two /metrics
    node = spawn_node(gs, devnet.url, tmp_path, WORKER_TEST_GAME_LIE=str(LIE_AT), ORACLE_API_PORT=str(node_port))
    challenger = spawn_challenger(gs, devnet.url, tmp_path, port)
    procs = {"node": node, "challenger": challenger}
    try:
        wait_until(lambda: gs.game.functions.gameCount().call() >= 1, 120, "the challenger opened a game")
        game_id = int(gs.game.functions.gameCount().call())
        kill_at = random.Random(kill).randrange(2, 9) if kill else -1
        seen, last = 0, None
        while True:
            g = GameView.read(gs.game, game_id)
            key = (g.phase, g.lo, g.hi, g.root_mid)
            if key != last:
                last, seen = key, seen + 1
                if seen == kill_at and g.phase is not Phase.RESOLVED:
                    assert kill is not None
                    kill9(procs[kill])
                    procs[kill] = (spawn_node(gs, devnet.url, tmp_path, WORKER_TEST_GAME_LIE=str(LIE_AT),
                                              ORACLE_API_PORT=str(node_port))
                                   if kill == "node" else spawn_challenger(gs, devnet.url, tmp_path, port))
            if g.phase is Phase.RESOLVED:
                break
            assert all(p.poll() is None for p in procs.values()), "a daemon died"
            wait_until(lambda k=key: (lambda v: (v.phase, v.lo, v.hi, v.root_mid))(
                GameView.read(gs.game, game_id)) != k, 90, f"a move after {key}")
        assert g.challenger_won and g.lo == LIE_AT, "bisection found the lying op"
        assert not kill or seen > kill_at, "the daemon was killed mid-game"
        wait_until(lambda: gs.game.functions.credits(gs.challenger).call() == 0, 60, "the bond withdrawn")
        db = Store(tmp_path / "challenger.sqlite3")
        try:
            wait_until(lambda: (c := db.claim(rid)) is not None and c.state is ClaimState.PROVEN, 30, "proven")
        finally:
            db.close()
        # The game shows in the challenger's metrics (a restarted challenger counts from its restart on).
        assert metric(port, "challenger_games_total", event="won") == 1
        assert metric(port, "challenger_games_total", event="lost") == 0
        assert metric(port, "challenger_game_moves_total", move="choose") >= 1
        if kill != "challenger":
            assert metric(port, "challenger_games_total", event="opened") == 1
            assert metric(port, "challenger_game_moves_total", move="open") == 1
        # and in the node's (it lost: it defended a tampered trace)
        wait_until(lambda: metric(node_port, "oracle_worker_games_total", event="lost") == 1, 30, "node's game lost")
        assert metric(node_port, "oracle_worker_game_moves_total", move="bisect") >= 1
        if kill != "node":
            assert metric(node_port, "oracle_worker_games_total", event="opened") == 1
    finally:
        for p in procs.values():
            stop(p)
    assert gs.game.functions.gameCount().call() == game_id == 1, "one game, one bond"
    assert gs.client.status_of(rid).name == "FRAUD_PROVEN"
    assert gs.client.stake_of(gs.operator).staked == staked - BOND
    assert gs.client.credits_of(gs.challenger) == BOND - BOND // 2 + FEE
    assert gs.game.functions.GAME_BOND().call() == GAME_BOND


@pytest.mark.timeout(120)
def test_challenger_keeps_to_its_game_budget(gs: GameSystem, tmp_path: Path) -> None:
    """A game whose bond is over the challenger's ``max_game_bond`` is not opened: the claim is marked
    ``game_lost`` with the reason (an alarm), and no bond leaves the account."""
    rid, x = gs.request(22)
    gs.client.submit(gs.operator, rid, Trace.from_input_bytes(gs.program, x, perturb_at(LIE_AT)).output_bytes())
    models = ModelStore(tmp_path / "models", max_model_bytes=64 * 2**20, max_tensor_bytes=16 * 2**20)
    config = ChallengerConfig(poll_interval=0.1, start_block=gs.deployment.block, audit_models=False,
                              games=GamePolicy(max_game_bond=GAME_BOND - 1))
    daemon = Daemon(Challenger(gs.client, Store(tmp_path / "c.sqlite3"), ClaimVerifier(gs.client, models),
                               gs.challenger, config)).start()
    try:
        wait_until(lambda: state_of(daemon, rid) is ClaimState.GAME_LOST, 90, "the claim given up")
        claim = daemon.claim(rid)
        assert claim is not None and claim.error is not None and "max_game_bond" in claim.error
        reg = daemon.challenger.metrics.registry
        assert reg.get_sample_value("challenger_alarms_total", {"kind": "game_lost"}) == 1
        assert reg.get_sample_value("challenger_games_total", {"event": "lost"}) == 1
    finally:
        daemon.stop()
    assert not daemon.died
    assert gs.game.functions.gameCount().call() == 0
