"""The dashboard's read model: immutable records of requests, operators, disputes and models, and the
:class:`Snapshot` that holds them (built by :class:`~oracle.api.dashboard.indexer.DashboardIndexer`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from oracle.chain.erc20 import TokenMeta
from oracle.chain.types import Mode
from oracle.lifecycle import Status, derive_status


@dataclass(frozen=True)
class RequestRecord:
    request_id: int
    model_id: int
    requester: str
    fee: int
    callback_gas_limit: int
    input: bytes
    requested_at: int
    requested_block: int
    request_tx: str
    operator: str | None = None
    output: bytes | None = None
    submitted_at: int | None = None
    submit_tx: str | None = None
    finalized: bool = False
    fraud: bool = False
    refunded: bool = False
    correct_output: bytes | None = None
    challenger: str | None = None
    callback_succeeded: bool | None = None
    settled_at: int | None = None
    settle_tx: str | None = None

    def status(self, now: int, challenge_window: int, request_timeout: int) -> Status:
        return derive_status(
            requested_at=self.requested_at,
            submitted_at=self.submitted_at,
            finalized=self.finalized,
            fraud=self.fraud,
            refunded=self.refunded,
            now=now,
            challenge_window=challenge_window,
            request_timeout=request_timeout,
        )


@dataclass(frozen=True)
class OperatorRecord:
    address: str
    staked: int = 0
    locked: int = 0
    pending: int = 0
    withdrawable_at: int = 0
    credits: int = 0
    results_submitted: int = 0
    results_finalized: int = 0
    fees_earned: int = 0
    slashes: int = 0
    slashed: int = 0


@dataclass(frozen=True)
class DisputeRecord:
    request_id: int
    model_id: int | None
    operator: str
    challenger: str
    claimed_output: bytes | None
    correct_output: bytes
    reward: int
    burned: int
    slashed: int
    callback_succeeded: bool
    block: int
    time: int
    tx: str


@dataclass(frozen=True)
class ModelRecord:
    model_id: int
    owner: str
    mode: Mode
    fee: int
    bond: int
    input_length: int
    output_length: int
    onnx_hash: bytes
    program_commitment: bytes
    uri: str
    registered_block: int | None  # None: registered before the dashboard's start block
    fee_token: str | None = None  # the fee's ERC-20; None: ETH
    retired: bool = False
    requests: int = 0


@dataclass(frozen=True)
class Parameters:
    challenge_window: int
    request_timeout: int
    unbonding_period: int
    min_bond_ratio: int
    max_callback_gas: int


@dataclass(frozen=True)
class Snapshot:
    """What the dashboard shows, as of block ``block`` (timestamp ``chain_time``)."""

    chain_id: int
    oracle: str
    start_block: int
    block: int
    chain_time: int
    indexed_at: float  # wall clock (unix seconds) of the refresh that produced this snapshot
    params: Parameters
    requests: tuple[RequestRecord, ...]  # chronological
    requests_by_id: dict[int, RequestRecord]
    requests_seen: int  # including ones evicted from memory
    operators: tuple[OperatorRecord, ...]
    disputes: tuple[DisputeRecord, ...]
    models: tuple[ModelRecord, ...]
    tokens: dict[str, TokenMeta] = field(default_factory=dict)  # metadata of the models' fee tokens
    error: str | None = None  # the last refresh failed; this snapshot is older than it could be

    def fee_asset(self, model_id: int) -> tuple[str | None, str, int]:
        """The fee asset of ``model_id``: (token or None for ETH, symbol, decimals)."""
        token = next((m.fee_token for m in self.models if m.model_id == model_id), None)
        if token is None:
            return None, "ETH", 18
        meta = self.tokens.get(token)
        return (token, meta.symbol, meta.decimals) if meta else (token, token, 0)

    def status_of(self, r: RequestRecord) -> Status:
        return r.status(self.chain_time, self.params.challenge_window, self.params.request_timeout)
