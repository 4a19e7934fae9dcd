"""Listener: ingests ``InferenceRequested`` events from confirmed blocks, in bounded ranges, reorg-safe.

Each poll reads ``[cursor + 1, min(head - confirmations, cursor + block_range)]``. It checks that the first
block's ``parentHash`` is the cursor's hash (else: a reorg), fetches the logs, checks that every log's block
hash is the canonical one and that the range's last block did not change meanwhile, then stores the new jobs,
the seen blocks and the new cursor in one SQLite transaction. Ingesting is idempotent per request id.

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

    def _header(self, number: int) -> dict[str, Any] | None:
        try:
            b = self.rpc.w3.eth.get_block(number)
        except Exception as exc:  # noqa: BLE001 - BlockNotFound on some nodes, None on others
            if type(exc).__name__ == "BlockNotFound":
                return None
            raise
        return dict(b) if b is not None else None

    def _init_cursor(self, head: Head) -> tuple[int, str]:
        start = self.start_block if self.start_block is not None else max(0, head.number - self.confirmations)
        if start <= 0:
            return (-1, ZERO_HASH)
        h = self._header(start - 1)
        if h is None:
            return (-1, ZERO_HASH)
        return (start - 1, h["hash"].to_0x_hex())

    def poll(self, head: Head) -> PollResult:
        cur = self.db.cursor()
        if cur is None:
            cur = self._init_cursor(head)
            self.db.advance([], [cur] if cur[0] >= 0 else [], cur)
        safe = head.number - self.confirmations
        number, chash = cur
        if number > safe:
            # Our cursor is above the (confirmed) head: a lagging endpoint or a reorg to a shorter chain.
            depth = self._check_reorg(cur, head)
            return PollResult(0, depth, self.db.cursor()[0] if depth else number, False)  # type: ignore[index]
        frm, to = number + 1, min(safe, number + self.block_range)
        if frm > to:
            return PollResult(0, 0, number, True)
        first = self._header(frm)
        last = self._header(to) if to != frm else first
        if first is None or last is None:
            return PollResult(0, 0, number, False)
        if number >= 0 and first["parentHash"].to_0x_hex() != chash:
            depth = self._check_reorg(cur, head)
            return PollResult(0, depth, self.db.cursor()[0], False)  # type: ignore[index]
        events = self.rpc.client.requested_events(frm, to)
        headers: dict[int, dict[str, Any]] = {frm: first, to: last}
        jobs: list[NewJob] = []
        for ev in events:
            hdr = headers.get(ev.block_number)
            if hdr is None:
                hdr = self._header(ev.block_number)
                if hdr is None:
                    return PollResult(0, 0, number, False)
                headers[ev.block_number] = hdr
            if HexBytes(ev.block_hash) != hdr["hash"]:
                log.info("listener_range_changed", from_block=frm, to_block=to)
                return PollResult(0, 0, number, False)
            jobs.append(NewJob(ev.request_id, ev.model_id, ev.requester, ev.fee, ev.input, ev.block_number,
                               hdr["hash"].to_0x_hex(), int(hdr["timestamp"])))
        again = self._header(to)
        if again is None or again["hash"] != last["hash"]:
            log.info("listener_range_changed", from_block=frm, to_block=to)
            return PollResult(0, 0, number, False)
        if self.on_range is not None:
            self.on_range(frm, to)
        blocks = [(n, h["hash"].to_0x_hex()) for n, h in headers.items()]
        new = self.db.advance(jobs, blocks, (to, last["hash"].to_0x_hex()))
        if new:
            self.metrics.requests_seen.inc(new)
            log.info("requests_ingested", count=new, from_block=frm, to_block=to)
        return PollResult(new, 0, to, to >= safe)

    def _check_reorg(self, cur: tuple[int, str], head: Head) -> int:
        """Finds the fork point if the cursor's block is no longer canonical; returns the rollback depth."""
        number, chash = cur
        if number < 0:
            return 0
        if number > head.number:
            return 0  # a lagging endpoint, or a shorter branch: wait until the chain passes our cursor
        canon = self._header(number)
        if canon is None or canon["hash"].to_0x_hex() == chash:
            return 0
        fork: tuple[int, str] | None = None
        oldest = number
        for n, h in self.db.recent_blocks():
            oldest = n
            if n > head.number:
                continue
            canon = self._header(n)
            if canon is not None and canon["hash"].to_0x_hex() == h:
                fork = (n, h)
                break
        if fork is None:
            n = max(-1, min(oldest, head.number) - 1)
            canon = self._header(n) if n >= 0 else None
            fork = (n, canon["hash"].to_0x_hex() if canon else ZERO_HASH)
        depth = number - fork[0]
        undone = self.db.rollback_to(*fork)
        self.metrics.reorgs.inc()
        log.warning("reorg_detected", depth=depth, fork_block=fork[0], **undone)
        return depth
