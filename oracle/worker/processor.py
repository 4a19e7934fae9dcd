"""Processor: turns ingested jobs into outputs (model lookup, deadline check, inference in the lanes).

The node loop calls :meth:`Processor.step` and never waits on a model: the step collects the batches that
finished in the inference lanes, then hands each model with pending jobs to a free lane
(:mod:`oracle.worker.lanes`), at most one lane per model, oldest request first. A model that is not ready
yet (being fetched, validated or bound to its program) is prepared on a background thread meanwhile. The
chunk a lane gets is sized to the model's measured time per input so that it takes about ``slice_seconds``:
a fast model gets whole batches, a slow one a few inputs, a model never run yet ``FIRST_CHUNK``.

Only requests this node may answer now are taken: those assigned to it, to nobody, or whose exclusive period
is over (``requested_at + EXCLUSIVE_PERIOD <= now``: the contract then accepts anyone's answer).

Jobs are taken in ``SEEN`` state, their attempt counter is persisted *before* inference (so a model that
crashes the worker again and again is given up after ``max_attempts``), and outputs are stored as
``EXECUTED``. An input not run because an earlier one of its chunk timed out gets its attempt back. An
input past its model's time budget is a strike against the model; enough strikes in a row park it
(:mod:`oracle.worker.parking`) and its pending jobs are dropped. A refused model (bad file, or an ``EXACT``
file not bound to its program) fails only its own jobs; the worker keeps serving the others.

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

from oracle.chain.types import Head, Model
from oracle.errors import InferenceError, ModelError
from oracle.jobstate import JobState
from oracle.runtime.errors import InferenceTimeout, NotRun
from oracle.runtime.executor import Result
from oracle.worker.db import Database
from oracle.worker.job import Job
from oracle.worker.lanes import Batch, Lanes, Preparer
from oracle.worker.metrics import Metrics
from oracle.worker.parking import Parking
from oracle.worker.rpc import Rpc

log = structlog.get_logger("oracle.worker.processor")

#: Inputs a model gets on its first turn, before its speed is known (each still has the model's own budget:
#: the first input past it ends the turn).
FIRST_CHUNK = 16


class Processor:
    def __init__(self, rpc: Rpc, db: Database, preparer: Preparer, lanes: Lanes, parking: Parking,
                 metrics: Metrics, *, request_timeout: int, min_time_left: int, max_attempts: int = 3,
                 batch: int = 256, slice_seconds: float = 1.0, model_ids: frozenset[int] | None = None,
                 deny_model_ids: frozenset[int] = frozenset(), max_bond_wei: int | None = None,
                 exclusive_period: int = 0, address: str = "",
                 on_inference: Callable[[float, int, float], None] | None = None) -> None:
        self.rpc = rpc
        self.db = db
        self.preparer = preparer
        self.lanes = lanes
        self.parking = parking
        self.metrics = metrics
        self.request_timeout = request_timeout
        self.min_time_left = min_time_left
        self.max_attempts = max_attempts
        self.batch = batch
        self.slice_seconds = slice_seconds
        self.model_ids = model_ids
        self.deny_model_ids = deny_model_ids
        self.max_bond_wei = max_bond_wei
        #: requests assigned to another operator wait until their exclusive period is over (it alone may answer
        #: before); most are answered by then, and the listener marks them lost without an inference here
        self.exclusive_period = exclusive_period
        self.address = address
        #: called per finished batch with (wall seconds, inputs, the executor's onnxruntime seconds)
        self.on_inference = on_inference
        self._models: dict[int, Model] = {}
        self._risk_logged: set[tuple[int, str]] = set()
        self._per_input: dict[int, float] = {}  # model id -> measured seconds per input (moving average)

    def model(self, model_id: int) -> Model:
        m = self._models.get(model_id)
        if m is None:  # registrations are immutable, so caching them is safe
            m = self.rpc.client.get_model(model_id)
            self._models[model_id] = m
        return m

    def step(self, head: Head) -> int:
        """Collects finished batches and starts new ones; returns how many jobs produced an output."""
        done = sum(self._collect(b) for b in self.lanes.finished())
        running = self.lanes.in_flight()
        limit = self.batch + len(running)
        if self.address:
            pending = self.db.open_to(JobState.SEEN, self.address, head.timestamp - self.exclusive_period + 1,
                                      limit)
        else:
            pending = self.db.jobs(JobState.SEEN, limit=limit)
        jobs = [j for j in pending if j.request_id not in running]
        parked = self.parking.parked()  # read every step: the CLI may un-park through the database
        by_model: dict[int, list[Job]] = defaultdict(list)
        dropped: dict[int, list[int]] = defaultdict(list)
        for j in jobs:
            risk = self._risk(j.model_id)
            if j.model_id in parked:
                dropped[j.model_id].append(j.request_id)
            elif risk is not None:
                self._skip_for_risk(j, *risk)
            elif j.requested_at + self.request_timeout - head.timestamp < self.min_time_left:
                self._skip([j], "too little time left before the request deadline")
            elif j.attempts >= self.max_attempts:
                self._fail([j], f"gave up after {j.attempts} attempts", "attempts")
            else:
                by_model[j.model_id].append(j)
        for model_id, ids in dropped.items():
            self.parking.drop(model_id, ids, parked[model_id])
        for model_id, group in by_model.items():  # oldest request first (jobs come ordered by block)
            if not self.lanes.running(model_id):
                self._start(model_id, group)
        self.metrics.lanes_busy.set(len(self.lanes.executors) - self.lanes.free())
        return done

    def _start(self, model_id: int, jobs: list[Job]) -> None:
        model = self.model(model_id)
        try:
            info = self.preparer.get(model)
        except ModelError as exc:
            self._fail(jobs, str(exc), "model_refused")
            return
        if info is None or self.lanes.free() == 0:
            return  # being fetched / validated / bound off the loop thread, or no lane free: next step
        good = [j for j in jobs if len(j.input) == model.input_length]
        if len(good) != len(jobs):
            self._fail([j for j in jobs if len(j.input) != model.input_length], "input length mismatch", "input")
        per_input = self._per_input.get(model_id)
        size = FIRST_CHUNK if per_input is None else max(1, int(self.slice_seconds / max(per_input, 1e-6)))
        chunk = good[:size]
        if not chunk:
            return
        self.db.bump_attempts([j.request_id for j in chunk])
        self.lanes.submit(info, chunk)

    def _collect(self, batch: Batch) -> int:
        model_id = batch.model_id
        model = self.model(model_id)
        elapsed = time.perf_counter() - batch.started
        try:
            results: list[Result] = batch.future.result()
        except Exception as exc:  # noqa: BLE001 - a broken executor fails this batch, never the loop
            results = [InferenceError(f"executor failed: {type(exc).__name__}: {str(exc)[:200]}") for _ in batch.jobs]
        if self.on_inference is not None:
            self.on_inference(elapsed, len(batch.jobs),
                              float(getattr(self.lanes.executors[batch.lane], "last_inference_seconds", 0.0)))
        outputs: list[tuple[int, bytes]] = []
        not_run: list[int] = []
        timeouts = 0
        for j, res in zip(batch.jobs, results, strict=True):
            if isinstance(res, bytes) and len(res) == model.output_length:
                outputs.append((j.request_id, res))
                continue
            if isinstance(res, NotRun):
                not_run.append(j.request_id)
                continue
            timeouts += isinstance(res, InferenceTimeout)
            reason = str(res) if not isinstance(res, bytes) else f"output is {len(res)} bytes, registered " \
                                                                  f"{model.output_length}"
            if j.attempts + 1 >= self.max_attempts:
                self._fail([j], reason, "inference")
            else:
                self.db.set_state([j.request_id], JobState.SEEN, error=reason)
            log.warning("inference_failed", request_id=hex(j.request_id), model_id=model_id, reason=reason)
        if not_run:
            self.db.bump_attempts(not_run, by=-1)
        ran = len(batch.jobs) - len(not_run)
        if ran and not timeouts:  # a whole chunk within budget: learn the model's speed
            prev = self._per_input.get(model_id)
            now = elapsed / ran
            self._per_input[model_id] = now if prev is None else 0.5 * prev + 0.5 * now
        if outputs:
            self.parking.answered(model_id)
            self.db.record_outputs(outputs)
            self.metrics.requests_executed.inc(len(outputs))
            for _ in outputs:
                self.metrics.inference_seconds.observe(elapsed / max(ran, 1))
        if timeouts:
            self.parking.timed_out(model_id)
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
