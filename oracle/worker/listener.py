"""Listener: the worker's fold over :class:`oracle.chain.follower.Follower` ranges of ``InferenceRequested``
(and ``ResultSubmitted``) events.

The follower hands out confirmed, reorg-checked ranges in a constant number of round trips (headers in
JSON-RPC batches, never one per event) and halves its range after a failed poll, so progress persists under
faults. For each range the listener stores the new jobs, the seen blocks and the new cursor in one SQLite
transaction; ingesting is idempotent per request id. Submissions by other operators in the range mark our
not-yet-sent jobs for them ``lost`` without an RPC each.

On a fork point the follower found by hash, :meth:`oracle.worker.db.Database.rollback_to` orphans requests
and re-queues submissions from the dropped blocks; the next polls re-read the new branch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from oracle.chain.follower import Follower, Fork
from oracle.chain.types import Head, ResultSubmitted
from oracle.worker.db import Database
from oracle.worker.job import NewJob
from oracle.worker.metrics import Metrics
from oracle.worker.rpc import Rpc

log = structlog.get_logger("oracle.worker.listener")


@dataclass(frozen=True)
class PollResult:
    new_jobs: int
    reorg_depth: int
    cursor: int
    caught_up: bool


class Listener:
    def __init__(self, rpc: Rpc, db: Database, metrics: Metrics, *, confirmations: int = 0,
                 block_range: int = 500, start_block: int | None = None,
                 on_range: Callable[[int, int], None] | None = None, address: str | None = None) -> None:
        self.rpc = rpc
        self.db = db
        self.metrics = metrics
        self.follower = Follower(None, db, confirmations=confirmations, block_range=block_range,
                                 start_block=start_block, headers=rpc.blocks)
        #: our operator address: submissions in a polled range by anyone else mark our jobs for them lost
        self.address = address
        #: called with each confirmed range before the cursor moves past it (the submitter re-checks that its
        #: own transactions mined there are still canonical: they may have been in a block the listener never saw)
        self.on_range = on_range

    def _events(self, frm: int, to: int) -> Sequence[Any]:
        return [*self.rpc.client.requested_events(frm, to), *self.rpc.client.submitted_events(frm, to)]

    def poll(self, head: Head) -> PollResult:
        """One bounded range (see :class:`~oracle.chain.follower.Follower`); a failed poll raises and halves
        the next range, every successful one persists its progress."""
        if self.db.last_block() is None:
            cur = self.follower.initial_cursor(head.number)
            self.db.advance([], [cur] if cur[0] >= 0 else [], cur)
        step = self.follower.step(self._events, head.number)
        if step is None:
            number = self.db.last_block()[0]  # type: ignore[index]
            return PollResult(0, 0, number, number >= head.number - self.follower.confirmations)
        if isinstance(step, Fork):
            undone = self.db.rollback_to(step.number, step.hash)
            self.metrics.reorgs.inc()
            log.warning("reorg_detected", depth=step.depth, fork_block=step.number, **undone)
            return PollResult(0, step.depth, step.number, False)
        jobs: list[NewJob] = []
        lost: list[tuple[int, int, str]] = []
        me = self.address or self.db.get_meta("account")  # the submitter records its account at setup
        me = me.lower() if me else None
        hashes = dict(step.blocks)
        for ev in step.events:
            if isinstance(ev, ResultSubmitted):
                if me is not None and ev.operator.lower() != me:
                    lost.append((ev.request_id, ev.block_number, ev.operator))
            else:
                assignee = "" if int(ev.assignee, 16) == 0 else ev.assignee.lower()
                jobs.append(NewJob(ev.request_id, ev.model_id, ev.requester, ev.fee, ev.input, ev.block_number,
                                   hashes[ev.block_number], step.timestamps[ev.block_number], assignee))
        if self.on_range is not None:
            self.on_range(step.first, step.last)
        new, n_lost = self.db.ingest(jobs, step.blocks, step.cursor, lost)
        if new:
            self.metrics.requests_seen.inc(new)
            log.info("requests_ingested", count=new, from_block=step.first, to_block=step.last)
        if n_lost:
            self.metrics.requests_lost.inc(n_lost)
            log.info("requests_lost", count=n_lost, from_block=step.first, to_block=step.last)
        return PollResult(new, 0, step.last, step.caught_up)
