"""SQLite persistence of the challenger (through :mod:`oracle.storage`; one writer).

Schema::

    meta(key TEXT PRIMARY KEY, value TEXT)            -- cursor_number, cursor_hash
    blocks(number INTEGER PRIMARY KEY, hash TEXT)     -- recent processed blocks, to find a fork point
    requests(request_id TEXT PRIMARY KEY,             -- hex id
             model_id INTEGER, input BLOB, block_number INTEGER)
    claims(request_id TEXT PRIMARY KEY, model_id INTEGER, operator TEXT, output BLOB,
           block_number INTEGER, submitted_at INTEGER, deadline INTEGER,
           state TEXT,                                -- see ClaimState
           expected BLOB, tx_hash TEXT, error TEXT, updated_at REAL,
           nonce INTEGER, tx_block INTEGER,           -- our challenge: its nonce, the block it mined in
           settled INTEGER,                           -- 1: proven and the window is over (no more re-checks)
           orphaned INTEGER)                          -- 1: its block was reorganised away (verdict kept)
    games(...)                                        -- dispute games we play (oracle.dispute.book)
    txs(...)                                          -- every transaction we signed, stored before it is
                                                      -- broadcast (oracle.chain.txstore; meta: account, nonce)
    models(model_id INTEGER, aspect TEXT,             -- aspect: 'program' (re-execution) or 'onnx' (the file)
           status TEXT, reason TEXT, updated_at REAL)  -- e.g. program/quarantined, onnx/bound, onnx/mismatch

A reorg rolls back to the fork point: claims without a verdict after it are forgotten, claims with one are
kept (orphaned) and get their verdict back when the same result reappears on the new branch; a proven claim
whose challenge was in a dropped block goes back to ``challenging`` so its transaction is tracked again.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from oracle.chain.txstore import TXS_SCHEMA, TxRecord, TxStore
from oracle.chain.types import rid_hex
from oracle.dispute.book import SCHEMA as GAMES_SCHEMA
from oracle.lifecycle import Status, is_challengeable
from oracle.storage import Migration, SqliteFile, add_missing_columns

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks(number INTEGER PRIMARY KEY, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS requests(
    request_id TEXT PRIMARY KEY, model_id INTEGER NOT NULL, input BLOB NOT NULL, block_number INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS claims(
    request_id TEXT PRIMARY KEY, model_id INTEGER NOT NULL, operator TEXT NOT NULL, output BLOB NOT NULL,
    block_number INTEGER NOT NULL, submitted_at INTEGER NOT NULL, deadline INTEGER NOT NULL,
    state TEXT NOT NULL, expected BLOB, tx_hash TEXT, error TEXT, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS models(model_id INTEGER NOT NULL, aspect TEXT NOT NULL, status TEXT NOT NULL,
    reason TEXT, updated_at REAL NOT NULL, PRIMARY KEY(model_id, aspect));
CREATE INDEX IF NOT EXISTS claims_state ON claims(state, deadline);
"""
#: columns added after the first release (a file may predate some of them)
ADDED_COLUMNS = (("nonce", "INTEGER"), ("tx_block", "INTEGER"), ("settled", "INTEGER NOT NULL DEFAULT 0"),
                 ("orphaned", "INTEGER NOT NULL DEFAULT 0"))
#: schema versions (PRAGMA user_version): 1 the first release's tables, 2 the columns added since, 3 the dispute
#: games we play (:mod:`oracle.dispute.book`), 4 the transactions the shared manager signs and tracks
#: (:mod:`oracle.chain.txstore`; a challenge in flight from an older file is settled from the chain)
MIGRATIONS: tuple[Migration, ...] = (SCHEMA, add_missing_columns("claims", ADDED_COLUMNS), GAMES_SCHEMA,
                                     TXS_SCHEMA)
KEEP_BLOCKS = 512


