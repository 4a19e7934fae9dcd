"""Processor: turns ingested jobs into outputs (model lookup, deadline check, inference in the executor).

Only requests this node may answer now are taken: those assigned to it, to nobody, or whose exclusive period
is over (``requested_at + EXCLUSIVE_PERIOD <= now``: the contract then accepts anyone's answer).

Jobs are taken in ``SEEN`` state, their attempt counter is persisted *before* inference (so a model that
crashes the worker again and again is given up after ``max_attempts``), and outputs are stored as
``EXECUTED``. A refused model (bad file, or an ``EXACT`` file not bound to its program) fails only its own
jobs; the worker keeps serving the others.

The operator's risk settings are applied first: a request is skipped when its model is not in the allow list
(``model_ids``), is in the deny list (``deny_model_ids``), or locks a bond above ``max_bond_wei``. Each such
model is logged once (``model_skipped``) and every skipped job is counted in
``oracle_worker_requests_skipped{reason=...}``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable

import structlog

from oracle.chain.types import Model
from oracle.worker.db import Database, Job, JobState
from oracle.worker.errors import ModelError
from oracle.worker.executor import Executor
from oracle.worker.metrics import Metrics
from oracle.worker.models import ModelStore
from oracle.worker.rpc import Head, Rpc

log = structlog.get_logger("oracle.worker.processor")


class Processor:
    def __init__(self, rpc: Rpc, db: Database, store: ModelStore, executor: Executor, metrics: Metrics, *,
                 request_timeout: int, min_time_left: int, max_attempts: int = 3, batch: int = 256,
                 model_ids: frozenset[int] | None = None, deny_model_ids: frozenset[int] = frozenset(),
                 max_bond_wei: int | None = None, exclusive_period: int = 0, address: str = "",
                 on_inference: Callable[[float, int], None] | None = None) -> None:
        self.rpc = rpc
        self.db = db
        self.store = store
        self.executor = executor
        self.metrics = metrics
        self.request_timeout = request_timeout
        self.min_time_left = min_time_left
        self.max_attempts = max_attempts
        self.batch = batch
        self.model_ids = model_ids
        self.deny_model_ids = deny_model_ids
        self.max_bond_wei = max_bond_wei
        self.on_inference = on_inference
        #: requests assigned to another operator wait until their exclusive period is over (it alone may answer
        #: before); most are answered by then, and the listener marks them lost without an inference here
        self.exclusive_period = exclusive_period
        self.address = address
        self._models: dict[int, Model] = {}
        self._risk_logged: set[tuple[int, str]] = set()

    def model(self, model_id: int) -> Model:
        m = self._models.get(model_id)
        if m is None:  # registrations are immutable, so caching them is safe
            m = self.rpc.client.get_model(model_id)
            self._models[model_id] = m
        return m

    def step(self, head: Head) -> int:
        """Executes up to ``batch`` pending jobs; returns how many produced an output."""
        if self.address:
            jobs = self.db.open_to(JobState.SEEN, self.address, head.timestamp - self.exclusive_period + 1,
                                   self.batch)
        else:
            jobs = self.db.jobs(JobState.SEEN, limit=self.batch)
        if not jobs:
            return 0
        by_model: dict[int, list[Job]] = defaultdict(list)
        for j in jobs:
            risk = self._risk(j.model_id)
            if risk is not None:
                self._skip_for_risk(j, *risk)
            elif j.requested_at + self.request_timeout - head.timestamp < self.min_time_left:
                self._skip([j], "too little time left before the request deadline")
            elif j.attempts >= self.max_attempts:
                self._fail([j], f"gave up after {j.attempts} attempts", "attempts")
            else:
                by_model[j.model_id].append(j)
        done = 0
        for model_id, group in by_model.items():
            done += self._run_model(model_id, group)
        return done

    def _run_model(self, model_id: int, jobs: list[Job]) -> int:
        model = self.model(model_id)
        try:
            info = self.store.get(model)
        except ModelError as exc:
            self._fail(jobs, str(exc), "model_refused")
            return 0
        good = [j for j in jobs if len(j.input) == model.input_length]
        if len(good) != len(jobs):
            self._fail([j for j in jobs if len(j.input) != model.input_length], "input length mismatch", "input")
        if not good:
            return 0
        self.db.bump_attempts([j.request_id for j in good])
        t0 = time.perf_counter()
        results = self.executor.run(info, [j.input for j in good])
        elapsed = time.perf_counter() - t0
        if self.on_inference is not None:
            self.on_inference(elapsed, len(good))
        outputs: list[tuple[int, bytes]] = []
        for j, res in zip(good, results, strict=True):
            if isinstance(res, bytes) and len(res) == model.output_length:
                outputs.append((j.request_id, res))
            else:
                reason = str(res) if not isinstance(res, bytes) else f"output is {len(res)} bytes, registered " \
                                                                      f"{model.output_length}"
                if j.attempts + 1 >= self.max_attempts:
                    self._fail([j], reason, "inference")
                else:
                    self.db.set_state([j.request_id], JobState.SEEN, error=reason)
                log.warning("inference_failed", request_id=hex(j.request_id), model_id=model_id, reason=reason)
        if outputs:
            self.db.record_outputs(outputs)
            self.metrics.requests_executed.inc(len(outputs))
            for _ in outputs:
                self.metrics.inference_seconds.observe(elapsed / len(good))
        return len(outputs)

    def _risk(self, model_id: int) -> tuple[str, str] | None:
        """(metric label, reason) when the operator's risk settings exclude this model, else None."""
        if self.model_ids is not None and model_id not in self.model_ids:
            return "model_not_allowed", "model not served by this node (not in model_ids)"
        if model_id in self.deny_model_ids:
            return "model_denied", "model denied by this node (deny_model_ids)"
        if self.max_bond_wei is not None:
            bond = self.model(model_id).bond
            if bond > self.max_bond_wei:
                return "bond_over_limit", f"model bond {bond} wei is over this node's max_bond_wei {self.max_bond_wei}"
        return None

    def _skip_for_risk(self, job: Job, label: str, reason: str) -> None:
        self.db.set_state([job.request_id], JobState.SKIPPED, error=reason)
        self.metrics.requests_skipped.labels(reason=label).inc()
        if (job.model_id, label) not in self._risk_logged:
            self._risk_logged.add((job.model_id, label))
            log.warning("model_skipped", model_id=job.model_id, reason=reason)

    def _skip(self, jobs: list[Job], reason: str) -> None:
        self.db.set_state([j.request_id for j in jobs], JobState.SKIPPED, error=reason)
        self.metrics.requests_skipped.labels(reason=reason.split(" ")[0]).inc(len(jobs))
        for j in jobs:
            log.info("request_skipped", request_id=hex(j.request_id), reason=reason)

    def _fail(self, jobs: list[Job], reason: str, kind: str) -> None:
        self.db.set_state([j.request_id for j in jobs], JobState.FAILED, error=reason)
        self.metrics.requests_failed.labels(reason=kind).inc(len(jobs))
        for j in jobs:
            log.warning("request_failed", request_id=hex(j.request_id), reason=reason)
