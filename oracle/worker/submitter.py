"""Submitter: turns executed jobs into result batches (``submitResults``) and follows what the chain did with
them; the transactions themselves go through the shared :class:`~oracle.chain.txmanager.TxManager` (the nonce
owner), whose hooks this class fills in for jobs.

One bad item never sinks a batch, and attempts are counted per job, not per batch:

- requests with fewer than ``min_time_left`` seconds before their deadline are skipped, not sent;
- items whose bond the free stake cannot cover (after the ones before them) wait for a later batch (one
  ``freeStake`` read per batch, bonds cached per model);
- a batch whose simulation reverts is bisected down to the items that revert on their own; those get an attempt
  counted and are dropped from this batch (``failed`` once they used up their attempts), the rest go out;
- items the contract would skip (answered by someone else, expired) are found with one JSON-RPC batch of
  ``getRequest`` reads, never one round trip per job.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import structlog
from hexbytes import HexBytes
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError, Web3RPCError

from oracle.chain.reverts import from_web3_error
from oracle.chain.txmanager import GWEI, FeePolicy, TxManager, Update
from oracle.chain.txstore import TxRecord
from oracle.chain.types import Head, RequestView, Status
from oracle.jobstate import JobState, job_state_for
from oracle.worker.db import Database
from oracle.worker.job import Job
from oracle.worker.metrics import Metrics
from oracle.worker.rpc import Rpc

__all__ = ["GWEI", "FeePolicy", "SubmitPolicy", "Submitter"]

log = structlog.get_logger("oracle.worker.submitter")

#: ``getRequest`` reads per JSON-RPC batch
VIEW_BATCH = 100
#: the error a job keeps when the chain settles it
_WHY = {JobState.ORPHANED: "request unknown on-chain (reorg?)",
        JobState.FAILED: "our result was proven wrong (slashed)",
        JobState.EXPIRED: "deadline passed before our submission"}


@dataclass(frozen=True)
class SubmitPolicy:
    batch_size: int = 50
    min_time_left: int = 30
    request_timeout: int = 3600
    challenge_window: int = 3600
    max_attempts: int = 3


class Submitter(TxManager):
    in_flight: dict[str, Enum] = {"submit": JobState.SENT, "finalize": JobState.FINALIZING}
    revive_from: dict[str, tuple[Enum, ...]] = {
        "submit": (JobState.EXECUTED, JobState.SENT, JobState.SUBMITTED),
        "finalize": (JobState.SUBMITTED, JobState.FINALIZING, JobState.FINALIZED)}
    rpc: Rpc
    db: Database
    metrics: Metrics

    def __init__(self, rpc: Rpc, db: Database, account: Any, metrics: Metrics, *, fees: FeePolicy,
                 policy: SubmitPolicy, **kw: Any) -> None:
        super().__init__(rpc, db, account, metrics, fees=fees, **kw)
        self.policy = policy
        self._bonds: dict[int, int] = {}
        # a transport failure the RPC layer retried in place is still a fault the node saw: count it
        rpc.on_retry = lambda _exc: metrics.rpc_errors.inc()

    # ------------------------------------------------------------------ the loop's entry point
    def submit_ready(self, head: Head) -> int:
        """Sends one batch of executed results (if nothing is in flight); returns how many were sent."""
        if self.busy:
            return 0
        jobs = self.db.jobs(JobState.EXECUTED, limit=2 * self.policy.batch_size)
        if not jobs:
            return 0
        fresh: list[Job] = []
        for j in jobs:
            left = j.requested_at + self.policy.request_timeout - head.timestamp
            if left < self.policy.min_time_left:
                self.db.set_state([j.request_id], JobState.SKIPPED,
                                  error=f"too little time left before the deadline ({left} s)")
                self.metrics.requests_skipped.labels(reason="deadline").inc()
                log.info("request_skipped", request_id=hex(j.request_id), reason="deadline", seconds_left=left)
            elif j.attempts > self.policy.max_attempts + 3:
                self.db.set_state([j.request_id], JobState.FAILED, error="submission kept failing")
                self.metrics.requests_failed.labels(reason="submission").inc()
            else:
                fresh.append(j)
        chosen = self._affordable(fresh)
        if not chosen:
            return 0
        keep, accepted = self.isolate_batch(chosen, self._submit_fn)
        if not keep:
            return 0
        if accepted is None:
            return 0  # the items pass alone but not together: the chain moved meanwhile; next step
        if accepted < len(keep):
            states = self.resolve_many(keep)
            keep = [j for j in keep if states[j.request_id] is JobState.EXECUTED]
            if not keep:
                return 0
        ids = [j.request_id for j in keep]
        return len(ids) if self.send("submit", self._submit_fn(keep), ids, JobState.SENT, head) else 0

    # ------------------------------------------------------------------ batch isolation (shared with finalize)
    def _submit_fn(self, jobs: Sequence[Job]) -> ContractFunction:
        return self.rpc.client.submit_batch_fn([j.request_id for j in jobs], [j.output or b"" for j in jobs])

    def simulate(self, fn: ContractFunction) -> int | None:
        """The batch's return value (how many items it takes), or None when it would revert. Transient RPC
        failures raise: they say nothing about the items."""
        try:
            return int(fn.call({"from": self.address}))
        except ContractLogicError as exc:
            log.info("batch_simulation_reverted", error=str(from_web3_error(exc))[:200])
            return None

    def isolate_batch(self, jobs: Sequence[Job], build: Any) -> tuple[list[Job], int | None]:
        """:meth:`isolate`, plus the batch's simulated return value for what is kept (None if it reverts)."""
        count = self.simulate(build(jobs))
        if count is not None:
            return list(jobs), count  # the common case: one simulation
        keep = self.isolate(jobs, build, known_bad=True)
        return keep, (self.simulate(build(keep)) if keep else None)

    def isolate(self, jobs: Sequence[Job], build: Any, known_bad: bool = False) -> list[Job]:
        """Bisects a batch whose simulation reverts down to the items that revert on their own: each of those
        has an attempt counted and is left out; the others are returned. ``build(jobs)`` makes the call."""
        if not known_bad and self.simulate(build(jobs)) is not None:
            return list(jobs)
        if len(jobs) == 1:
            j = jobs[0]
            self.db.bump_attempts([j.request_id])
            log.warning("batch_item_dropped", request_id=hex(j.request_id), attempts=j.attempts + 1)
            return []
        mid = len(jobs) // 2
        return self.isolate(jobs[:mid], build) + self.isolate(jobs[mid:], build)

    def _affordable(self, jobs: Sequence[Job]) -> list[Job]:
        """The first ``batch_size`` jobs whose bonds fit, together, in the free stake."""
        if not jobs:
            return []
        c = self.rpc.client.contract.functions
        free = int(c.freeStake(self.address).call())
        out: list[Job] = []
        for j in jobs:
            bond = self._bond(j.model_id)
            if bond > free:
                log.info("request_waits_for_stake", request_id=hex(j.request_id), bond=bond, free=free)
                continue
            free -= bond
            out.append(j)
            if len(out) >= self.policy.batch_size:
                break
        return out

    def _bond(self, model_id: int) -> int:
        if model_id not in self._bonds:
            self._bonds[model_id] = int(self.rpc.client.get_model(model_id).bond)
        return self._bonds[model_id]

    # ------------------------------------------------------------------ jobs vs the chain
    def views(self, request_ids: Sequence[int]) -> dict[int, RequestView | None]:
        """``getRequest`` of each id in one JSON-RPC batch (None: unknown on-chain)."""
        c = self.rpc.client.contract.functions
        calls = [("eth_call", [{"to": self.rpc.client.address,
                                "data": c.getRequest(r)._encode_transaction_data()}, "latest"])  # noqa: SLF001
                 for r in request_ids]
        results: list[Any] = []
        for i in range(0, len(calls), VIEW_BATCH):  # providers cap batch sizes; 100 is accepted widely
            results += self.rpc.batch(calls[i:i + VIEW_BATCH], errors_ok=True)
        out: dict[int, RequestView | None] = {}
        for rid, res in zip(request_ids, results, strict=True):
            if isinstance(res, Web3RPCError):
                out[rid] = None
                continue
            out[rid] = self.rpc.client.decode_request(rid, HexBytes(res))
        return out

    def resolve_many(self, jobs: Sequence[Job]) -> dict[int, JobState]:
        views = self.views([j.request_id for j in jobs])
        return {j.request_id: self.apply_view(j, views[j.request_id]) for j in jobs}

    def apply_view(self, job: Job, rv: RequestView | None) -> JobState:
        """Moves a job to the state its request's on-chain view says (:func:`~oracle.jobstate.job_state_for`)."""
        rid = job.request_id
        ours = rv is not None and rv.operator.lower() == self.address.lower()
        state = job_state_for(Status.NONE if rv is None else rv.status, ours)
        if state is JobState.EXECUTED:
            self.db.set_state([rid], state, tx_hash=None, nonce=None)
        elif state is JobState.SUBMITTED:
            assert rv is not None
            self.db.set_state([rid], state, challenge_deadline=rv.submitted_at + self.policy.challenge_window)
        elif state is JobState.LOST:
            assert rv is not None
            self.db.set_state([rid], state, error=f"answered by {rv.operator}")
            self.metrics.requests_lost.inc()
        else:
            self.db.set_state([rid], state, error=_WHY.get(state))
        return state

    # ------------------------------------------------------------------ TxManager hooks
    def _record_mined(self, c: sqlite3.Connection, rec: TxRecord, updates: Sequence[Update],
                      recheck: Sequence[int]) -> None:
        for rid, state, fields in updates:
            self.db.set_state([rid], JobState(state), conn=c, **fields)
        # an item the transaction did not settle (reverted, or skipped by the contract) used an attempt
        self.db.bump_attempts(recheck, conn=c)

    def _mined(self, rec: TxRecord, receipt: Any, updates: Sequence[Update]) -> None:
        if rec.kind == "submit":
            self.metrics.requests_submitted.inc(len(updates))
        elif rec.kind == "finalize":
            self.metrics.requests_finalized.inc(len(updates))

    def _apply_receipt(self, rec: TxRecord, receipt: Any) -> tuple[list[Update], list[int]]:
        from oracle.chain.tx import replay_revert

        client = self.rpc.client
        block = int(receipt["blockNumber"])
        if receipt["status"] != 1:
            err = replay_revert(self.rpc.w3, HexBytes(rec.tx_hash), receipt)
            log.error("tx_reverted", kind=rec.kind, tx_hash=rec.tx_hash, error=str(err))
            return [], list(rec.request_ids)
        if rec.kind == "submit":
            ours = {int(e["requestId"]): e for e in client.events_in(receipt, "ResultSubmitted")
                    if str(e["operator"]).lower() == self.address.lower()}
            window_end = 0
            if ours:  # the window ends at the submission block's timestamp + CHALLENGE_WINDOW
                window_end = int(self.rpc.w3.eth.get_block(block)["timestamp"]) + self.policy.challenge_window
            updates: list[Update] = [(rid, JobState.SUBMITTED, {"tx_hash": rec.tx_hash, "submit_block": block,
                                                  "challenge_deadline": int(e.get("challengeDeadline", window_end))})
                       for rid, e in ours.items()]
            return updates, [r for r in rec.request_ids if r not in ours]
        if rec.kind == "finalize":
            done = {int(e["requestId"]) for e in client.events_in(receipt, "RequestFinalized")}
            missed = [r for r in rec.request_ids if r not in done]
            return [(rid, JobState.FINALIZED, {"tx_hash": rec.tx_hash}) for rid in sorted(done)], missed
        return [], []

    def _recheck(self, request_ids: Sequence[int]) -> None:
        jobs = [j for j in (self.db.job(r) for r in request_ids) if j is not None]
        jobs = [j for j in jobs if j.state in (JobState.SENT, JobState.FINALIZING, JobState.EXECUTED,
                                               JobState.SUBMITTED)]
        if jobs:
            self.resolve_many(jobs)

    def _recheck_stale(self) -> None:
        self.sweep_orphan_jobs()

    def sweep_orphan_jobs(self, request_ids: Sequence[int] | None = None) -> None:
        """Jobs left in SENT / FINALIZING without a pending transaction are re-checked on-chain (also the
        recovery path if a previous run died between two writes)."""
        if request_ids is not None:
            self._recheck(request_ids)
            return
        if self.db.pending_txs():
            return
        jobs = self.db.jobs(JobState.SENT, 500) + self.db.jobs(JobState.FINALIZING, 500)
        if jobs:
            self.resolve_many(jobs)

