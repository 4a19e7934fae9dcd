"""Listener: ingests ``InferenceRequested`` events from confirmed blocks, in bounded ranges, reorg-safe.

The block-following logic is :class:`oracle.chain.follower.Follower` (shared with the challenger): each poll
reads ``[cursor + 1, min(head - confirmations, cursor + block_range)]``, checks that the first block's
``parentHash`` is the cursor's hash, that every log carries its block's canonical hash and that the range's
last block did not change meanwhile; the listener then stores the new jobs, the seen blocks and the new cursor
in one SQLite transaction. Ingesting is idempotent per request id.

On a reorg (also one that replaced the cursor's block at the same height) the follower walks back through
the remembered blocks to the highest one still canonical (the fork point), and
:meth:`oracle.worker.db.Database.rollback_to` orphans requests and re-queues submissions from the dropped
blocks; the next polls re-read the new branch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import structlog

from oracle.chain.follower import Follower, Fork
from oracle.worker.db import Database, NewJob
from oracle.worker.metrics import Metrics
from oracle.worker.rpc import Head, Rpc

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
                 on_range: Callable[[int, int], None] | None = None) -> None:
        self.rpc = rpc
        self.db = db
        self.metrics = metrics
        self.confirmations = confirmations
        self.block_range = block_range
        self.start_block = start_block
        #: called with each confirmed range before the cursor moves past it (the submitter re-checks that its
        #: own transactions mined there are still canonical: they may have been in a block the listener never saw)
        self.on_range = on_range

    def _follower(self) -> Follower:
        # Built per poll: the node may have rotated ``rpc.w3`` to another endpoint since the last one.
        return Follower(self.rpc.w3, self.db, confirmations=self.confirmations, block_range=self.block_range,
                        start_block=self.start_block)

    def poll(self, head: Head) -> PollResult:
        follower = self._follower()
        if self.db.cursor() is None:
            cur = follower.initial_cursor(head.number)
            self.db.advance([], [cur] if cur[0] >= 0 else [], cur)
        safe = head.number - self.confirmations
        step = follower.step(self.rpc.client.requested_events, head.number)
        if isinstance(step, Fork):
            undone = self.db.rollback_to(step.number, step.hash)
            self.metrics.reorgs.inc()
            log.warning("reorg_detected", depth=step.depth, fork_block=step.number, **undone)
            return PollResult(0, step.depth, step.number, False)
        if step is None:  # caught up, ahead of a lagging endpoint, or the range changed while read
            number = self.db.cursor()[0]  # type: ignore[index]
            return PollResult(0, 0, number, number == safe)
        hashes = dict(step.blocks)
        jobs = [NewJob(ev.request_id, ev.model_id, ev.requester, ev.fee, ev.input, ev.block_number,
                       hashes[ev.block_number], step.timestamps[ev.block_number]) for ev in step.events]
        if self.on_range is not None:
            self.on_range(step.first, step.last)
        new = self.db.advance(jobs, step.blocks, step.cursor)
        if new:
            self.metrics.requests_seen.inc(new)
            log.info("requests_ingested", count=new, from_block=step.first, to_block=step.last)
        return PollResult(new, 0, step.last, step.last >= safe)
