"""The node defends its claims in the interactive dispute game (docs/protocol.md, "Dispute game (v2)").

Each node iteration with no transaction in flight, :meth:`Defender.step`:

1. finds the games opened against our claims since the last scan (``games_scanned`` in ``meta``; ids are read
   again after a reorg lowered ``gameCount``) and records them (:mod:`oracle.dispute.book`);
2. for each open game, reads it from the chain and plays our move, if we have one, from the trace the reference
   interpreter gives on the request's input (:class:`oracle.dispute.party.Party`: ``defend``, ``bisect``, the
   one-step proof when the disputed step is ours to prove), or ``timeout`` when the challenger's clock ran out;
3. withdraws the game bonds we won.

Every transaction goes through the node's one transaction manager (the Submitter, kind ``game``): stored
before it is broadcast, re-broadcast after ``kill -9``, re-sent after a reorg. One move at a time, and only
when nothing of ours is in flight, so a move is decided on the state its predecessor produced; a move that a
reorg or a restart made stale reverts in simulation and is never sent. The trace is recomputed after a
restart (deterministic: same program, same input, same reference), so nothing but bookkeeping is persisted.
"""

from __future__ import annotations

import structlog

from oracle.chain.types import Head
from oracle.dispute.actors import Phase
from oracle.dispute.book import GameBook
from oracle.dispute.party import Party, game_address, game_contract
from oracle.profile.trace import Tamper
from oracle.worker.db import Database
from oracle.worker.rpc import Rpc
from oracle.worker.submitter import Submitter

log = structlog.get_logger("oracle.worker.defender")


class Defender:
    def __init__(self, rpc: Rpc, db: Database, submitter: Submitter, tamper: Tamper | None = None) -> None:
        self.rpc = rpc
        self.db = db
        self.submitter = submitter
        self.book = GameBook(db.sql)
        address = game_address(rpc.client)
        self.party = None if address is None else Party(rpc.client, game_contract(rpc.w3, address),
                                                        submitter.address, "operator", tamper)

    def step(self, head: Head) -> int:
        """Scans for new games and sends at most one game transaction; returns how many were sent."""
        if self.party is None:
            return 0
        self._scan()
        for row in self.book.rows(open_only=True):
            g = self.party.view(row.game_id)
            if g is None:
                continue  # not on this chain (a reorg dropped its opening): looked at again next round
            if g.phase is Phase.RESOLVED:
                won = not g.challenger_won
                self.book.update(row.request_id, row.game_id, state="won" if won else "lost")
                self.party.forget(row.request_id)
                self.submitter.metrics.games.labels(event="won" if won else "lost").inc()
                log.warning("game_resolved", game=row.game_id, request_id=hex(row.request_id), won=won)
                continue
            job = self.db.job(row.request_id)
            nxt = self.party.next_call(row.game_id, g, job.input if job is not None else None)
            if nxt is None:
                continue
            what, fn = nxt
            if self.submitter.send("game", fn, [], None, head):
                last = self.db.all_txs()[-1:]
                self.book.update(row.request_id, row.game_id, tx_hash=last[0].tx_hash if last else None)
                self.submitter.metrics.game_moves.labels(move=what).inc()
                log.info("game_move", game=row.game_id, move=what, lo=g.lo, hi=g.hi)
                return 1
        if self.book.rows(limit=1) and self.party.credits() > 0:
            if self.submitter.send("game_withdraw", self.party.withdraw_call(), [], None, head):
                log.info("game_credits_withdrawn")
                return 1
        return 0

    def _scan(self) -> None:
        assert self.party is not None
        scanned = int(self.db.get_meta("games_scanned") or 0)
        count = int(self.party.game.functions.gameCount().call())
        if count < scanned:  # a reorg removed games: read the ids again
            scanned = count
        if count == scanned:
            return
        ours, count = self.party.games_from(scanned + 1)
        for gid, rid in ours:
            if self.book.add(rid, gid):
                self.submitter.metrics.games.labels(event="opened").inc()
                log.warning("game_opened_against_us", game=gid, request_id=hex(rid))
        self.db.set_meta("games_scanned", str(count))
