"""The operator's node plays the dispute game on its own (a real node process on anvil).

- an honest node against a lying challenger: the node answers every move and the challenger loses its bond
  (the node collects it);
- the same game with the node killed (``kill -9``) at a random move and restarted: it still wins;
- the same game with a 3-block reorg at a random move: it still wins.

(A lying node against the challenger daemon: ``test_challenger_plays.py``.)

Every game transaction of both sides is checked against the EIP-7825 cap.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from oracle.dispute.actors import Actor, GameView, Phase
from oracle.dispute.book import GameBook
from oracle.profile.trace import Trace, perturb_at
from oracle.worker.db import Database
from tests.dispute.conftest import BOND, GAME_BOND, GameSystem, gas_used
from tests.dispute.daemons import kill9, play_against, spawn_node, stop, wait_until


def _game_receipts(gs: GameSystem, game_id: int, sender: str) -> list[Any]:
    """Receipts of ``sender``'s transactions to the game since the game opened."""
    out = []
    for n in range(gs.w3.eth.block_number, 0, -1):
        block = gs.w3.eth.get_block(n, full_transactions=True)
        for tx in block["transactions"]:
            if tx["from"] == sender and tx["to"] == gs.game.address:
                out.append(gs.w3.eth.get_transaction_receipt(tx["hash"]))
        if any(e["args"]["gameId"] == game_id for e in gs.game.events.GameOpened().get_logs(
                from_block=n, to_block=n)):
            return out
    return out


def _book(tmp_path: Path) -> list[tuple[int, str]]:
    """The node's games table: (game id, state) per row."""
    games = Database(tmp_path / "node.sqlite3")
    try:
        return [(r.game_id, r.state) for r in GameBook(games.sql).rows()]
    finally:
        games.close()


@pytest.mark.timeout(180)
@pytest.mark.parametrize("kill_at", [None, "random", "reorg"])
def test_honest_node_beats_a_lying_challenger(gs: GameSystem, devnet: Any, tmp_path: Path,
                                              kill_at: str | None) -> None:
    """``random``: the node is killed (-9) at a random move and restarted; ``reorg``: at a random move a
    3-block reorg drops the last moves of both sides (the node's dropped moves come back through its
    transaction manager; a stale one reverts, which costs it gas, never the game)."""
    rid, x = gs.request(11)
    honest = Trace.from_input_bytes(gs.program, x)
    gs.client.submit(gs.operator, rid, honest.output_bytes())
    balance_before = gs.w3.eth.get_balance(gs.operator)
    staked_before = gs.client.stake_of(gs.operator).staked
    node = spawn_node(gs, devnet.url, tmp_path)
    liar = Actor(gs.w3, gs.game, gs.challenger, Trace.from_input_bytes(gs.program, x, perturb_at(23)), "challenger")
    try:
        game_id = liar.open(rid, x, GAME_BOND)
        # (a reorg at move 5 or later: an earlier one would take the game's opening away with it)
        kill_move = random.Random(7).randrange(5 if kill_at == "reorg" else 1, 9) if kill_at else -1
        seen = [0]

        def maybe_kill(g: GameView) -> None:
            nonlocal node
            seen[0] += 1
            if seen[0] == kill_move and kill_at == "reorg":
                gs.w3.provider.make_request("anvil_reorg", [3, []])  # type: ignore[arg-type]
            elif seen[0] == kill_move:
                kill9(node)
                node = spawn_node(gs, devnet.url, tmp_path)

        end = play_against(gs, game_id, liar, on_move=maybe_kill)
        assert end.phase is Phase.RESOLVED and not end.challenger_won
        assert not kill_at or seen[0] > kill_move, "the node was killed (or the chain reorganised) mid-game"
        wait_until(lambda: gs.game.functions.credits(gs.operator).call() == 0, 30, "the node withdrew its bond")
        # The node may withdraw in the step whose read of the game was one block too early to see it resolved;
        # its book says so one step later: wait for that (while it runs) before stopping it.
        wait_until(lambda: _book(tmp_path) == [(game_id, "won")], 30, "the node's book says won")
    finally:
        stop(node)
    assert gs.client.status_of(rid).name in ("SUBMITTED", "FINALIZABLE")  # the claim stands, the stake too
    assert gs.client.stake_of(gs.operator).staked == staked_before and gs.client.stake_of(gs.operator).locked >= BOND
    theirs = _game_receipts(gs, game_id, gs.operator)
    # (the one-step proof is permissionless: both sides may race to send it, the second one reverts)
    assert theirs and sum(r["status"] != 1 for r in theirs) <= (3 if kill_at == "reorg" else 1)
    gas_used(theirs + liar.receipts)
    if kill_at == "reorg":  # the reorg took moves of the node away and its transaction manager re-sent them
        assert "tx_resent_after_reorg" in (tmp_path / "node.log").read_text()
    gas_paid = sum(int(r["gasUsed"]) * int(r["effectiveGasPrice"]) for r in theirs)
    assert gs.w3.eth.get_balance(gs.operator) == balance_before + GAME_BOND - gas_paid
    assert _book(tmp_path) == [(game_id, "won")]

