"""One SQLite file of a daemon: its connection, pragmas, locked reads and writes, and schema migrations.

Every SQLite database of the project (the worker's jobs and transactions, the challenger's claims) opens
through :class:`SqliteFile`, so they cannot drift apart again:

- **one connection, one re-entrant lock**: a read and a write transaction never interleave on it, and a
  read inside a write transaction (same thread) sees that transaction's rows;
- **WAL with ``synchronous=FULL``**. In WAL mode ``NORMAL`` survives a killed process but not a power loss
  or an OS crash: the last commits can vanish. Both daemons write a signed transaction (a submission, a
  finalize, a challenge) *before* broadcasting it, so that a restart re-broadcasts the same bytes instead of
  signing a second transaction with the same nonce; a commit lost after its broadcast breaks exactly that
  promise (a double submission, or a challenge the daemon no longer knows it sent). ``FULL`` syncs the WAL
  at each commit, a millisecond at rates of a few commits per block: cheap for that guarantee;
- **migrations by ``PRAGMA user_version``**: ``migrations[i]`` takes a file from version ``i`` to ``i + 1``
  in the same transaction that records the new version, so a file is never half-migrated. Version 0 is
  also a file written before versions existed: the first migration must accept one (``IF NOT EXISTS``).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: one step of a schema: an SQL script, or a function of the connection (inside the migration's transaction)
Migration = str | Callable[[sqlite3.Connection], None]


def add_missing_columns(table: str, columns: Sequence[tuple[str, str]]) -> Callable[[sqlite3.Connection], None]:
    """A migration that adds ``(name, declaration)`` columns a file does not have yet (a file may predate some)."""

    def migrate(conn: sqlite3.Connection) -> None:
        have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
        for name, decl in columns:
            if name not in have:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")

    return migrate


class SqliteFile:
    """A SQLite database file (or ``:memory:``) brought to the newest version of ``migrations``."""

    def __init__(self, path: Path | str, migrations: Sequence[Migration], *, timeout: float = 30.0) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=timeout)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        #: committed write transactions so far (a daemon loop's measure of progress)
        self.writes = 0
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._migrate(migrations)

    @property
    def version(self) -> int:
        return int(self.read("PRAGMA user_version")[0][0])

    def _migrate(self, migrations: Sequence[Migration]) -> None:
        version = self.version
        if version > len(migrations):
            raise RuntimeError(f"{self.path} has schema version {version}, newer than this program knows "
                               f"({len(migrations)}); upgrade the program or use another state file")
        for target, step in enumerate(migrations[version:], start=version + 1):
            with self.tx() as conn:
                if isinstance(step, str):
                    for statement in step.split(";"):  # executescript would commit the open transaction
                        if statement.strip():
                            conn.execute(statement)
                else:
                    step(conn)
                conn.execute(f"PRAGMA user_version={target}")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One atomic write transaction (BEGIN IMMEDIATE ... COMMIT, ROLLBACK on any exception)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            self.writes += 1

    def read(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """All rows of one query, under the lock."""
        with self._lock:
            return self._conn.execute(sql, args).fetchall()
