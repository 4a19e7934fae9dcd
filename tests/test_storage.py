"""oracle.storage: every state file opens with the same pragmas and is migrated by PRAGMA user_version."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from oracle.challenger import store as challenger_store
from oracle.challenger.store import ClaimState, Store
from oracle.jobstate import JobState
from oracle.storage import SqliteFile
from oracle.worker import schema as worker_schema
from oracle.worker.db import Database
from oracle.worker.job import NewJob

#: the challenger's claims table as first released, before nonce, tx_block, settled and orphaned
CHALLENGER_V0 = f"""
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE blocks(number INTEGER PRIMARY KEY, hash TEXT NOT NULL);
CREATE TABLE requests(
    request_id TEXT PRIMARY KEY, model_id INTEGER NOT NULL, input BLOB NOT NULL, block_number INTEGER NOT NULL);
CREATE TABLE claims(
    request_id TEXT PRIMARY KEY, model_id INTEGER NOT NULL, operator TEXT NOT NULL, output BLOB NOT NULL,
    block_number INTEGER NOT NULL, submitted_at INTEGER NOT NULL, deadline INTEGER NOT NULL,
    state TEXT NOT NULL, expected BLOB, tx_hash TEXT, error TEXT, updated_at REAL NOT NULL);
INSERT INTO claims VALUES ('0x{7:064x}', 1, '0xop', x'01', 10, 1010, 1310, 'correct', x'01', NULL, NULL, 0.0);
INSERT INTO meta VALUES ('cursor_number', '10');
INSERT INTO meta VALUES ('cursor_hash', '0xab');
"""


def _pragma(path: Path, name: str) -> object:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]


def test_a_new_file_is_at_the_newest_version_in_wal_with_full_sync(tmp_path: Path) -> None:
    f = SqliteFile(tmp_path / "new.db", ["CREATE TABLE t(x INTEGER)", "ALTER TABLE t ADD COLUMN y TEXT"])
    assert f.version == 2
    assert f.read("PRAGMA synchronous")[0][0] == 2  # FULL
    assert f.read("PRAGMA journal_mode")[0][0] == "wal"
    assert [r[1] for r in f.read("PRAGMA table_info(t)")] == ["x", "y"]


def test_a_version_0_challenger_file_migrates_and_keeps_its_claims(tmp_path: Path) -> None:
    path = tmp_path / "challenger.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(CHALLENGER_V0)
    assert _pragma(path, "user_version") == 0

    s = Store(path)
    assert s.sql.version == len(challenger_store.MIGRATIONS) == 4
    (claim,) = s.claims()
    assert (claim.request_id, claim.state, claim.expected) == (7, ClaimState.CORRECT, b"\x01")
    assert (claim.nonce, claim.tx_block, claim.settled, claim.orphaned) == (None, None, False, False)
    assert s.last_block() == (10, "0xab")
    assert s.all_txs() == [] and s.get_meta("next_nonce") is None  # version 4: the shared manager's txs table
    s.close()
    assert _pragma(path, "user_version") == 4


def test_a_version_3_challenger_file_keeps_its_challenge_in_flight_for_the_chain_to_settle(tmp_path: Path) -> None:
    """Before version 4 a challenge in flight lived only in its claim (tx hash, nonce); the shared manager has
    no stored bytes for it, so the prover settles that claim from the chain (and sends anew if still open)."""
    path = tmp_path / "challenger.db"
    old = SqliteFile(path, challenger_store.MIGRATIONS[:3])
    with old.tx() as c:
        c.execute("INSERT INTO claims(request_id, model_id, operator, output, block_number, submitted_at, deadline,"
                  " state, tx_hash, nonce, updated_at) VALUES"
                  f" ('0x{9:064x}', 1, '0xop', x'02', 10, 100, 400, 'challenging', '0xfeed', 3, 0)")
    old.close()
    assert _pragma(path, "user_version") == 3

    s = Store(path)
    assert s.sql.version == 4
    (claim,) = s.claims()
    assert (claim.state, claim.tx_hash, claim.nonce) == (ClaimState.CHALLENGING, "0xfeed", 3)
    assert s.tx_record("0xfeed") is None and s.pending_txs() == []
    s.close()


def test_a_version_0_worker_file_opens_at_the_newest_version_with_its_jobs(tmp_path: Path) -> None:
    path = tmp_path / "worker.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(worker_schema.SCHEMA)  # what the worker wrote before schema versions
        conn.execute("INSERT INTO cursor(id, block_number, block_hash) VALUES (1, 5, '0xcd')")
        conn.execute("INSERT INTO jobs(request_id, model_id, requester, fee, input, block_number, block_hash,"
                     " requested_at, state, created_at, updated_at) VALUES"
                     f" ('0x{2:064x}', 1, '0xuser', '10', x'01', 5, '0xcd', 90, 'seen', 0, 0)")
    db = Database(path)
    assert db.sql.version == len(worker_schema.MIGRATIONS) == 4
    assert db.parked_models() == {} and db.binding_verdict((b"a", b"b", b"", "v")) is None  # version 2 tables
    assert db.sql.read("SELECT COUNT(*) FROM games")[0][0] == 0  # version 3
    old = db.job(2)
    assert old is not None and old.assignee == ""  # version 4 added the assignee: none for older jobs
    db.advance([NewJob(3, 1, "0xuser", 10, b"in", 6, "0xef", 100)], [(6, "0xef")], (6, "0xef"))
    assert db.last_block() == (6, "0xef")
    job = db.job(3)
    assert job is not None and job.state is JobState.SEEN


def test_worker_jobs_open_to_an_operator_and_its_assignment_counts(tmp_path: Path) -> None:
    db = Database(tmp_path / "worker.db")
    me, other = "0x" + "aa" * 20, "0x" + "bb" * 20
    db.advance([NewJob(1, 1, "0xuser", 10, b"in", 6, "0xef", 100, me),
                NewJob(2, 1, "0xuser", 10, b"in", 6, "0xef", 100, other),
                NewJob(3, 1, "0xuser", 10, b"in", 6, "0xef", 100, ""),
                NewJob(4, 1, "0xuser", 10, b"in", 6, "0xef", 100, me)], [(6, "0xef")], (6, "0xef"))
    # Only jobs requested before the cut (now - EXCLUSIVE_PERIOD + 1) are open to all: the other's job waits.
    assert [j.request_id for j in db.open_to(JobState.SEEN, me.upper().replace("0X", "0x"), 100, 10)] == [1, 3, 4]
    assert [j.request_id for j in db.open_to(JobState.SEEN, me, 101, 10)] == [1, 2, 3, 4]
    db.set_state([1], JobState.SUBMITTED)
    db.set_state([4], JobState.LOST, error="answered by another after the period")
    assert db.assignment_counts(me) == {"assigned": 2, "answered": 1, "missed": 1}
    assert db.assignment_counts(other) == {"assigned": 1, "answered": 0, "missed": 0}


def test_a_failing_migration_leaves_the_file_at_its_version(tmp_path: Path) -> None:
    path = tmp_path / "half.db"
    SqliteFile(path, ["CREATE TABLE t(x INTEGER)"]).close()
    with pytest.raises(sqlite3.OperationalError):
        SqliteFile(path, ["CREATE TABLE t(x INTEGER)", "CREATE TABLE u(y INTEGER); INSERT INTO nowhere VALUES (1)"])
    assert _pragma(path, "user_version") == 1
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT name FROM sqlite_master WHERE name='u'").fetchone() is None


def test_a_file_newer_than_the_program_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    SqliteFile(path, ["CREATE TABLE t(x INTEGER)", "CREATE TABLE u(y INTEGER)"]).close()
    with pytest.raises(RuntimeError, match="schema version 2, newer"):
        SqliteFile(path, ["CREATE TABLE t(x INTEGER)"])
