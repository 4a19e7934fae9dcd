"""The request lifecycle, in one place: the contract's ``Status``, how it is derived, and what each status allows.

The contract stores no status: ``InferenceOracle._status`` derives it from two timestamps and three flags at
the block's time. :func:`derive_status` is that function, line for line, so a reader that folded the events
(the dashboard) knows a request's status without a call; a property test holds the two against each other
at random times. Every component asks the predicates below instead of listing statuses itself::

    request ──► PENDING ──(deadline)──► EXPIRED ──refund──► REFUNDED
                   │ submit
                   ▼
               SUBMITTED ──(challenge window ends)──► FINALIZABLE ──finalize──► FINALIZED
                   │ challenge proves fraud
                   ▼
               FRAUD_PROVEN

Bounds never overlap: before a deadline is ``now < deadline``, after it is ``now >= deadline``. Each daemon
maps a chain status to its own local state in one function beside its store (the worker's ``job_state_for``
in ``oracle.jobstate``, the challenger's ``claim_state_for`` in ``oracle.challenger.store``).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Literal


class Status(IntEnum):
    """`IInferenceOracle.Status` (derived on-chain from timestamps and flags; numbers are the ABI's)."""

    NONE = 0
    PENDING = 1
    EXPIRED = 2
    REFUNDED = 3
    SUBMITTED = 4
    FINALIZABLE = 5
    FINALIZED = 6
    FRAUD_PROVEN = 7

    @property
    def is_final(self) -> bool:
        return is_final(self)


def derive_status(
    *,
    requested_at: int,
    submitted_at: int | None,
    finalized: bool,
    fraud: bool,
    refunded: bool,
    now: int,
    challenge_window: int,
    request_timeout: int,
) -> Status:
    """Mirror of ``InferenceOracle._status`` for a known request (``submitted_at`` None = no result)."""
    if not submitted_at:
        if refunded:
            return Status.REFUNDED
        return Status.PENDING if now < requested_at + request_timeout else Status.EXPIRED
    if fraud:
        return Status.FRAUD_PROVEN
    if finalized:
        return Status.FINALIZED
    return Status.SUBMITTED if now < submitted_at + challenge_window else Status.FINALIZABLE


def is_challengeable(status: Status) -> bool:
    """A result is posted and its challenge window is open."""
    return status is Status.SUBMITTED


def is_finalizable(status: Status) -> bool:
    """The challenge window is over; anyone may finalize with the attested output."""
    return status is Status.FINALIZABLE


def is_attested(status: Status) -> bool:
    """A result is posted and not settled yet (challengeable or finalizable)."""
    return status in (Status.SUBMITTED, Status.FINALIZABLE)


def is_refundable(status: Status) -> bool:
    """No result came before the deadline; the requester can take the fee back."""
    return status is Status.EXPIRED


def is_final(status: Status) -> bool:
    """Nothing can change it any more."""
    return status in (Status.REFUNDED, Status.FINALIZED, Status.FRAUD_PROVEN)


Stage = Literal["requested", "attested", "finalized", "fraud_proven", "expired", "refunded"]

_STAGE: dict[Status, Stage] = {
    Status.PENDING: "requested",
    Status.SUBMITTED: "attested",
    Status.FINALIZABLE: "attested",
    Status.FINALIZED: "finalized",
    Status.FRAUD_PROVEN: "fraud_proven",
    Status.EXPIRED: "expired",
    Status.REFUNDED: "refunded",
}


def stage(status: Status) -> Stage:
    """The step of the game a person sees, without the time split (a known request only)."""
    return _STAGE[status]
