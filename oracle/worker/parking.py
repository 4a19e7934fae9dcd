"""Parking: a model whose inputs keep running past their time budget stops being served until the operator
says otherwise.

Each input of a model has a wall-time budget (``model_timeouts``, else ``inference_timeout``). An input past
it is a *strike*; ``park_after_timeouts`` strikes in a row (any answer in between resets the count) park the
model: it is written to the worker's database with the reason, its pending jobs are dropped (state
``skipped``, counted per job in ``oracle_worker_requests_skipped{reason="model_parked"}`` and on the parked
row), and new requests for it are dropped on arrival. Its status shows in ``GET /ready`` and ``GET /parked``,
in ``oracle_worker_model_parked{model_id}`` and in ``oracle node status``.

Un-parking is the operator's decision (``oracle node unpark ID`` or ``POST /admin/unpark/{id}``), never a
restart: nodes run under a supervisor that restarts them, and a parking that a restart undid would let a
slow model take a lane for ``park_after_timeouts`` budgets after every crash or upgrade. The table is read
at every step, so the CLI can un-park a running node through the database it shares.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from oracle.worker.db import Database
from oracle.worker.metrics import Metrics

log = structlog.get_logger("oracle.worker.parking")

PARKED_LABEL = "model_parked"


def unpark_hint(model_id: int) -> str:
    return f"`oracle node unpark {model_id}` (or POST /admin/unpark/{model_id}) serves it again"


class Parking:
    def __init__(self, db: Database, metrics: Metrics, park_after: int,
                 timeout_for: Callable[[int], float]) -> None:
        self.db = db
        self.timeout_for = timeout_for
        self.metrics = metrics
        self.park_after = park_after
        self._strikes: dict[int, int] = {}
        self._shown: set[int] = set()

    def parked(self) -> dict[int, str]:
        """model id -> reason of every parked model (from the database; keeps the gauge in step with it)."""
        rows = {m: str(r["reason"]) for m, r in self.db.parked_models().items()}
        for m in self._shown - rows.keys():  # un-parked, possibly by the CLI on the shared database
            self.metrics.model_parked.labels(model_id=str(m)).set(0)
            self._strikes.pop(m, None)
        for m in rows.keys() - self._shown:
            self.metrics.model_parked.labels(model_id=str(m)).set(1)
        self._shown = set(rows)
        return rows

    def timed_out(self, model_id: int) -> bool:
        """Counts a strike; True when it parks the model."""
        self.metrics.inference_timeouts.labels(model_id=str(model_id)).inc()
        n = self._strikes[model_id] = self._strikes.get(model_id, 0) + 1
        if n < self.park_after:
            return False
        budget = self.timeout_for(model_id)
        reason = f"model {model_id} parked: {n} inputs in a row ran past its {budget:.1f} s budget; " \
            + unpark_hint(model_id)
        if self.db.park_model(model_id, reason):
            log.warning("model_parked", model_id=model_id, timeouts=n)
        self._strikes.pop(model_id, None)
        return True

    def answered(self, model_id: int) -> None:
        self._strikes.pop(model_id, None)

    def unpark(self, model_id: int) -> bool:
        ok = self.db.unpark_model(model_id)
        if ok:
            log.info("model_unparked", model_id=model_id)
        self.parked()
        return ok

    def drop(self, model_id: int, request_ids: list[int], reason: str) -> None:
        self.db.drop_parked_jobs(model_id, request_ids, reason)
        self.metrics.requests_skipped.labels(reason=PARKED_LABEL).inc(len(request_ids))
