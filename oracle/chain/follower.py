"""Following the chain reorg-safely with a persisted (number, hash) cursor.

A :class:`Follower` hands out confirmed block ranges ``[cursor + 1, min(head - confirmations, cursor + range)]``
one :meth:`~Follower.step` at a time. It checks that the range's first block's ``parentHash`` is the cursor's
hash, that every event it fetched carries the canonical hash of its block and that the range's last block did
not change while it read; only then does it return the range with the (number, hash) of every block it saw.
The caller stores its data, those blocks and the new cursor in one transaction (:class:`BlockLog`).

When the cursor's block is no longer canonical (also when the chain was replaced at the *same* height, as a
one-block reorg does) it walks back through the remembered blocks, newest first, to the highest one still
canonical: the fork point. The caller rolls back to it and keeps everything at or below it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from web3 import Web3

log = structlog.get_logger("oracle.chain.follower")

ZERO_HASH = "0x" + "00" * 32


class BlockLog(Protocol):
    """What a follower needs from its caller's store."""

    def last_block(self) -> tuple[int, str] | None:
        """(number, hash) of the last processed block, None before the first."""
        ...

    def recent_blocks(self) -> list[tuple[int, str]]:
        """Remembered (number, hash) pairs, newest first."""
        ...


class Event(Protocol):
    block_number: int
    block_hash: bytes


@dataclass(frozen=True)
class Range:
    first: int
    last: int
    last_hash: str
    events: list[Any]
    #: (number, hash) of every block read in this range (its ends and the blocks of its events)
    blocks: list[tuple[int, str]]
    timestamps: dict[int, int] = field(default_factory=dict)

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


class Follower:
    def __init__(self, w3: Web3, blocks: BlockLog, *, confirmations: int = 0, block_range: int = 500,
                 start_block: int | None = None) -> None:
        self.w3 = w3
        self.blocks = blocks
        self.confirmations = confirmations
        self.block_range = block_range
        self.start_block = start_block

    def header(self, number: int) -> dict[str, Any] | None:
        try:
            b = self.w3.eth.get_block(number)
        except Exception as exc:  # noqa: BLE001 - BlockNotFound on some nodes, None on others
            if type(exc).__name__ == "BlockNotFound":
                return None
            raise
        return dict(b) if b is not None else None

    def initial_cursor(self, head: int) -> tuple[int, str]:
        start = self.start_block if self.start_block is not None else max(0, head - self.confirmations)
        h = self.header(start - 1) if start > 0 else None
        return (start - 1, _hex(h["hash"])) if h is not None else (-1, ZERO_HASH)

    def step(self, fetch: Callable[[int, int], Sequence[Event]], head: int | None = None) -> Range | Fork | None:
        """One range of new events, a fork point to roll back to, or None (caught up, or nothing safe to read).
        ``head``: the chain head if the caller already knows it (e.g. from its own failover RPC)."""
        head = int(self.w3.eth.block_number) if head is None else head
        safe = head - self.confirmations
        cur = self.blocks.last_block() or self.initial_cursor(head)
        number, chash = cur
        if number >= safe:
            # Caught up (or ahead of a lagging endpoint): the cursor's block may still have been replaced.
            return self.find_fork(cur, head)
        first_n, last_n = number + 1, min(safe, number + self.block_range)
        first = self.header(first_n)
        last = self.header(last_n) if last_n != first_n else first
        if first is None or last is None:
            return None
        if number >= 0 and _hex(first["parentHash"]) != chash:
            return self.find_fork(cur, head)
        events = list(fetch(first_n, last_n))
        headers: dict[int, dict[str, Any]] = {first_n: first, last_n: last}
        for ev in events:
            hdr = headers.get(ev.block_number)
            if hdr is None:
                hdr = self.header(ev.block_number)
                if hdr is None:
                    return None
                headers[ev.block_number] = hdr
            if _hex(ev.block_hash) != _hex(hdr["hash"]):
                log.info("follower_range_changed", from_block=first_n, to_block=last_n)
                return None
        again = self.header(last_n)
        if again is None or again["hash"] != last["hash"]:
            log.info("follower_range_changed", from_block=first_n, to_block=last_n)
            return None
        return Range(first_n, last_n, _hex(last["hash"]), events,
                     sorted((n, _hex(h["hash"])) for n, h in headers.items()),
                     {n: int(h["timestamp"]) for n, h in headers.items()})

    def find_fork(self, cur: tuple[int, str], head: int) -> Fork | None:
        """The highest remembered block that is still canonical, if the cursor's block is not."""
        number, chash = cur
        if number < 0 or number > head:
            return None  # a lagging endpoint or a shorter branch: wait until the chain passes the cursor
        canon = self.header(number)
        if canon is None or _hex(canon["hash"]) == chash:
            return None
        oldest = number
        for n, h in self.blocks.recent_blocks():
            oldest = n
            if n > head:
                continue
            canon = self.header(n)
            if canon is not None and _hex(canon["hash"]) == h:
                return Fork(n, h, number - n)
        n = max(-1, min(oldest, head) - 1)
        canon = self.header(n) if n >= 0 else None
        return Fork(n, _hex(canon["hash"]) if canon else ZERO_HASH, number - n)
