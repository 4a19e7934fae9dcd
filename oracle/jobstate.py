"""Where a job is in the worker's pipeline, and what it becomes when the chain says where its request is.

:func:`job_state_for` is the worker's one mapping from the contract's status (:mod:`oracle.lifecycle`) to a
job's state; the worker stores and reads these states through :mod:`oracle.worker.db`, and the operator API
(:mod:`oracle.api`) shows and filters jobs by them, so the vocabulary lives here, outside both.
"""

from __future__ import annotations

from enum import Enum

from oracle.lifecycle import Status, is_attested


class JobState(str, Enum):
    """Where a request is in the worker's pipeline."""

    SEEN = "seen"  # request event ingested, not executed yet
    EXECUTED = "executed"  # output computed, ready to submit
    SENT = "sent"  # submission transaction signed, stored and (maybe) broadcast
    SUBMITTED = "submitted"  # our ResultSubmitted is mined
    FINALIZING = "finalizing"  # finalize transaction signed, stored and (maybe) broadcast
    FINALIZED = "finalized"  # paid
    LOST = "lost"  # another operator answered first
    SKIPPED = "skipped"  # not served here, or too little time left
    EXPIRED = "expired"  # deadline passed before we could submit
    FAILED = "failed"  # model refused, inference failed max_attempts times, or the tx kept reverting
    ORPHANED = "orphaned"  # the request's block was reorganised away

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = {JobState.FINALIZED, JobState.LOST, JobState.SKIPPED, JobState.EXPIRED, JobState.FAILED,
          JobState.ORPHANED}


def job_state_for(status: Status, ours: bool) -> JobState:
    """What a job becomes once its request's on-chain status is known (after a lost race, a drop or a reorg);
    ``ours``: the result on-chain is this node's."""
    if status is Status.NONE:
        return JobState.ORPHANED  # the request is not on the chain we see
    if status is Status.PENDING:
        return JobState.EXECUTED  # nothing landed: submit again
    if status in (Status.EXPIRED, Status.REFUNDED):
        return JobState.EXPIRED
    if not ours:
        return JobState.LOST
    if is_attested(status):
        return JobState.SUBMITTED
    return JobState.FINALIZED if status is Status.FINALIZED else JobState.FAILED  # FRAUD_PROVEN: slashed
