"""Following the chain reorg-safely with a persisted (number, hash) cursor: the one follower of the project.

The worker's listener, the challenger and the dashboard's indexer each drive a :class:`Follower` and supply
their own fold (what to store from a range's events) and rollback (what to undo above a fork point).

A :class:`Follower` hands out confirmed block ranges ``[cursor + 1, min(head - confirmations, cursor + range)]``
one :meth:`~Follower.step` at a time, in a constant number of round trips whatever the range holds: one batch
with the range's first and last headers, the caller's log queries, then one batch with the headers the logs
name plus the last one again. It checks that the range's first block's ``parentHash`` is the cursor's hash,
that every event carries the canonical hash of its block and that the range's last block did not change while
it read; only then does it return the range with the (number, hash) of every block it saw. The caller stores
its data, those blocks and the new cursor in one transaction (:class:`BlockLog`).

A step that raises halves the next range (back up to ``block_range`` as steps succeed), so a node that cannot
serve wide log queries still lets the cursor move on.

When the cursor's block is no longer canonical (also when the chain was replaced at the *same* height, as a
one-block reorg does) it walks back through the remembered blocks, newest first and a batch of headers per
round trip, to the highest one still canonical: the fork point. The caller rolls back to it and keeps
everything at or below it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from web3 import Web3

log = structlog.get_logger("oracle.chain.follower")

ZERO_HASH = "0x" + "00" * 32
#: remembered blocks compared with the chain per round trip while walking back to a fork point
WALK_BATCH = 32

#: headers of some block numbers in one round trip: ``{n: {"hash", "parentHash", "timestamp", ...} | None}``
Headers = Callable[[Sequence[int]], dict[int, dict[str, Any] | None]]


class BlockLog(Protocol):
    """What a follower needs from its caller's store."""

    def last_block(self) -> tuple[int, str] | None:
        """(number, hash) of the last processed block, None before the first."""
        ...

    def recent_blocks(self) -> list[tuple[int, str]]:
        """Remembered (number, hash) pairs, newest first."""
        ...


class Event(Protocol):
    @property
    def block_number(self) -> int: ...

    @property
    def block_hash(self) -> bytes: ...


@dataclass(frozen=True)
class Range:
    first: int
    last: int
    last_hash: str
    events: list[Any]
    #: (number, hash) of every block read in this range (its ends and the blocks of its events)
    blocks: list[tuple[int, str]]
    timestamps: dict[int, int] = field(default_factory=dict)
    #: True when the range reaches the confirmed head
    caught_up: bool = False

    @property
    def cursor(self) -> tuple[int, str]:
        return (self.last, self.last_hash)


@dataclass(frozen=True)
class Fork:
    number: int
    hash: str
    depth: int


def _hex(h: Any) -> str:
    return h if isinstance(h, str) else Web3.to_hex(h)


def web3_headers(w3: Web3) -> Headers:
    """A :data:`Headers` source reading through ``w3`` one block at a time (None for a block the node lacks)."""

    def headers(numbers: Sequence[int]) -> dict[int, dict[str, Any] | None]:
        out: dict[int, dict[str, Any] | None] = {}
        for n in sorted(set(numbers)):
            try:
                b = w3.eth.get_block(n)
            except Exception as exc:  # noqa: BLE001 - BlockNotFound on some nodes, None on others
                if type(exc).__name__ != "BlockNotFound":
                    raise
                b = None
            out[n] = dict(b) if b is not None else None
        return out

    return headers