class ClaimState(str, Enum):
    PENDING = "pending"  # seen, not yet verified
    CORRECT = "correct"  # re-execution agrees: never challenged
    WRONG = "wrong"  # re-execution disagrees; a challenge is (re-)sent next
    CHALLENGING = "challenging"  # challenge transaction sent, receipt not yet seen
    PROVEN = "proven"  # our challenge proved the fraud (re-checked on-chain until the window is over)
    LOST_RACE = "lost_race"  # someone else proved it first
    UNPROVABLE = "unprovable"  # wrong, but the chain refuses our proof: an alarm (retried while the window is open)
    QUARANTINED = "quarantined"  # its model's program cannot be re-executed within the limits: an alarm
    NOT_EXACT = "not_exact"  # ATTESTED model: no on-chain proof possible
    MISSED = "missed"  # the window closed before we could act
    FAILED = "failed"  # could not verify (model unavailable, ...); error says why
    GAME = "game"  # wrong, its one-transaction proof does not fit: proven in a dispute game (games table)
    GAME_LOST = "game_lost"  # our game ended against us (or could not be played): an alarm

    @property
    def final(self) -> bool:
        return self not in (ClaimState.PENDING, ClaimState.WRONG, ClaimState.CHALLENGING, ClaimState.UNPROVABLE,
                            ClaimState.GAME)


def claim_state_for(status: Status, *, proven_by_us: bool, refused: bool) -> ClaimState:
    """What a challenged claim becomes once its request's on-chain status is known (a challenge that reverted,
    was refused, dropped or outlived its window); ``refused``: the chain would revert our proof."""
    if status is Status.FRAUD_PROVEN:
        return ClaimState.PROVEN if proven_by_us else ClaimState.LOST_RACE
    if status in (Status.FINALIZABLE, Status.FINALIZED):
        return ClaimState.MISSED
    if is_challengeable(status) and refused:
        return ClaimState.UNPROVABLE  # wrong, yet the chain refuses the proof: an alarm
    return ClaimState.WRONG  # send again (or, off the chain we see during a reorg, decide on a later round)


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
    nonce: int | None = None
    tx_block: int | None = None
    settled: bool = False
    orphaned: bool = False


def _claim(r: sqlite3.Row) -> Claim:
    return Claim(int(r["request_id"], 16), r["model_id"], r["operator"], bytes(r["output"]), r["block_number"],
                 r["submitted_at"], r["deadline"], ClaimState(r["state"]),
                 bytes(r["expected"]) if r["expected"] is not None else None, r["tx_hash"], r["error"],
                 r["nonce"], r["tx_block"], bool(r["settled"]), bool(r["orphaned"]))


