"""Typed mirrors of the contracts' enums, structs and events (frozen dataclasses); ``Status`` lives with the
rest of the request lifecycle in :mod:`oracle.lifecycle`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from oracle.lifecycle import Status

__all__ = ["Head", "InferenceRequested", "Mode", "Model", "ModelSpec", "RequestView", "ResultSubmitted", "StakeInfo",
           "Status"]


class Mode(IntEnum):
    """`IModelRegistry.Mode`."""

    EXACT = 0
    ATTESTED = 1


@dataclass(frozen=True)
class ModelSpec:
    """Parameters of a new model version (`IModelRegistry.ModelSpec`)."""

    onnx_hash: bytes
    fee: int
    bond: int
    input_length: int
    output_length: int
    mode: Mode
    uri: str
    program_commitment: bytes = b"\x00" * 32

    def as_tuple(self) -> tuple[object, ...]:
        return (self.onnx_hash, self.program_commitment, self.fee, self.bond, self.input_length,
                self.output_length, int(self.mode), self.uri)


@dataclass(frozen=True)
class Model:
    """A registered model version (`IModelRegistry.Model`)."""

    model_id: int
    owner: str
    retired: bool
    mode: Mode
    fee: int
    bond: int
    input_length: int
    output_length: int
    onnx_hash: bytes
    program_commitment: bytes
    uri: str


@dataclass(frozen=True)
class StakeInfo:
    staked: int
    locked: int
    pending: int
    withdrawable_at: int

    @property
    def free(self) -> int:
        return self.staked - self.locked


@dataclass(frozen=True)
class RequestView:
    request_id: int
    requester: str
    model_id: int
    callback_gas_limit: int
    requested_at: int
    operator: str
    submitted_at: int
    output_hash: bytes
    callback_succeeded: bool
    status: Status


@dataclass(frozen=True)
class InferenceRequested:
    request_id: int
    model_id: int
    requester: str
    fee: int
    callback_gas_limit: int
    input: bytes
    block_number: int
    block_hash: bytes
    tx_hash: bytes
    log_index: int
    #: the operator that alone may answer during the exclusive period (zero address: anyone, at once)
    assignee: str = "0x" + "00" * 20


@dataclass(frozen=True)
class ResultSubmitted:
    request_id: int
    operator: str
    output: bytes
    block_number: int
    block_hash: bytes
    tx_hash: bytes
    log_index: int


@dataclass(frozen=True)
class Head:
    """The latest block as seen at the start of a loop iteration."""

    number: int
    hash: str
    timestamp: int
    base_fee: int
