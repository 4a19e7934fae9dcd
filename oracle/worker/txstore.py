"""Persistence of the worker's signed transactions (a mixin of :class:`oracle.worker.db.Database`): every
transaction is stored before it is broadcast, with its jobs' new state, in one atomic write."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from oracle.worker.jobstate import JobState


def _rid(request_id: int) -> str:
    return f"0x{request_id:064x}"


class TxState(str, Enum):
    PENDING = "pending"  # stored; broadcast or about to be
    MINED = "mined"
    REPLACED = "replaced"  # another tx with the same nonce was mined, or this one was superseded
    DROPPED = "dropped"  # the nonce was used by something else / the tx vanished
    ORPHANED = "orphaned"  # mined in a block that was reorganised away


@dataclass(frozen=True)
class TxRecord:
    tx_hash: str
    nonce: int
    kind: str  # "submit" | "finalize" | "withdraw"
    request_ids: tuple[int, ...]
    raw: bytes
    max_fee: int
    priority_fee: int
    state: TxState
    block_number: int | None
    sent_at: float

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> TxRecord:
        return cls(r["tx_hash"], r["nonce"], r["kind"], tuple(int(x, 16) for x in json.loads(r["request_ids"])),
                   bytes(r["raw"]), r["max_fee"], r["priority_fee"], TxState(r["state"]), r["block_number"],
                   r["sent_at"])


class TxStore:
    """The ``txs`` table; needs the host's ``tx()``, ``_query`` and ``set_meta``."""

    if TYPE_CHECKING:
        def tx(self) -> AbstractContextManager[sqlite3.Connection]: ...
        def _query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]: ...
        def set_meta(self, key: str, value: str, conn: sqlite3.Connection | None = None) -> None: ...

    # ------------------------------------------------------------------ transactions
    def store_tx(self, rec: TxRecord, job_state: JobState | None, next_nonce: int) -> None:
        """Stores a signed transaction and moves its jobs, *before* the broadcast (one atomic write)."""
        now = time.time()
        with self.tx() as c:
            # A transaction re-signed after a reorg orphaned it can have exactly the same bytes (same nonce,
            # fees and calldata), hence the same hash: the record then comes back to life as pending.
            c.execute(
                "INSERT INTO txs(tx_hash, nonce, kind, request_ids, raw, max_fee, priority_fee, state, sent_at,"
                " updated_at) VALUES(?,?,?,?,?,?,?,?,?,?) ON CONFLICT(tx_hash) DO UPDATE SET"
                " nonce=excluded.nonce, kind=excluded.kind, request_ids=excluded.request_ids, raw=excluded.raw,"
                " max_fee=excluded.max_fee, priority_fee=excluded.priority_fee, state=excluded.state,"
                " block_number=NULL, sent_at=excluded.sent_at, updated_at=excluded.updated_at",
                (rec.tx_hash, rec.nonce, rec.kind, json.dumps([_rid(r) for r in rec.request_ids]), rec.raw,
                 rec.max_fee, rec.priority_fee, TxState.PENDING.value, rec.sent_at, now))
            if job_state is not None:
                c.executemany("UPDATE jobs SET state=?, tx_hash=?, nonce=?, updated_at=? WHERE request_id=?",
                              [(job_state.value, rec.tx_hash, rec.nonce, now, _rid(r)) for r in rec.request_ids])
            self.set_meta("next_nonce", str(next_nonce), conn=c)

    def pending_txs(self) -> list[TxRecord]:
        rows = self._query("SELECT * FROM txs WHERE state=? ORDER BY nonce, sent_at", (TxState.PENDING.value,))
        return [TxRecord.from_row(r) for r in rows]

    def txs_for_nonce(self, nonce: int) -> list[TxRecord]:
        rows = self._query("SELECT * FROM txs WHERE nonce=? ORDER BY sent_at", (nonce,))
        return [TxRecord.from_row(r) for r in rows]

    def mined_txs_between(self, first: int, last: int) -> list[TxRecord]:
        rows = self._query("SELECT * FROM txs WHERE state=? AND block_number BETWEEN ? AND ? ORDER BY nonce",
                           (TxState.MINED.value, first, last))
        return [TxRecord.from_row(r) for r in rows]

    def txs_in_state(self, state: TxState) -> list[TxRecord]:
        rows = self._query("SELECT * FROM txs WHERE state=? ORDER BY nonce, sent_at", (state.value,))
        return [TxRecord.from_row(r) for r in rows]

    def top_nonce(self) -> int | None:
        """The highest nonce of a transaction of ours that is pending, mined or orphaned by a reorg."""
        rows = self._query("SELECT MAX(nonce) AS n FROM txs WHERE state IN (?, ?, ?)",
                           (TxState.PENDING.value, TxState.MINED.value, TxState.ORPHANED.value))
        return rows[0]["n"] if rows and rows[0]["n"] is not None else None

    def revive_tx(self, rec: TxRecord, job_state: JobState | None, from_states: Sequence[JobState],
                  now: float) -> list[int]:
        """A transaction a reorg dropped is pending again (same bytes), and so are its jobs that were in one of
        ``from_states`` (and not since sent in another transaction); returns their request ids."""
        with self.tx() as c:
            c.execute("UPDATE txs SET state=?, block_number=NULL, sent_at=?, updated_at=? WHERE tx_hash=?",
                      (TxState.PENDING.value, now, now, rec.tx_hash))
            if job_state is None or not rec.request_ids:
                return []
            marks = ",".join("?" * len(from_states))
            revived = []
            for rid in rec.request_ids:
                n = c.execute(f"UPDATE jobs SET state=?, tx_hash=?, nonce=?, updated_at=? WHERE request_id=?"
                              f" AND state IN ({marks}) AND (tx_hash IS NULL OR nonce=?)",
                              (job_state.value, rec.tx_hash, rec.nonce, now, _rid(rid),
                               *[s.value for s in from_states], rec.nonce)).rowcount
                if n:
                    revived.append(rid)
            return revived

    def all_txs(self) -> list[TxRecord]:
        return [TxRecord.from_row(r) for r in self._query("SELECT * FROM txs ORDER BY nonce, sent_at")]

    def set_tx_state(self, tx_hashes: Sequence[str], state: TxState, block_number: int | None = None,
                     conn: sqlite3.Connection | None = None) -> None:
        sql = "UPDATE txs SET state=?, block_number=?, updated_at=? WHERE tx_hash=?"
        args = [(state.value, block_number, time.time(), h) for h in tx_hashes]
        if conn is not None:
            conn.executemany(sql, args)
        else:
            with self.tx() as c:
                c.executemany(sql, args)
