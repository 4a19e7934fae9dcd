"""HTTP shapes of the dashboard and the try-it page.

Amounts are wei as decimal strings and ids, hashes and bytes are 0x-hex, so JavaScript never rounds them. A
fee is in its model's asset: ETH (wei), or the ERC-20 ``fee_token`` in base units (``fee_decimals`` of them
make one ``fee_symbol``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from oracle.lifecycle import Stage

StatusName = Literal[
    "NONE", "PENDING", "EXPIRED", "REFUNDED", "SUBMITTED", "FINALIZABLE", "FINALIZED", "FRAUD_PROVEN"
]

PIXELS = 64
MAX_INTENSITY = 16


class ChainOut(BaseModel):
    chain_id: int
    oracle: str
    start_block: int
    block: int = Field(description="Last indexed block")
    chain_time: int = Field(description="Timestamp of the last indexed block; statuses are as of this time")
    indexed_at: float = Field(description="Wall-clock unix time of the refresh")
    stale: bool = Field(description="The last refresh failed; this is the previous snapshot")
    error: str | None


class ParametersOut(BaseModel):
    challenge_window: int
    request_timeout: int
    unbonding_period: int
    min_bond_ratio: int
    max_callback_gas: int


class FeeAsset(BaseModel):
    """The asset a model's fee is paid in."""

    fee_token: str | None = Field(description="The fee's ERC-20 token; null: the fee is in ETH (wei)")
    fee_symbol: str = Field(description="ETH, the token's symbol, or its address when it has none")
    fee_decimals: int = Field(description="18 for ETH; the token's decimals (0 when it declares none)")


class RequestOut(FeeAsset):
    id: str = Field(description="Request id, 0x + 64 hex digits")
    model_id: int
    requester: str
    fee: str
    callback_gas_limit: int
    input: str
    status: StatusName = Field(description="What statusOf returns at the indexed block (time `as_of`)")
    as_of: int = Field(description="Chain time (last indexed block's timestamp) the status refers to")
    stage: Stage
    requested_at: int
    requested_block: int
    request_tx: str
    expires_at: int = Field(description="Unanswered after this, the fee can be refunded")
    operator: str | None
    output: str | None = Field(description="The attested output (what the operator claimed)")
    submitted_at: int | None
    submit_tx: str | None
    challenge_deadline: int | None
    seconds_left: int | None = Field(description="Seconds left in the challenge window (open results only)")
    finalized: bool
    fraud: bool
    refunded: bool
    correct_output: str | None = Field(description="The re-executed output, after a proven fraud")
    final_output: str | None = Field(description="What the requester received, once settled")
    challenger: str | None
    callback_succeeded: bool | None
    settled_at: int | None
    settle_tx: str | None


class OperatorOut(BaseModel):
    address: str
    staked: str
    locked: str = Field(description="Bonds backing open attestations")
    free: str
    pending: str = Field(description="Unbonding, still slashable")
    withdrawable_at: int
    credits: str
    results_submitted: int
    results_finalized: int
    fees_earned: str = Field(description="ETH fees of finalized requests, wei (token fees are not summed here)")
    slashes: int
    slashed: str


class DisputeOut(BaseModel):
    request_id: str
    model_id: int | None
    operator: str
    challenger: str
    claimed_output: str | None
    correct_output: str
    reward: str
    burned: str
    slashed: str
    callback_succeeded: bool
    block: int
    time: int
    tx: str


class ModelOut(FeeAsset):
    id: int
    owner: str
    mode: Literal["EXACT", "ATTESTED"]
    fee: str
    bond: str
    input_length: int
    output_length: int
    onnx_hash: str
    program_commitment: str | None = Field(description="keccak256 of the on-chain integer program (EXACT)")
    uri: str
    retired: bool
    registered_block: int | None = Field(description="null: registered before the dashboard's start block")
    requests: int


class TotalsOut(BaseModel):
    requests: int = Field(description="Requests seen since start_block")
    by_status: dict[str, int]
    frauds_proven: int
    slashed: str
    rewarded: str
    burned: str


class GameOut(BaseModel):
    """One interactive dispute game (docs/protocol.md, "Dispute game (v2)")."""

    game: int
    request_id: str
    phase: Literal["NONE", "DEFEND", "BISECT", "CHOOSE", "STEP", "RESOLVED"]
    challenger: str
    operator: str
    lo: int = Field(description="Agreed state index (ops executed)")
    hi: int = Field(description="Disputed state index")
    challenger_clock_s: int
    operator_clock_s: int
    root_lo: str
    root_hi: str
    to_move: Literal["operator", "challenger"] | None = None
    seconds_left: int | None = Field(None, description="On the clock of the side that must move")
    winner: Literal["operator", "challenger"] | None = None


class DashboardState(BaseModel):
    chain: ChainOut
    parameters: ParametersOut
    totals: TotalsOut
    requests: list[RequestOut] = Field(description="Newest first, at most `limit`")
    operators: list[OperatorOut]
    disputes: list[DisputeOut] = Field(description="Newest first")
    models: list[ModelOut]


class TryConfig(BaseModel):
    enabled: bool
    model_id: int | None
    fee: str | None
    requester: str | None
    pixels: int = PIXELS
    max_intensity: int = MAX_INTENSITY
    reason: str | None = Field(None, description="Why try-it is unavailable")


Pixel = Annotated[StrictInt, Field(ge=0, le=MAX_INTENSITY)]


class TryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pixels: list[Pixel] = Field(
        min_length=PIXELS,
        max_length=PIXELS,
        description="8x8 grid, row-major, each 0 (blank) .. 16 (full ink)",
    )


class TryOut(BaseModel):
    request_id: str
    model_id: int
    fee: str
    requester: str
    tx_hash: str
    block: int
