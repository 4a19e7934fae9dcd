"""Finalizer: settles the node's own results once their challenge window is over (``finalizeBatch``).

Finalization goes through the :class:`~oracle.worker.submitter.Submitter` (the nonce owner). Jobs are picked
when the latest block's timestamp has reached their ``challengeDeadline``; the contract allows finalize from
``now >= deadline``, and the next block is always later than the latest one.

Faults are told apart: a transient RPC failure raises (the loop retries the whole step; it says nothing about the
jobs). A simulation that reverts is bisected to the items that revert alone (e.g. a callback that needs more gas
than the batch can give): each has an attempt counted and is left out, the rest go through. Items the contract
would skip (fraud proven, finalized by someone else, an output that is not the attested one) are found with one
batch of ``getRequest`` reads. A job that keeps failing is given up (``failed``) after ``max_attempts + 3``
attempts instead of blocking the batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from web3.contract.contract import ContractFunction

from oracle.chain.types import Head
from oracle.jobstate import JobState
from oracle.lifecycle import is_finalizable
from oracle.worker.db import Database
from oracle.worker.job import Job
from oracle.worker.rpc import Rpc
from oracle.worker.submitter import Submitter

log = structlog.get_logger("oracle.worker.finalizer")


#: Gas a batch may give its items' callbacks (each item: ``callbackGasCharged`` + ITEM_GAS); items beyond wait
#: for the next batch. Well under a block, so a batch of large callbacks still gets mined.
CALLBACK_GAS_BUDGET = 8_000_000
#: What the contract demands beyond a callback's own gas before it finalizes an item of a batch.
ITEM_GAS = 40_000


class Finalizer:
    def __init__(self, rpc: Rpc, db: Database, submitter: Submitter, *, batch_size: int = 50) -> None:
        self.rpc = rpc
        self.db = db
        self.submitter = submitter
        self.batch_size = batch_size
        self._callback_gas: dict[int, int] = {}  # request id -> callbackGasLimit (immutable per request)

    def _pack(self, jobs: Sequence[Job]) -> tuple[list[Job], int]:
        """The jobs whose callbacks fit ``CALLBACK_GAS_BUDGET`` together (at least one), and the gas their
        callbacks need. The contract skips an item it cannot give its full callback gas, so this gas is added
        to the estimate explicitly; callbacks are paid for by the requester's deposit (protocol.md)."""
        missing = [j.request_id for j in jobs if j.request_id not in self._callback_gas]
        if missing:
            for rid, view in self.submitter.views(missing).items():
                self._callback_gas[rid] = view.callback_gas_limit if view is not None else 0
        client = self.rpc.client
        keep: list[Job] = []
        total = 0
        for j in jobs:
            limit = self._callback_gas.get(j.request_id, 0)
            need = client.callback_gas_charged(limit) + ITEM_GAS if limit else 0
            if keep and total + need > CALLBACK_GAS_BUDGET:
                continue
            keep.append(j)
            total += need
        return keep, total

    def _fn(self, jobs: Sequence[Job]) -> ContractFunction:
        return self.rpc.client.finalize_batch_fn([j.request_id for j in jobs], [j.output or b"" for j in jobs])

    def step(self, head: Head) -> int:
        sub = self.submitter
        if sub.busy:
            return 0
        jobs = []
        for j in self.db.ready_to_finalize(head.timestamp, self.batch_size):
            if j.attempts > sub.policy.max_attempts + 3:
                self.db.set_state([j.request_id], JobState.FAILED, error="finalization kept failing")
                sub.metrics.requests_failed.labels(reason="finalize").inc()
                log.warning("finalize_given_up", request_id=hex(j.request_id), attempts=j.attempts)
            else:
                jobs.append(j)
        if not jobs:
            return 0
        keep, count = sub.isolate_batch(jobs, self._fn)
        if not keep:
            return 0
        if count is None:
            return 0  # the items pass alone but not together: the chain moved meanwhile; next step
        if count < len(keep):
            keep = self._finalizable(keep)
            if not keep:
                return 0
        # After the simulation (a transient RPC error there reads nothing more): the callbacks that fit one
        # batch, the rest wait for the next step.
        keep, callback_gas = self._pack(keep)
        ids = [j.request_id for j in keep]
        sent = sub.send("finalize", self._fn(keep), ids, JobState.FINALIZING, head, extra_gas=callback_gas)
        if sent:
            for rid in ids:
                self._callback_gas.pop(rid, None)
        return len(ids) if sent else 0

    def _finalizable(self, jobs: Sequence[Job]) -> list[Job]:
        """The jobs the contract will really finalize, from one batch of reads; the others are settled here."""
        sub = self.submitter
        views = sub.views([j.request_id for j in jobs])
        keep: list[Job] = []
        for j in jobs:
            rv = views[j.request_id]
            if rv is not None and is_finalizable(rv.status) and rv.operator.lower() == sub.address.lower():
                if not rv.attests(j.output or b""):
                    self.db.set_state([j.request_id], JobState.FAILED,
                                      error="stored output is not the attested one; cannot finalize")
                    sub.metrics.requests_failed.labels(reason="finalize").inc()
                    continue
                keep.append(j)
            else:
                sub.apply_view(j, rv)
        return keep