class Follower:
    def __init__(self, w3: Web3 | None, blocks: BlockLog, *, confirmations: int = 0, block_range: int = 500,
                 start_block: int | None = None, headers: Headers | None = None) -> None:
        if headers is None and w3 is None:
            raise ValueError("a follower needs a web3 connection or a headers source")
        self.headers: Headers = headers if headers is not None else web3_headers(w3)  # type: ignore[arg-type]
        self.w3 = w3
        self.blocks = blocks
        self.confirmations = confirmations
        self.block_range = block_range
        self.start_block = start_block
        #: the next range's width: halved after a failed step, doubled back after a full one
        self.range = block_range

    def header(self, number: int) -> dict[str, Any] | None:
        return self.headers([number])[number]

    def initial_cursor(self, head: int) -> tuple[int, str]:
        start = self.start_block if self.start_block is not None else max(0, head - self.confirmations)
        h = self.header(start - 1) if start > 0 else None
        return (start - 1, _hex(h["hash"])) if h is not None else (-1, ZERO_HASH)

    def step(self, fetch: Callable[[int, int], Sequence[Event]], head: int | None = None) -> Range | Fork | None:
        """One range of new events, a fork point to roll back to, or None (caught up, or nothing safe to read).
        ``head``: the chain head if the caller already knows it (e.g. from its own failover RPC)."""
        if head is None:
            if self.w3 is None:
                raise ValueError("step needs the head when the follower has no web3 connection")
            head = int(self.w3.eth.block_number)
        safe = head - self.confirmations
        cur = self.blocks.last_block() or self.initial_cursor(head)
        number = cur[0]
        if number >= safe:
            # Caught up (or ahead of a lagging endpoint): the cursor's block may still have been replaced.
            return self.find_fork(cur, head)
        last_n = min(safe, number + self.range)
        try:
            got = self._read(cur, number + 1, last_n, fetch, head)
        except Exception:
            self.range = max(1, self.range // 2)  # a smaller range next time: fewer logs, sooner progress
            raise
        if isinstance(got, Range):
            got = Range(got.first, got.last, got.last_hash, got.events, got.blocks, got.timestamps,
                        caught_up=got.last >= safe)
            if got.last - got.first + 1 >= self.range:
                self.range = min(self.block_range, self.range * 2)
        return got

    def _read(self, cur: tuple[int, str], first_n: int, last_n: int, fetch: Callable[[int, int], Sequence[Event]],
              head: int) -> Range | Fork | None:
        ends = self.headers([first_n, last_n])
        first, last = ends[first_n], ends[last_n]
        if first is None or last is None:
            return None
        if cur[0] >= 0 and _hex(first["parentHash"]) != cur[1]:
            return self.find_fork(cur, head)
        events = list(fetch(first_n, last_n))
        # read after the logs: a block that changed meanwhile shows up as a hash mismatch or a new last hash
        headers = self.headers(sorted({ev.block_number for ev in events} | {last_n}))
        again = headers[last_n]
        if again is None or _hex(again["hash"]) != _hex(last["hash"]):
            log.info("follower_range_changed", from_block=first_n, to_block=last_n)
            return None
        headers[first_n] = first
        for ev in events:
            hdr = headers.get(ev.block_number)
            if hdr is None or _hex(ev.block_hash) != _hex(hdr["hash"]):
                log.info("follower_range_changed", from_block=first_n, to_block=last_n)
                return None
        seen = {n: h for n, h in headers.items() if h is not None}
        return Range(first_n, last_n, _hex(last["hash"]), events,
                     sorted((n, _hex(h["hash"])) for n, h in seen.items()),
                     {n: int(h["timestamp"]) for n, h in seen.items()})

    def find_fork(self, cur: tuple[int, str], head: int) -> Fork | None:
        """The highest remembered block that is still canonical, if the cursor's block is not."""
        number, chash = cur
        if number < 0 or number > head:
            return None  # a lagging endpoint or a shorter branch: wait until the chain passes the cursor
        canon = self.header(number)
        if canon is None or _hex(canon["hash"]) == chash:
            return None
        oldest = number
        remembered = [(n, h) for n, h in self.blocks.recent_blocks() if n <= head]  # newest first
        for i in range(0, len(remembered), WALK_BATCH):  # one round trip per batch of blocks walked back
            chunk = remembered[i:i + WALK_BATCH]
            canon_of = self.headers([n for n, _ in chunk])
            for n, h in chunk:
                oldest = n
                c = canon_of[n]
                if c is not None and _hex(c["hash"]) == h:
                    return Fork(n, h, number - n)
        n = max(-1, min(oldest, head) - 1)
        canon = self.header(n) if n >= 0 else None
        return Fork(n, _hex(canon["hash"]) if canon else ZERO_HASH, number - n)
