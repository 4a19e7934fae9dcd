"""The worker's record of one request (:class:`Job`, a row of the ``jobs`` table) and a request event to ingest
(:class:`NewJob`). Request ids are uint256, stored as 0x-prefixed 64-digit hex text (:func:`rid_hex`)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from oracle.jobstate import JobState


@dataclass(frozen=True)
class Job:
    request_id: int
    model_id: int
    requester: str
    fee: int
    input: bytes
    block_number: int
    block_hash: str
    requested_at: int
    state: JobState
    output: bytes | None
    tx_hash: str | None
    nonce: int | None
    submit_block: int | None
    challenge_deadline: int | None
    attempts: int
    error: str | None
    created_at: float
    updated_at: float
    assignee: str = ""  # lower-case address that alone may answer during the exclusive period; '' if none

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> Job:
        return cls(int(r["request_id"], 16), r["model_id"], r["requester"], int(r["fee"]), bytes(r["input"]),
                   r["block_number"], r["block_hash"], r["requested_at"], JobState(r["state"]),
                   bytes(r["output"]) if r["output"] is not None else None, r["tx_hash"], r["nonce"],
                   r["submit_block"], r["challenge_deadline"], r["attempts"], r["error"], r["created_at"],
                   r["updated_at"], r["assignee"])


@dataclass(frozen=True)
class NewJob:
    request_id: int
    model_id: int
    requester: str
    fee: int
    input: bytes
    block_number: int
    block_hash: str
    requested_at: int
    assignee: str = ""  # lower-case; '' when the request has none
