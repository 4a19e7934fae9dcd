"""SQLite persistence of the challenger (WAL; one writer).

Schema::

    meta(key TEXT PRIMARY KEY, value TEXT)            -- cursor_number, cursor_hash
    requests(request_id TEXT PRIMARY KEY,             -- hex id
             model_id INTEGER, input BLOB, block_number INTEGER)
    claims(request_id TEXT PRIMARY KEY, model_id INTEGER, operator TEXT, output BLOB,
           block_number INTEGER, submitted_at INTEGER, deadline INTEGER,
           state TEXT,                                -- see ClaimState
           expected BLOB, tx_hash TEXT, error TEXT, updated_at REAL)

A claim is processed at most once to a final state; a restart resumes every non-final claim.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS requests(
    request_id TEXT PRIMARY KEY, model_id INTEGER NOT NULL, input BLOB NOT NULL, block_number INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS claims(
    request_id TEXT PRIMARY KEY, model_id INTEGER NOT NULL, operator TEXT NOT NULL, output BLOB NOT NULL,
    block_number INTEGER NOT NULL, submitted_at INTEGER NOT NULL, deadline INTEGER NOT NULL,
    state TEXT NOT NULL, expected BLOB, tx_hash TEXT, error TEXT, updated_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS claims_state ON claims(state, deadline);
"""


class ClaimState(str, Enum):
    PENDING = "pending"  # seen, not yet verified
    CORRECT = "correct"  # re-execution agrees: never challenged
    CHALLENGING = "challenging"  # wrong; challenge transaction sent, receipt not yet seen
    PROVEN = "proven"  # our challenge proved the fraud
    LOST_RACE = "lost_race"  # someone else proved it first, or it settled otherwise
    NOT_EXACT = "not_exact"  # ATTESTED model: no on-chain proof possible
    MISSED = "missed"  # the window closed before we could act
    FAILED = "failed"  # could not verify (model unavailable, ...); error says why

    @property
    def final(self) -> bool:
        return self not in (ClaimState.PENDING, ClaimState.CHALLENGING)


@dataclass(frozen=True)
class Claim:
    request_id: int
    model_id: int
    operator: str
    output: bytes
    block_number: int
    submitted_at: int
    deadline: int
    state: ClaimState
    expected: bytes | None
    tx_hash: str | None
    error: str | None


def rid(request_id: int) -> str:
    return f"0x{request_id:064x}"


class Store:
    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # cursor ---------------------------------------------------------------
    def cursor(self) -> tuple[int, str] | None:
        rows = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
        if "cursor_number" not in rows:
            return None
        return int(rows["cursor_number"]), rows["cursor_hash"]

    def advance(self, requests: Sequence[tuple[int, int, bytes, int]],
                claims: Sequence[tuple[int, int, str, bytes, int, int, int]], cursor: tuple[int, str]) -> None:
        """Stores new requests and claims and moves the cursor, atomically (idempotent per request id)."""
        now = time.time()
        with self.tx() as c:
            c.executemany("INSERT OR IGNORE INTO requests VALUES (?,?,?,?)",
                          [(rid(r), m, inp, b) for r, m, inp, b in requests])
            c.executemany(
                "INSERT OR IGNORE INTO claims(request_id, model_id, operator, output, block_number, submitted_at,"
                " deadline, state, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
                [(rid(r), m, op, out, b, t, d, ClaimState.PENDING.value, now) for r, m, op, out, b, t, d in claims],
            )
            c.execute("INSERT OR REPLACE INTO meta VALUES ('cursor_number', ?)", (str(cursor[0]),))
            c.execute("INSERT OR REPLACE INTO meta VALUES ('cursor_hash', ?)", (cursor[1],))

    def add_request(self, request_id: int, model_id: int, data: bytes, block_number: int) -> None:
        """Remembers a request found outside the scanned range (the cursor does not move)."""
        with self.tx() as c:
            c.execute("INSERT OR IGNORE INTO requests VALUES (?,?,?,?)",
                      (rid(request_id), model_id, data, block_number))

    def rewind(self, to_block: int, to_hash: str) -> int:
        """Forgets everything seen after ``to_block`` (a reorg); returns how many claims were dropped.

        Claims we already challenged stay: their transaction's fate is re-checked on-chain.
        """
        with self.tx() as c:
            c.execute("DELETE FROM requests WHERE block_number > ?", (to_block,))
            n = c.execute("DELETE FROM claims WHERE block_number > ? AND state IN ('pending','correct',"
                          "'not_exact','failed')", (to_block,)).rowcount
            c.execute("INSERT OR REPLACE INTO meta VALUES ('cursor_number', ?)", (str(to_block),))
            c.execute("INSERT OR REPLACE INTO meta VALUES ('cursor_hash', ?)", (to_hash,))
        return n

    # claims ---------------------------------------------------------------
    def input_of(self, request_id: int) -> tuple[int, bytes] | None:
        row = self._conn.execute("SELECT model_id, input FROM requests WHERE request_id=?",
                                 (rid(request_id),)).fetchone()
        return (int(row["model_id"]), bytes(row["input"])) if row else None

    def claims(self, states: Sequence[ClaimState] | None = None, limit: int = 1000) -> list[Claim]:
        if states:
            marks = ",".join("?" * len(states))
            rows = self._conn.execute(f"SELECT * FROM claims WHERE state IN ({marks}) ORDER BY deadline LIMIT ?",
                                      [s.value for s in states] + [limit]).fetchall()
        else:
            rows = self._conn.execute("SELECT * FROM claims ORDER BY block_number LIMIT ?", (limit,)).fetchall()
        return [Claim(int(r["request_id"], 16), r["model_id"], r["operator"], bytes(r["output"]), r["block_number"],
                      r["submitted_at"], r["deadline"], ClaimState(r["state"]),
                      bytes(r["expected"]) if r["expected"] is not None else None, r["tx_hash"], r["error"])
                for r in rows]

    def set_state(self, request_id: int, state: ClaimState, *, expected: bytes | None = None,
                  tx_hash: str | None = None, error: str | None = None) -> None:
        with self.tx() as c:
            c.execute("UPDATE claims SET state=?, expected=COALESCE(?, expected), tx_hash=COALESCE(?, tx_hash),"
                      " error=?, updated_at=? WHERE request_id=?",
                      (state.value, expected, tx_hash, error, time.time(), rid(request_id)))

    def counts(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self._conn.execute("SELECT state, COUNT(*) FROM claims GROUP BY state")}
