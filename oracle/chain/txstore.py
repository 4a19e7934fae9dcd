"""Persistence of a daemon's signed transactions (a mixin of the worker's :class:`oracle.worker.db.Database` and
the challenger's :class:`oracle.challenger.store.Store`): every transaction is stored before it is broadcast,
with the new state of what it is about (the worker's jobs, the challenger's claims), in one atomic write.

The host provides ``tx()``, ``_query``, a ``meta(key, value)`` table and the ``txs`` table of :data:`TXS_SCHEMA`,
and says how a transaction moves its subjects (:meth:`TxStore._move_subjects`, :meth:`TxStore._revive_subjects`).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from oracle.chain.types import rid_hex

#: the ``txs`` table (and ``meta``, where the nonce and the account live)
TXS_SCHEMA = """
CREATE TABLE IF NOT EXISTS txs (
    tx_hash TEXT PRIMARY KEY,
    nonce INTEGER NOT NULL,
    kind TEXT NOT NULL,
    request_ids TEXT NOT NULL,
    raw BLOB NOT NULL,
    max_fee INTEGER NOT NULL,
    priority_fee INTEGER NOT NULL,
    state TEXT NOT NULL,
    block_number INTEGER,
    sent_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS txs_state ON txs(state);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


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
    kind: str  # worker: "submit" | "finalize" | "withdraw" | game moves; challenger: "challenge" | game moves
    #: what the transaction is about: the worker's jobs, the challenger's claims (request ids)
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
    """The ``txs`` and ``meta`` tables; needs the host's ``tx()`` and ``_query``."""

    if TYPE_CHECKING:
        path: Any  # the state file, named in errors

        def tx(self) -> AbstractContextManager[sqlite3.Connection]: ...
        def _query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]: ...

    # ------------------------------------------------------------------ what the host says about subjects
    def _move_subjects(self, c: sqlite3.Connection, rec: TxRecord, state: Enum, now: float) -> None:
        """Puts ``rec``'s subjects in ``state`` (in flight with ``rec``), inside the write that stores it."""

    def _revive_subjects(self, c: sqlite3.Connection, rec: TxRecord, state: Enum, from_states: Sequence[Enum],
                         now: float) -> list[int]:
        """``rec`` is pending again after a reorg: its subjects still in one of ``from_states`` (and not sent
        since in another transaction) go back to ``state``; returns their request ids."""
        return []

    # ------------------------------------------------------------------ meta
    def get_meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key=?", (key,))
        return rows[0]["value"] if rows else None

    def set_meta(self, key: str, value: str, conn: sqlite3.Connection | None = None) -> None:
        sql = "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value"
        if conn is not None:
            conn.execute(sql, (key, value))
        else:
            with self.tx() as c:
                c.execute(sql, (key, value))

    # ------------------------------------------------------------------ transactions
    def store_tx(self, rec: TxRecord, state: Enum | None, next_nonce: int) -> None:
        """Stores a signed transaction and moves its subjects, *before* the broadcast (one atomic write)."""
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
                (rec.tx_hash, rec.nonce, rec.kind, json.dumps([rid_hex(r) for r in rec.request_ids]), rec.raw,
                 rec.max_fee, rec.priority_fee, TxState.PENDING.value, rec.sent_at, now))
            if state is not None:
                self._move_subjects(c, rec, state, now)
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

    def revive_tx(self, rec: TxRecord, state: Enum | None, from_states: Sequence[Enum], now: float) -> list[int]:
        """A transaction a reorg dropped is pending again (same bytes), and so are its subjects that were in one
        of ``from_states`` (:meth:`_revive_subjects`); returns their request ids."""
        with self.tx() as c:
            c.execute("UPDATE txs SET state=?, block_number=NULL, sent_at=?, updated_at=? WHERE tx_hash=?",
                      (TxState.PENDING.value, now, now, rec.tx_hash))
            if state is None or not rec.request_ids:
                return []
            return self._revive_subjects(c, rec, state, from_states, now)

    def tx_record(self, tx_hash: str) -> TxRecord | None:
        rows = self._query("SELECT * FROM txs WHERE tx_hash=?", (tx_hash,))
        return TxRecord.from_row(rows[0]) if rows else None

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
