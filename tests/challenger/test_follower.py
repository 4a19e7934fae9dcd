"""The generic chain follower on a real anvil: ranges with canonical events, the fork point found by hash
after reorgs of the same height and deeper, and nothing but canonical blocks remembered."""

from __future__ import annotations

from typing import Any

from web3 import Web3

from oracle.chain.follower import Follower, Fork, Range


class Log:
    """An in-memory BlockLog standing in for a caller's store."""

    def __init__(self) -> None:
        self.blocks: dict[int, str] = {}
        self.cur: tuple[int, str] | None = None

    def last_block(self) -> tuple[int, str] | None:
        return self.cur

    def recent_blocks(self) -> list[tuple[int, str]]:
        return sorted(self.blocks.items(), reverse=True)

    def commit(self, r: Range) -> None:
        self.blocks.update(dict(r.blocks))
        self.blocks[r.last] = r.last_hash
        self.cur = r.cursor

    def rollback(self, f: Fork) -> None:
        self.blocks = {n: h for n, h in self.blocks.items() if n <= f.number}
        self.cur = (f.number, f.hash)


class Ev:
    def __init__(self, block: Any) -> None:
        self.block_number = int(block["number"])
        self.block_hash = bytes(block["hash"])


def events(w3: Web3, first: int, last: int) -> list[Ev]:
    return [Ev(w3.eth.get_block(n)) for n in range(first, last + 1) if w3.eth.get_block(n)["transactions"]]


def follow(f: Follower, log: Log, w3: Web3) -> list[Fork]:
    forks = []
    for _ in range(100):
        step = f.step(lambda a, b: events(w3, a, b))
        if step is None:
            return forks
        if isinstance(step, Fork):
            log.rollback(step)
            forks.append(step)
        else:
            log.commit(step)
    raise AssertionError("the follower never caught up")


def canonical(w3: Web3, log: Log) -> bool:
    return all(Web3.to_hex(w3.eth.get_block(n)["hash"]) == h for n, h in log.blocks.items())


def test_follows_and_finds_fork_points_by_hash(w3: Web3) -> None:
    a = w3.eth.accounts
    start = w3.eth.block_number + 1
    for _ in range(6):
        w3.eth.send_transaction({"from": a[0], "to": a[1], "value": 1})
    log = Log()
    f = Follower(w3, log, block_range=2, start_block=start)
    assert follow(f, log, w3) == [] and log.cur is not None and log.cur[0] == w3.eth.block_number
    assert canonical(w3, log)

    # Same height, last block replaced: found although the head did not move.
    head = w3.eth.block_number
    w3.provider.make_request("anvil_reorg", [1, []])  # type: ignore[arg-type]
    assert w3.eth.block_number == head
    (fork,) = follow(f, log, w3)
    assert fork.number == head - 1 and fork.depth == 1
    assert canonical(w3, log) and log.cur[0] == head

    # Deeper, then the chain grows past the old head: one fork, at the highest block still canonical.
    w3.provider.make_request("anvil_reorg", [4, []])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    (fork,) = follow(f, log, w3)
    assert fork.number == head - 4
    assert canonical(w3, log) and log.cur[0] == w3.eth.block_number
