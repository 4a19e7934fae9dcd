"""Typed mirrors of the contracts' enums, structs and events (frozen dataclasses); ``Status`` lives with the
rest of the request lifecycle in :mod:`oracle.lifecycle`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from eth_utils.crypto import keccak

from oracle.lifecycle import Status


def rid_hex(request_id: int) -> str:
    """A request id (uint256) as the node's, the challenger's and the dashboard's stores and APIs write it:
    0x-prefixed, 64 hex digits."""
    return f"0x{request_id:064x}"


def attested_hash(output: bytes) -> bytes:
    """What the oracle keeps of an attested output, as `getRequest` returns it: the first 24 bytes of its
    keccak256, zero-padded to 32 (the result's hash shares a storage slot with its operator id, time and flags)."""
    return keccak(output)[:24] + bytes(8)

__all__ = ["Head", "InferenceRequested", "Mode", "Model", "ModelSpec", "RequestView", "ResultSubmitted", "StakeInfo",
           "Status"]


#: `feeToken` of a model whose fee is paid in ETH.
ETH = "0x" + "00" * 20


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
    fee_token: str = ETH  # the ERC-20 the fee is paid in (ETH: the zero address)

    def as_tuple(self) -> tuple[object, ...]:
        return (self.onnx_hash, self.program_commitment, self.fee, self.bond, self.input_length,
                self.output_length, int(self.mode), self.uri, self.fee_token)


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
    fee_token: str = ETH  # the ERC-20 the fee is paid in (ETH: the zero address)

    @property
    def fee_in_token(self) -> bool:
        return int(self.fee_token, 16) != 0

    @classmethod
    def from_struct(cls, model_id: int, m: Any) -> Model:
        """From `getModel`'s `IModelRegistry.Model` struct, as web3 decodes it with ``decode_tuples``."""
        return cls(model_id, m.owner, m.retired, Mode(m.mode), m.fee, m.bond, m.inputLength, m.outputLength,
                   bytes(m.onnxHash), bytes(m.programCommitment), m.uri, str(m.feeToken))


@dataclass(frozen=True)
class StakeInfo:
    staked: int
    locked: int
    pending: int
    withdrawable_at: int

    @property
    def free(self) -> int:
        return self.staked - self.locked

    @classmethod
    def from_struct(cls, s: Any) -> StakeInfo:
        """From `stakeOf`'s `StakeInfo` struct, as web3 decodes it with ``decode_tuples``."""
        return cls(s.staked, s.locked, s.pending, s.withdrawableAt)


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

    def attests(self, output: bytes) -> bool:
        """Whether `output` is this request's attested output (the oracle's `isAttestedOutput`)."""
        return self.output_hash != bytes(32) and self.output_hash == attested_hash(output)

    @classmethod
    def from_struct(cls, request_id: int, v: Any) -> RequestView:
        """From `getRequest`'s `RequestView` struct, as web3 decodes it with ``decode_tuples``."""
        return cls(request_id, v.requester, v.modelId, v.callbackGasLimit, v.requestedAt, v.operator, v.submittedAt,
                   bytes(v.outputHash), v.callbackSucceeded, Status(v.status))


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
