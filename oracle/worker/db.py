"""SQLite persistence of the worker: every job's state, the block cursor, seen blocks and transactions.

The database is the worker's memory across ``kill -9``: every step is written before the next one starts,
and a signed transaction is stored *before* it is broadcast, so a restart re-broadcasts the same bytes
(same hash, same nonce) instead of sending a second submission.

The tables and their versions are :mod:`oracle.worker.schema`; the rows are :mod:`oracle.worker.job`; the
signed transactions (:class:`~oracle.chain.txstore.TxStore`) and the per-model state
(:class:`~oracle.worker.modelstate.ModelStateStore`) are mixins of :class:`Database`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from enum import Enum
from pathlib import Path
from typing import Any

from oracle.chain.txstore import TxRecord, TxState, TxStore
from oracle.chain.types import rid_hex
from oracle.jobstate import JobState
from oracle.storage import SqliteFile
from oracle.worker.job import Job, NewJob
from oracle.worker.modelstate import ModelStateStore
from oracle.worker.schema import MIGRATIONS

__all__ = ["Database"]

#: final states of a job assigned to this node that it did not answer itself
MISSED_STATES = (JobState.LOST, JobState.EXPIRED, JobState.SKIPPED, JobState.FAILED)
#: states of a job whose result this node attested
ANSWERED_STATES = (JobState.SUBMITTED, JobState.FINALIZING, JobState.FINALIZED)

#: How many recent blocks to remember for finding a fork point.
KEEP_BLOCKS = 512


class Database(TxStore, ModelStateStore):
    """Thread-safe access to the worker database (:class:`~oracle.storage.SqliteFile`: one connection, one
    lock, WAL, schema versions)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.sql = SqliteFile(path, MIGRATIONS)

    # ------------------------------------------------------------------ how a transaction moves its jobs
    def _move_subjects(self, c: sqlite3.Connection, rec: TxRecord, state: Enum, now: float) -> None:
        c.executemany("UPDATE jobs SET state=?, tx_hash=?, nonce=?, updated_at=? WHERE request_id=?",
                      [(state.value, rec.tx_hash, rec.nonce, now, rid_hex(r)) for r in rec.request_ids])

    def _revive_subjects(self, c: sqlite3.Connection, rec: TxRecord, state: Enum, from_states: Sequence[Enum],
                         now: float) -> list[int]:
        marks = ",".join("?" * len(from_states))
        revived = []
        for r in rec.request_ids:
            n = c.execute(f"UPDATE jobs SET state=?, tx_hash=?, nonce=?, updated_at=? WHERE request_id=?"
                          f" AND state IN ({marks}) AND (tx_hash IS NULL OR nonce=?)",
                          (state.value, rec.tx_hash, rec.nonce, now, rid_hex(r), *[s.value for s in from_states],
                           rec.nonce)).rowcount
            if n:
                revived.append(r)
        return revived

    @property
    def writes(self) -> int:
        """Committed write transactions so far: the node loop's measure of progress (its backoff resets on it)."""
        return self.sql.writes

    def close(self) -> None:
        self.sql.close()

    def tx(self) -> AbstractContextManager[sqlite3.Connection]:
        """One atomic transaction (BEGIN IMMEDIATE ... COMMIT / ROLLBACK)."""
        return self.sql.tx()

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return self.sql.read(sql, args)

    def last_block(self) -> tuple[int, str] | None:
        """(number, hash) of the last fully processed block (the listener's cursor), None before the first."""
        rows = self._query("SELECT block_number, block_hash FROM cursor WHERE id=1")
        return (rows[0]["block_number"], rows[0]["block_hash"]) if rows else None


    def block_hash(self, number: int) -> str | None:
        rows = self._query("SELECT hash FROM blocks WHERE number=?", (number,))
        return rows[0]["hash"] if rows else None

    def recent_blocks(self) -> list[tuple[int, str]]:
        return [(r["number"], r["hash"]) for r in self._query("SELECT number, hash FROM blocks ORDER BY number DESC")]

    def advance(self, jobs: Sequence[NewJob], blocks: Sequence[tuple[int, str]], cursor: tuple[int, str],
                reactivate: bool = True) -> int:
        """Atomically ingests request events and moves the cursor; idempotent per request id.

        Returns how many jobs were new (or re-activated after a reorg had orphaned them).
        """
        return self.ingest(jobs, blocks, cursor, (), reactivate)[0]

    def ingest(self, jobs: Sequence[NewJob], blocks: Sequence[tuple[int, str]], cursor: tuple[int, str],
               lost: Sequence[tuple[int, int, str]] = (), reactivate: bool = True) -> tuple[int, int]:
        """:meth:`advance`, plus ``lost``: ``(request id, block, operator)`` of submissions by other operators
        in the range; our jobs for them that were not sent yet become ``lost`` (``submit_block`` records the
        winner's block, so a reorg dropping it brings the job back). Returns (new jobs, jobs lost)."""
        now = time.time()
        added = 0
        n_lost = 0
        with self.tx() as c:
            for j in jobs:
                rid = rid_hex(j.request_id)
                cur = c.execute("SELECT state FROM jobs WHERE request_id=?", (rid,)).fetchone()
                if cur is None:
                    c.execute(
                        "INSERT INTO jobs(request_id, model_id, requester, fee, input, block_number, block_hash,"
                        " requested_at, state, attempts, created_at, updated_at, assignee)"
                        " VALUES(?,?,?,?,?,?,?,?,?,0,?,?,?)",
                        (rid, j.model_id, j.requester, str(j.fee), j.input, j.block_number, j.block_hash,
                         j.requested_at, JobState.SEEN.value, now, now, j.assignee))
                    added += 1
                elif cur["state"] == JobState.ORPHANED.value and reactivate:
                    c.execute(
                        "UPDATE jobs SET state=?, block_number=?, block_hash=?, requested_at=?, output=NULL,"
                        " tx_hash=NULL, nonce=NULL, submit_block=NULL, challenge_deadline=NULL, attempts=0,"
                        " error=NULL, updated_at=?, assignee=? WHERE request_id=?",  # a new block, a new draw
                        (JobState.SEEN.value, j.block_number, j.block_hash, j.requested_at, now, j.assignee, rid))
                    added += 1
            for lost_id, block, operator in lost:
                n_lost += c.execute(
                    "UPDATE jobs SET state=?, submit_block=?, error=?, updated_at=? WHERE request_id=?"
                    " AND state IN (?, ?)",
                    (JobState.LOST.value, block, f"answered by {operator}", now, rid_hex(lost_id), JobState.SEEN.value,
                     JobState.EXECUTED.value)).rowcount
            for number, h in blocks:
                c.execute("INSERT OR REPLACE INTO blocks(number, hash) VALUES(?, ?)", (number, h))
            c.execute("INSERT OR REPLACE INTO cursor(id, block_number, block_hash) VALUES(1, ?, ?)", cursor)
            c.execute("DELETE FROM blocks WHERE number < ?", (cursor[0] - KEEP_BLOCKS,))
        return added, n_lost

    def rollback_to(self, fork_number: int, fork_hash: str) -> dict[str, int]:
        """Undoes everything above ``fork_number`` after a reorg.

        Requests mined above the fork are orphaned (they may come back: re-ingesting re-activates them);
        our transactions mined above the fork are marked orphaned and their jobs go back to be resubmitted
        (or re-finalized) after a fresh on-chain check.
        """
        now = time.time()
        with self.tx() as c:
            orphaned = c.execute(
                "UPDATE jobs SET state=?, error='request block reorganised away', updated_at=?"
                " WHERE block_number > ? AND state != ?",
                (JobState.ORPHANED.value, now, fork_number, JobState.ORPHANED.value)).rowcount
            resubmit = c.execute(
                "UPDATE jobs SET state=?, tx_hash=NULL, nonce=NULL, submit_block=NULL, challenge_deadline=NULL,"
                " updated_at=? WHERE submit_block > ? AND state IN (?, ?, ?)",
                (JobState.EXECUTED.value, now, fork_number, JobState.SUBMITTED.value, JobState.FINALIZING.value,
                 JobState.FINALIZED.value)).rowcount
            # A finalize mined above the fork (its result below it) is undone: the result is open again.
            refinalize = c.execute(
                "UPDATE jobs SET state=?, updated_at=? WHERE state IN (?, ?) AND nonce IN"
                " (SELECT nonce FROM txs WHERE kind='finalize' AND block_number > ? AND state=?)",
                (JobState.SUBMITTED.value, now, JobState.FINALIZING.value, JobState.FINALIZED.value, fork_number,
                 TxState.MINED.value)).rowcount
            # Lost to a submission above the fork: ours to answer again.
            unlost = c.execute(
                "UPDATE jobs SET state=CASE WHEN output IS NULL THEN ? ELSE ? END, submit_block=NULL, error=NULL,"
                " updated_at=? WHERE state=? AND submit_block > ?",
                (JobState.SEEN.value, JobState.EXECUTED.value, now, JobState.LOST.value, fork_number)).rowcount
            txs = c.execute("UPDATE txs SET state=?, updated_at=? WHERE block_number > ? AND state=?",
                            (TxState.ORPHANED.value, now, fork_number, TxState.MINED.value)).rowcount
            c.execute("DELETE FROM blocks WHERE number > ?", (fork_number,))
            c.execute("INSERT OR REPLACE INTO cursor(id, block_number, block_hash) VALUES(1, ?, ?)",
                      (fork_number, fork_hash))
        return {"orphaned_jobs": orphaned, "resubmit_jobs": resubmit, "refinalize_jobs": refinalize,
                "unlost_jobs": unlost, "orphaned_txs": txs}

    # ------------------------------------------------------------------ jobs
    def job(self, request_id: int) -> Job | None:
        rows = self._query("SELECT * FROM jobs WHERE request_id=?", (rid_hex(request_id),))
        return Job.from_row(rows[0]) if rows else None

    def jobs(self, state: JobState | None = None, limit: int = 100, offset: int = 0) -> list[Job]:
        if state is None:
            rows = self._query("SELECT * FROM jobs ORDER BY block_number DESC, request_id LIMIT ? OFFSET ?",
                               (limit, offset))
        else:
            rows = self._query("SELECT * FROM jobs WHERE state=? ORDER BY block_number, request_id LIMIT ? OFFSET ?",
                               (state.value, limit, offset))
        return [Job.from_row(r) for r in rows]

    def open_to(self, state: JobState, me: str, requested_before: int, limit: int) -> list[Job]:
        """Jobs in ``state`` that ``me`` may answer now: assigned to it, to nobody, or requested before
        ``requested_before`` (their exclusive period is over). Others wait, and do not hold a batch's places."""
        rows = self._query("SELECT * FROM jobs WHERE state=? AND (assignee IN ('', ?) OR requested_at < ?)"
                           " ORDER BY block_number, request_id LIMIT ?",
                           (state.value, me.lower(), requested_before, limit))
        return [Job.from_row(r) for r in rows]

    def assignment_counts(self, me: str) -> dict[str, int]:
        """Requests assigned to ``me``: how many, how many it answered, how many it missed (final without
        its answer: taken by another operator after the exclusive period, expired, skipped or failed)."""
        answered = ",".join("?" * len(ANSWERED_STATES))
        missed = ",".join("?" * len(MISSED_STATES))
        (r,) = self._query(
            f"SELECT COUNT(*) AS n, COALESCE(SUM(state IN ({answered})), 0) AS a,"  # noqa: S608 (placeholders)
            f" COALESCE(SUM(state IN ({missed})), 0) AS m FROM jobs WHERE assignee=?",
            (*(s.value for s in ANSWERED_STATES), *(s.value for s in MISSED_STATES), me.lower()))
        return {"assigned": int(r["n"]), "answered": int(r["a"]), "missed": int(r["m"])}

    def ready_to_finalize(self, now: int, limit: int) -> list[Job]:
        rows = self._query("SELECT * FROM jobs WHERE state=? AND challenge_deadline <= ?"
                           " ORDER BY challenge_deadline LIMIT ?", (JobState.SUBMITTED.value, now, limit))
        return [Job.from_row(r) for r in rows]

    def counts(self) -> dict[str, int]:
        return {r["state"]: r["n"] for r in self._query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")}

    def set_state(self, request_ids: Sequence[int], state: JobState, *, error: str | None = None,
                  conn: sqlite3.Connection | None = None, **fields: Any) -> None:
        cols = ", ".join(f"{k}=?" for k in fields)
        sql = f"UPDATE jobs SET state=?, error=?, updated_at=?{', ' + cols if cols else ''} WHERE request_id=?"
        now = time.time()
        args = [(state.value, error, now, *fields.values(), rid_hex(r)) for r in request_ids]
        if conn is not None:
            conn.executemany(sql, args)
        else:
            with self.tx() as c:
                c.executemany(sql, args)

    def bump_attempts(self, request_ids: Sequence[int], conn: sqlite3.Connection | None = None,
                      by: int = 1) -> None:
        """Adds ``by`` to each job's attempt counter (-1 gives back an attempt that was not run)."""
        sql = "UPDATE jobs SET attempts=MAX(0, attempts+?), updated_at=? WHERE request_id=?"
        args = [(by, time.time(), rid_hex(r)) for r in request_ids]
        if conn is not None:
            conn.executemany(sql, args)
        else:
            with self.tx() as c:
                c.executemany(sql, args)

    def record_outputs(self, results: Sequence[tuple[int, bytes]]) -> None:
        now = time.time()
        with self.tx() as c:
            c.executemany("UPDATE jobs SET state=?, output=?, error=NULL, updated_at=? WHERE request_id=? AND state=?",
                          [(JobState.EXECUTED.value, out, now, rid_hex(r), JobState.SEEN.value) for r, out in results])
