"""The ``games`` table of both daemons (``oracle.dispute.book``) and the schema migrations that add it."""

from __future__ import annotations

from pathlib import Path

from oracle.challenger.store import MIGRATIONS as CHALLENGER_MIGRATIONS
from oracle.challenger.store import SCHEMA as CHALLENGER_V1
from oracle.challenger.store import Store
from oracle.dispute.book import SCHEMA, GameBook
from oracle.storage import SqliteFile
from oracle.worker.db import Database
from oracle.worker.schema import MIGRATIONS as WORKER_MIGRATIONS
from oracle.worker.schema import SCHEMA as WORKER_V1


def test_rows_are_idempotent_and_a_claim_back_after_a_reorg_reopens_its_row() -> None:
    book = GameBook(SqliteFile(":memory:", (SCHEMA,)))
    assert book.add(7, 0, "opening") and not book.add(7, 0, "opening")
    book.update(7, 0, state="playing", new_game_id=3, tx_hash="0xaa")
    book.update(7, 3, tx_hash="0xbb")
    (row,) = book.rows(open_only=True)
    assert (row.game_id, row.state, row.moves, row.tx_hash) == (3, "playing", 2, "0xbb")
    book.update(7, 3, state="lost", error="claim is NONE before our game opened")
    assert book.rows(open_only=True) == []
    assert not book.add(7, 3, "playing")  # an ended game stays ended...
    assert book.add(7, 3, "playing", reopen=True)  # ...unless its claim came back
    assert [(r.state, r.error) for r in book.rows(open_only=True)] == [("playing", None)]


def test_existing_state_files_are_migrated(tmp_path: Path) -> None:
    SqliteFile(tmp_path / "w.sqlite3", (WORKER_V1,)).close()  # a worker file of the previous release
    db = Database(tmp_path / "w.sqlite3")
    assert db.sql.version == len(WORKER_MIGRATIONS) and GameBook(db.sql).add(1, 1)
    db.close()
    from oracle.challenger.store import ADDED_COLUMNS
    from oracle.storage import add_missing_columns

    SqliteFile(tmp_path / "c.sqlite3", (CHALLENGER_V1, add_missing_columns("claims", ADDED_COLUMNS))).close()
    store = Store(tmp_path / "c.sqlite3")
    assert store.sql.version == len(CHALLENGER_MIGRATIONS) and GameBook(store.sql).add(1, 0, "opening")
    store.close()
