"""Finalizer: settles the node's own results once their challenge window is over (``finalizeBatch``).

Finalization goes through the :class:`~oracle.worker.submitter.Submitter` (the nonce owner). Jobs are picked
when the latest block's timestamp has reached their ``challengeDeadline``; the contract allows finalize from
``now >= deadline``, and the next block is always later than the latest one.
"""

from __future__ import annotations

import structlog

from oracle.worker.db import Database, JobState
from oracle.worker.rpc import Head, Rpc
from oracle.worker.submitter import Submitter

log = structlog.get_logger("oracle.worker.finalizer")


class Finalizer:
    def __init__(self, rpc: Rpc, db: Database, submitter: Submitter, *, batch_size: int = 50) -> None:
        self.rpc = rpc
        self.db = db
        self.submitter = submitter
        self.batch_size = batch_size

    def step(self, head: Head) -> int:
        if self.submitter.busy:
            return 0
        jobs = self.db.ready_to_finalize(head.timestamp, self.batch_size)
        if not jobs:
            return 0
        ids = [j.request_id for j in jobs]
        outs = [j.output or b"" for j in jobs]
        fn = self.rpc.client.finalize_batch_fn(ids, outs)
        try:
            count = int(fn.call({"from": self.submitter.address}))
        except Exception as exc:  # noqa: BLE001 - a revert here means a stale job: re-check each one
            log.warning("finalize_simulation_failed", error=str(exc)[:200])
            count = 0
        if count < len(ids):
            keep = []
            for j in jobs:
                state = self.submitter._resolve(j)  # noqa: SLF001 - shared status logic
                if state is JobState.SUBMITTED:
                    st = self.rpc.client.status_of(j.request_id)
                    if st.name == "FINALIZABLE":
                        keep.append(j)
            if not keep:
                return 0
            ids = [j.request_id for j in keep]
            outs = [j.output or b"" for j in keep]
            fn = self.rpc.client.finalize_batch_fn(ids, outs)
        return len(ids) if self.submitter.send("finalize", fn, ids, JobState.FINALIZING, head) else 0
