"""HTTP request and response models (pydantic lives only at the edges)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    ready: bool
    started: bool
    caught_up: bool
    paused: bool
    executor_alive: bool
    cursor_block: int | None
    head_block: int | None
    consecutive_errors: int
    last_error: str | None
    parked_models: dict[int, str] = Field(default_factory=dict,
                                          description="Parked model id -> why (POST /admin/unpark/{id})")


class ParkedModel(BaseModel):
    model_id: int
    reason: str
    parked_at: float
    dropped: int = Field(description="Jobs of the model dropped while it was parked")


class ParkedList(BaseModel):
    parked: list[ParkedModel]


class UnparkOut(BaseModel):
    model_id: int
    unparked: bool


class JobOut(BaseModel):
    request_id: str
    model_id: int
    requester: str
    fee: str
    state: str
    input: str
    output: str | None
    tx_hash: str | None
    nonce: int | None
    block_number: int
    submit_block: int | None
    challenge_deadline: int | None
    attempts: int
    error: str | None
    created_at: float
    updated_at: float


class JobList(BaseModel):
    jobs: list[JobOut]
    counts: dict[str, int]


class Ack(BaseModel):
    ok: bool
    paused: bool


class WithdrawIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: str | None = Field(None, pattern=r"^0x[0-9a-fA-F]{40}$", description="Recipient (default: the operator)")


class WithdrawOut(BaseModel):
    sent: bool
    credits: str
    tx_hash: str | None
