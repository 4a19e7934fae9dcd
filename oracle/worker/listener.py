"""Listener: ingests ``InferenceRequested`` events from confirmed blocks, in bounded ranges, reorg-safe.

Each poll reads ``[cursor + 1, min(head - confirmations, cursor + range)]`` in a constant number of round trips
(headers come in JSON-RPC batches, never one per event). It checks that the first block's ``parentHash`` is the
cursor's hash (else: a reorg), fetches the request and submission logs, checks that every log's block hash is the
canonical one and that the range's last block did not change meanwhile, then stores the new jobs, the seen
blocks and the new cursor in one SQLite transaction. Ingesting is idempotent per request id. A failed poll halves
the range of the next one (back up to ``block_range`` as polls succeed), so progress persists under faults.
Submissions by other operators in the range mark our not-yet-sent jobs for them ``lost`` without an RPC each.

On a reorg it walks back through the remembered blocks to the highest one still canonical (the fork point),
and :meth:`oracle.worker.db.Database.rollback_to` orphans requests and re-queues submissions from the
dropped blocks; the next polls re-read the new branch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from hexbytes import HexBytes

from oracle.worker.db import Database, NewJob
from oracle.worker.metrics import Metrics
from oracle.worker.rpc import Head, Rpc

log = structlog.get_logger("oracle.worker.listener")

ZERO_HASH = "0x" + "00" * 32
#: remembered blocks compared with the chain per round trip while walking back to a fork point
REORG_WALK_BATCH = 32


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
        self.confirmations = confirmations
        self.block_range = block_range
        self.start_block = start_block
        #: our operator address: submissions in a polled range by anyone else mark our jobs for them lost
        self.address = address
        self._range = block_range
        #: called with each confirmed range before the cursor moves past it (the submitter re-checks that its
        #: own transactions mined there are still canonical: they may have been in a block the listener never saw)
        self.on_range = on_range

    def _header(self, number: int) -> dict[str, Any] | None:
        """One header as ``{"hash", "parentHash", "timestamp"}`` (0x-hex hashes), None if the node lacks it."""
        return self.rpc.blocks([number])[number]

    def _init_cursor(self, head: Head) -> tuple[int, str]:
        start = self.start_block if self.start_block is not None else max(0, head.number - self.confirmations)
        if start <= 0:
            return (-1, ZERO_HASH)
        h = self._header(start - 1)
        if h is None:
            return (-1, ZERO_HASH)
        return (start - 1, h["hash"])

    def poll(self, head: Head) -> PollResult:
        """One bounded range, in a constant number of round trips whatever it holds: a batch of its first and
        last headers, the request and submission logs, then one batch of the headers the logs name (plus the
        last one again). A failed poll halves the next range; every successful one persists its progress."""
        cur = self.db.last_block()
        if cur is None:
            cur = self._init_cursor(head)
            self.db.advance([], [cur] if cur[0] >= 0 else [], cur)
        safe = head.number - self.confirmations
        number, chash = cur
        if number > safe:
            # Our cursor is above the (confirmed) head: a lagging endpoint or a reorg to a shorter chain.
            depth = self._check_reorg(cur, head)
            return PollResult(0, depth, self.db.last_block()[0] if depth else number, False)  # type: ignore[index]
        frm, to = number + 1, min(safe, number + self._range)
        if frm > to:
            return PollResult(0, 0, number, True)
        try:
            result = self._poll_range(cur, frm, to, head, safe)
        except Exception:
            self._range = max(1, self._range // 2)  # a smaller range next time: fewer logs, sooner progress
            raise
        if result.cursor == to:
            self._range = min(self.block_range, self._range * 2)
        return result

    def _poll_range(self, cur: tuple[int, str], frm: int, to: int, head: Head, safe: int) -> PollResult:
        number, chash = cur
        ends = self.rpc.blocks([frm, to])
        first, last = ends[frm], ends[to]
        if first is None or last is None:
            return PollResult(0, 0, number, False)
        if number >= 0 and first["parentHash"] != chash:
            depth = self._check_reorg(cur, head)
            return PollResult(0, depth, self.db.last_block()[0], False)  # type: ignore[index]
        events = self.rpc.client.requested_events(frm, to)
        submitted = self.rpc.client.submitted_events(frm, to)
        wanted = {ev.block_number for ev in events} | {ev.block_number for ev in submitted} | {to}
        headers = self.rpc.blocks(sorted(wanted))  # read after the logs: a change meanwhile shows up here
        again = headers[to]
        if again is None or again["hash"] != last["hash"]:
            log.info("listener_range_changed", from_block=frm, to_block=to)
            return PollResult(0, 0, number, False)
        headers[frm] = first
        jobs: list[NewJob] = []
        for ev in events:
            hdr = headers.get(ev.block_number)
            if hdr is None or HexBytes(ev.block_hash) != HexBytes(hdr["hash"]):
                log.info("listener_range_changed", from_block=frm, to_block=to)
                return PollResult(0, 0, number, False)
            assignee = "" if int(ev.assignee, 16) == 0 else ev.assignee.lower()
            jobs.append(NewJob(ev.request_id, ev.model_id, ev.requester, ev.fee, ev.input, ev.block_number,
                               hdr["hash"], int(hdr["timestamp"]), assignee))
        me = self.address or self.db.get_meta("account")  # the submitter records its account at setup
        me = me.lower() if me else None
        lost: list[tuple[int, int, str]] = []
        for sub in submitted:
            hdr = headers.get(sub.block_number)
            if hdr is None or HexBytes(sub.block_hash) != HexBytes(hdr["hash"]):
                log.info("listener_range_changed", from_block=frm, to_block=to)
                return PollResult(0, 0, number, False)
            if me is not None and sub.operator.lower() != me:
                lost.append((sub.request_id, sub.block_number, sub.operator))
        if self.on_range is not None:
            self.on_range(frm, to)
        blocks = [(n, h["hash"]) for n, h in headers.items() if h is not None]
        new, n_lost = self.db.ingest(jobs, blocks, (to, last["hash"]), lost)
        if new:
            self.metrics.requests_seen.inc(new)
            log.info("requests_ingested", count=new, from_block=frm, to_block=to)
        if n_lost:
            self.metrics.requests_lost.inc(n_lost)
            log.info("requests_lost", count=n_lost, from_block=frm, to_block=to)
        return PollResult(new, 0, to, to >= safe)

    def _check_reorg(self, cur: tuple[int, str], head: Head) -> int:
        """Finds the fork point if the cursor's block is no longer canonical; returns the rollback depth."""
        number, chash = cur
        if number < 0:
            return 0
        if number > head.number:
            return 0  # a lagging endpoint, or a shorter branch: wait until the chain passes our cursor
        canon = self._header(number)
        if canon is None or canon["hash"] == chash:
            return 0
        fork: tuple[int, str] | None = None
        oldest = number
        remembered = [(n, h) for n, h in self.db.recent_blocks() if n <= head.number]  # newest first
        for i in range(0, len(remembered), REORG_WALK_BATCH):  # one round trip per batch of blocks walked back
            chunk = remembered[i:i + REORG_WALK_BATCH]
            canon_of = self.rpc.blocks([n for n, _ in chunk])
            for n, h in chunk:
                oldest = n
                canon = canon_of[n]
                if canon is not None and canon["hash"] == h:
                    fork = (n, h)
                    break
            if fork is not None:
                break
        if fork is None:
            n = max(-1, min(oldest, head.number) - 1)
            canon = self._header(n) if n >= 0 else None
            fork = (n, canon["hash"] if canon else ZERO_HASH)
        depth = number - fork[0]
        undone = self.db.rollback_to(*fork)
        self.metrics.reorgs.inc()
        log.warning("reorg_detected", depth=depth, fork_block=fork[0], **undone)
        return depth
