"""The worker database's tables and their versions (applied in order by :class:`oracle.storage.SqliteFile`).

Schema (opened through :mod:`oracle.storage`; request ids are uint256, stored as 0x-prefixed 64-digit hex text)::

    jobs(request_id TEXT PK, model_id INT, requester TEXT, fee TEXT, input BLOB,
         block_number INT, block_hash TEXT, requested_at INT,       -- where and when the request was mined
         state TEXT,                                                  -- see JobState
         output BLOB, tx_hash TEXT, nonce INT,                        -- last submission transaction
         submit_block INT, challenge_deadline INT, attempts INT, error TEXT,
         created_at REAL, updated_at REAL,
         assignee TEXT)                                               -- lower-case; '' when none (version 2)
    cursor(id INT PK = 1, block_number INT, block_hash TEXT)         -- last fully processed block
    blocks(number INT PK, hash TEXT)                                  -- recent blocks, for reorg detection
    txs(tx_hash TEXT PK, nonce INT, kind TEXT, request_ids TEXT,      -- every signed tx, before broadcast
        raw BLOB, max_fee INT, priority_fee INT, state TEXT, block_number INT, sent_at REAL, updated_at REAL)
    meta(key TEXT PK, value TEXT)                                     -- next_nonce, account, games_scanned
    parked_models(model_id INT PK, reason TEXT, parked_at REAL,       -- models too slow to serve (v2)
                  dropped INT)                                        -- jobs dropped while parked
    bindings(onnx_hash, program_commitment, onchain_hash, compiler,   -- EXACT binding verdicts (v2)
             ok INT, reason TEXT, created_at REAL)
    games(...)                                                        -- dispute games (v3, oracle.dispute.book)
"""

from __future__ import annotations

from oracle.chain.txstore import TXS_SCHEMA
from oracle.dispute.book import SCHEMA as GAMES_SCHEMA
from oracle.storage import Migration, add_missing_columns

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    request_id TEXT PRIMARY KEY,
    model_id INTEGER NOT NULL,
    requester TEXT NOT NULL,
    fee TEXT NOT NULL,
    input BLOB NOT NULL,
    block_number INTEGER NOT NULL,
    block_hash TEXT NOT NULL,
    requested_at INTEGER NOT NULL,
    state TEXT NOT NULL,
    output BLOB,
    tx_hash TEXT,
    nonce INTEGER,
    submit_block INTEGER,
    challenge_deadline INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE TABLE IF NOT EXISTS cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    block_number INTEGER NOT NULL,
    block_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS blocks (
    number INTEGER PRIMARY KEY,
    hash TEXT NOT NULL
);
""" + TXS_SCHEMA
#: version 2: models the node parked (too slow) and binding verdicts of EXACT files, both kept across restarts
MODEL_STATE = """
CREATE TABLE IF NOT EXISTS parked_models (
    model_id INTEGER PRIMARY KEY,
    reason TEXT NOT NULL,
    parked_at REAL NOT NULL,
    dropped INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS bindings (
    onnx_hash BLOB NOT NULL,
    program_commitment BLOB NOT NULL,
    onchain_hash BLOB NOT NULL,
    compiler TEXT NOT NULL,
    ok INTEGER NOT NULL,
    reason TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (onnx_hash, program_commitment, onchain_hash, compiler)
)
"""
#: schema versions (PRAGMA user_version): version 1 is the schema as first released, 2 adds the parked models
#: and binding verdicts, 3 the dispute games the node defends (:mod:`oracle.dispute.book`), 4 the assignee of
#: each job (exclusive assignment)
MIGRATIONS: tuple[Migration, ...] = (SCHEMA, MODEL_STATE, GAMES_SCHEMA,
                                     add_missing_columns("jobs", [("assignee", "TEXT NOT NULL DEFAULT ''")]))