class Store(TxStore):
    """The challenger's state file (:class:`~oracle.storage.SqliteFile`: one connection, one lock, WAL, schema
    versions); it also holds the transactions of :class:`oracle.challenger.txs.ChallengeTxs`."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self.sql = SqliteFile(path, MIGRATIONS)

    def close(self) -> None:
        self.sql.close()

    def tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return self.sql.tx()

    def _rows(self, sql: str, args: Sequence[object] = ()) -> list[sqlite3.Row]:
        return self.sql.read(sql, args)

    _query = _rows

    # how a challenge moves its claim (oracle.chain.txstore) ----------------
    def _move_subjects(self, c: sqlite3.Connection, rec: TxRecord, state: Enum, now: float) -> None:
        c.executemany("UPDATE claims SET state=?, tx_hash=?, nonce=?, error=NULL, updated_at=? WHERE request_id=?",
                      [(state.value, rec.tx_hash, rec.nonce, now, rid_hex(r)) for r in rec.request_ids])

    def _revive_subjects(self, c: sqlite3.Connection, rec: TxRecord, state: Enum, from_states: Sequence[Enum],
                         now: float) -> list[int]:
        marks = ",".join("?" * len(from_states))
        return [r for r in rec.request_ids if c.execute(
            f"UPDATE claims SET state=?, tx_hash=?, nonce=?, tx_block=NULL, settled=0, updated_at=?"
            f" WHERE request_id=? AND state IN ({marks}) AND (nonce IS NULL OR nonce=?)",
            (state.value, rec.tx_hash, rec.nonce, now, rid_hex(r), *[s.value for s in from_states],
             rec.nonce)).rowcount]

    # cursor and blocks ----------------------------------------------------
    def last_block(self) -> tuple[int, str] | None:
        """(number, hash) of the last processed block (the follower's cursor), None before the first."""
        rows = {r[0]: r[1] for r in self._rows("SELECT key, value FROM meta")}
        if "cursor_number" not in rows:
            return None
        return int(rows["cursor_number"]), rows["cursor_hash"]


    def recent_blocks(self) -> list[tuple[int, str]]:
        return [(r[0], r[1]) for r in self._rows("SELECT number, hash FROM blocks ORDER BY number DESC")]

    def advance(self, requests: Sequence[tuple[int, int, bytes, int]],
                claims: Sequence[tuple[int, int, str, bytes, int, int, int]], cursor: tuple[int, str],
                blocks: Sequence[tuple[int, str]] = ()) -> None:
        """Stores new requests and claims, the blocks read and the cursor, atomically (idempotent per id).

        A claim seen again after a reorg (orphaned) keeps its verdict if its output did not change."""
        now = time.time()
        with self.tx() as c:
            c.executemany("INSERT OR IGNORE INTO requests VALUES (?,?,?,?)",
                          [(rid_hex(r), m, inp, b) for r, m, inp, b in requests])
            c.executemany(
                "INSERT INTO claims(request_id, model_id, operator, output, block_number, submitted_at,"
                " deadline, state, updated_at) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(request_id) DO UPDATE SET"
                " state=CASE WHEN claims.output=excluded.output OR claims.state='challenging' THEN claims.state"
                " ELSE 'pending' END,"
                " expected=CASE WHEN claims.output=excluded.output THEN claims.expected ELSE NULL END,"
                " operator=excluded.operator, output=excluded.output, block_number=excluded.block_number,"
                " submitted_at=excluded.submitted_at, deadline=excluded.deadline, orphaned=0,"
                " updated_at=excluded.updated_at WHERE claims.orphaned=1",
                [(rid_hex(r), m, op, out, b, t, d, ClaimState.PENDING.value, now) for r, m, op, out, b, t, d in claims],
            )
            c.executemany("INSERT OR REPLACE INTO blocks(number, hash) VALUES (?,?)", [*blocks, cursor])
            c.execute("DELETE FROM blocks WHERE number < ?", (cursor[0] - KEEP_BLOCKS,))
            c.execute("INSERT OR REPLACE INTO meta VALUES ('cursor_number', ?)", (str(cursor[0]),))
            c.execute("INSERT OR REPLACE INTO meta VALUES ('cursor_hash', ?)", (cursor[1],))

    def add_request(self, request_id: int, model_id: int, data: bytes, block_number: int) -> None:
        """Remembers a request found outside the scanned range (the cursor does not move)."""
        with self.tx() as c:
            c.execute("INSERT OR IGNORE INTO requests VALUES (?,?,?,?)",
                      (rid_hex(request_id), model_id, data, block_number))

    def rollback_to(self, number: int, block_hash: str) -> dict[str, int]:
        """A reorg with fork point ``number``: undo what the dropped blocks said, keep verdicts (see module)."""
        with self.tx() as c:
            c.execute("DELETE FROM requests WHERE block_number > ?", (number,))
            forgotten = c.execute("DELETE FROM claims WHERE block_number > ? AND state='pending'",
                                  (number,)).rowcount
            orphaned = c.execute("UPDATE claims SET orphaned=1 WHERE block_number > ?", (number,)).rowcount
            retrack = c.execute("UPDATE claims SET state='challenging', settled=0, tx_block=NULL"
                                " WHERE state='proven' AND tx_block > ?", (number,)).rowcount
            c.execute("DELETE FROM blocks WHERE number > ?", (number,))
            c.execute("INSERT OR REPLACE INTO meta VALUES ('cursor_number', ?)", (str(number),))
            c.execute("INSERT OR REPLACE INTO meta VALUES ('cursor_hash', ?)", (block_hash,))
        return {"forgotten": forgotten, "orphaned": orphaned, "proofs_to_recheck": retrack}

    # claims ---------------------------------------------------------------
    def input_of(self, request_id: int) -> tuple[int, bytes] | None:
        rows = self._rows("SELECT model_id, input FROM requests WHERE request_id=?", (rid_hex(request_id),))
        return (int(rows[0]["model_id"]), bytes(rows[0]["input"])) if rows else None

    def claims(self, states: Sequence[ClaimState] | None = None, limit: int = 100_000, *,
               orphaned: bool = False, settled: bool | None = None) -> list[Claim]:
        """Claims on the canonical chain (``orphaned=True``: also those whose block was reorganised away)."""
        where: list[str] = []
        args: list[object] = []
        if states:
            where.append(f"state IN ({','.join('?' * len(states))})")
            args += [s.value for s in states]
        if not orphaned:
            where.append("orphaned=0")
        if settled is not None:
            where.append("settled=?")
            args.append(int(settled))
        sql = "SELECT * FROM claims" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY deadline, block_number LIMIT ?" if states else " ORDER BY block_number LIMIT ?"
        return [_claim(r) for r in self._rows(sql, [*args, limit])]

    def claim(self, request_id: int) -> Claim | None:
        rows = self._rows("SELECT * FROM claims WHERE request_id=?", (rid_hex(request_id),))
        return _claim(rows[0]) if rows else None

    def set_state(self, request_id: int, state: ClaimState, *, expected: bytes | None = None,
                  tx_hash: str | None = None, error: str | None = None, nonce: int | None = None,
                  tx_block: int | None = None, settled: bool | None = None,
                  conn: sqlite3.Connection | None = None) -> None:
        if conn is None:
            with self.tx() as c:
                self.set_state(request_id, state, expected=expected, tx_hash=tx_hash, error=error, nonce=nonce,
                               tx_block=tx_block, settled=settled, conn=c)
            return
        conn.execute("UPDATE claims SET state=?, expected=COALESCE(?, expected), tx_hash=COALESCE(?, tx_hash),"
                     " nonce=COALESCE(?, nonce), tx_block=?, settled=COALESCE(?, settled), error=?, updated_at=?"
                     " WHERE request_id=?",
                     (state.value, expected, tx_hash, nonce, tx_block, None if settled is None else int(settled),
                      error, time.time(), rid_hex(request_id)))

    def counts(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self._rows("SELECT state, COUNT(*) FROM claims WHERE orphaned=0 GROUP BY state")}

    # models ---------------------------------------------------------------
    def set_model(self, model_id: int, aspect: str, status: str, reason: str | None = None) -> None:
        with self.tx() as c:
            c.execute("INSERT OR REPLACE INTO models VALUES (?,?,?,?,?)",
                      (model_id, aspect, status, reason, time.time()))

    def models(self) -> dict[tuple[int, str], tuple[str, str | None]]:
        """(model id, aspect) -> (status, reason)."""
        return {(r[0], r[1]): (r[2], r[3]) for r in self._rows("SELECT model_id, aspect, status, reason FROM models")}

    def quarantined_since(self) -> dict[int, tuple[float, str | None]]:
        """Models whose program is quarantined -> (since when, why)."""
        return {r[0]: (r[1], r[2]) for r in self._rows(
            "SELECT model_id, updated_at, reason FROM models WHERE aspect='program' AND status='quarantined'")}

    def release(self, model_id: int, open_after: int) -> int:
        """Ends a model's quarantine: its quarantined claims whose window ends after ``open_after`` are verified
        again; returns how many."""
        with self.tx() as c:
            c.execute("DELETE FROM models WHERE model_id=? AND aspect='program'", (model_id,))
            return c.execute("UPDATE claims SET state='pending', error=NULL WHERE model_id=? AND state='quarantined'"
                             " AND deadline > ?", (model_id, open_after)).rowcount
