"""The ``games`` table both daemons keep in their SQLite file (a schema migration of each): which dispute games
are theirs and how each ended. Bookkeeping only: every move is decided from the chain (:mod:`oracle.dispute.party`).

Schema::

    games(request_id TEXT, game_id INTEGER,        -- game_id 0: a challenger's game not opened (or not found) yet
          state TEXT,                              -- opening | playing | won | lost
          moves INTEGER, tx_hash TEXT,             -- our transactions so far, the last one
          error TEXT, updated_at REAL, PRIMARY KEY(request_id, game_id))
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from oracle.chain.types import rid_hex
from oracle.storage import SqliteFile

SCHEMA = """
CREATE TABLE IF NOT EXISTS games(
    request_id TEXT NOT NULL, game_id INTEGER NOT NULL, state TEXT NOT NULL, moves INTEGER NOT NULL DEFAULT 0,
    tx_hash TEXT, error TEXT, updated_at REAL NOT NULL, PRIMARY KEY(request_id, game_id));
CREATE INDEX IF NOT EXISTS games_state ON games(state)
"""

OPEN_STATES = ("opening", "playing")


@dataclass(frozen=True)
class GameRow:
    request_id: int
    game_id: int
    state: str
    moves: int
    tx_hash: str | None
    error: str | None


class GameBook:
    def __init__(self, sql: SqliteFile) -> None:
        self.sql = sql

    def add(self, request_id: int, game_id: int, state: str = "playing", reopen: bool = False) -> bool:
        """Records a game (idempotent); True if it was new. ``reopen``: a row that had ended is set to ``state``
        again (a claim that came back after a reorg)."""
        sql = "INSERT INTO games(request_id, game_id, state, updated_at) VALUES (?,?,?,?) ON CONFLICT DO "
        sql += "UPDATE SET state=excluded.state, error=NULL WHERE games.state NOT IN ('opening', 'playing')" \
            if reopen else "NOTHING"
        with self.sql.tx() as c:
            return c.execute(sql, (rid_hex(request_id), game_id, state, time.time())).rowcount == 1

    def update(self, request_id: int, game_id: int, *, state: str | None = None, new_game_id: int | None = None,
               tx_hash: str | None = None, error: str | None = None) -> None:
        """Moves a row on; a ``tx_hash`` counts one more move of ours."""
        with self.sql.tx() as c:
            c.execute("UPDATE games SET state=COALESCE(?, state), game_id=COALESCE(?, game_id),"
                      " tx_hash=COALESCE(?, tx_hash), moves=moves + ?, error=?, updated_at=?"
                      " WHERE request_id=? AND game_id=?",
                      (state, new_game_id, tx_hash, int(tx_hash is not None), error, time.time(),
                       rid_hex(request_id), game_id))

    def rows(self, open_only: bool = False, limit: int = 1000) -> list[GameRow]:
        where = f" WHERE state IN ({','.join('?' * len(OPEN_STATES))})" if open_only else ""
        args = [*OPEN_STATES] if open_only else []
        return [GameRow(int(r["request_id"], 16), r["game_id"], r["state"], r["moves"], r["tx_hash"], r["error"])
                for r in self.sql.read(f"SELECT * FROM games{where} ORDER BY updated_at DESC LIMIT ?",
                                       [*args, limit])]
