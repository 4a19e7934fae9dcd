"""Work the node loop must never wait for: inference lanes and model preparation, each on its own threads.

The loop thread reads the chain, ingests requests, sends transactions; if it ran inference or compiled an
``EXACT`` file itself, one slow model (seconds per input, issue 12) or one hostile file (up to the binding's
120 s) would hold every other model's answers and every transaction behind it.

- :class:`Lanes`: ``n`` lanes, each a thread with its own :class:`~oracle.runtime.executor.Executor` (its
  own limited child process). A model runs in at most one lane at a time, so a slow model holds one lane and
  the others keep answering; the processor hands a lane a chunk sized to the model's measured speed.
- :class:`Preparer`: fetching, validating and binding a model (:meth:`ModelStore.get`) on background
  threads; the loop asks again on its next step and serves the other models meanwhile.

Both call ``wake`` when something finished, so the loop does not sleep its poll interval past a result.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import structlog

from oracle.chain.types import Model
from oracle.runtime.executor import Executor, ExecutorClosed, Result
from oracle.runtime.model_checks import ModelInfo
from oracle.runtime.model_store import ModelStore
from oracle.worker.job import Job

log = structlog.get_logger("oracle.worker.lanes")


@dataclass
class Batch:
    """A chunk of one model's jobs running in a lane."""

    lane: int
    info: ModelInfo
    jobs: list[Job]
    #: ``perf_counter()`` when the lane began to run it: after its child's boot and any batch before it in the
    #: lane (the submission time until the batch is finished), so a model's measured speed is its own
    started: float
    future: Future[list[Result]]

    @property
    def model_id(self) -> int:
        return self.info.model_id


def _run(executor: Executor, info: ModelInfo, inputs: list[bytes], began: dict[int, float], lane: int) -> list[Result]:
    """One batch in a lane (``began[lane]``: when it really started); a child killed by a timeout or a crash is
    started again here, in the lane's thread, so the lane is ready (and ``/ready`` says so) before its next
    batch."""
    began[lane] = time.perf_counter()
    try:
        return executor.run(info, inputs)
    finally:
        start = getattr(executor, "start", None)
        if callable(start):
            try:
                start()
            except Exception:  # noqa: BLE001 - the next batch reports it (or the node is stopping)
                pass


def _start(executor: Executor) -> bool:
    """Starts ``executor``'s child if it has one; False if it was closed meanwhile (the node is stopping). A
    failure is logged here and reported again by the lane's next batch (which tries to start it once more),
    the loop goes on."""
    start = getattr(executor, "start", None)
    if not callable(start):
        return True
    try:
        start()
    except ExecutorClosed:  # the node is stopping (Ctrl-C during the boot): nothing went wrong
        return False
    except Exception as exc:  # noqa: BLE001 - a lane thread must not die; /ready shows the lane down
        log.error("inference_lane_not_started", error=f"{type(exc).__name__}: {str(exc)[:200]}",
                  hint="check the inference memory limit and the onnxruntime install; the next batch retries")
    return True


class Lanes:
    """``len(executors)`` inference lanes; at most one batch per lane and per model."""

    def __init__(self, executors: Sequence[Executor], wake: Callable[[], None] = lambda: None) -> None:
        if not executors:
            raise ValueError("at least one inference lane is needed")
        self.executors = list(executors)
        self._pools = [ThreadPoolExecutor(1, thread_name_prefix=f"oracle-lane{i}") for i in range(len(executors))]
        self._busy: dict[int, Batch] = {}
        self._booting: dict[int, Future[bool]] = {}  # lane -> its child's start, until done
        self._began: dict[int, float] = {}  # lane -> when its current batch began to run (set by the lane thread)
        self.wake = wake

    def start(self) -> None:
        """Starts every lane's child on the lane's own thread and returns at once. A spawned child imports
        onnxruntime (seconds each on a busy machine): started one after the other before the loop, they held a
        restarted node's due submissions and finalizations behind them (soak finding 7). The children now boot
        side by side while the loop already ingests, sends and finalizes. A lane is free only once its child is
        up: no job is handed to it (and no attempt counted, which a node killed again during the boot would use
        up) before; the loop is woken when a boot ends."""
        boots = [pool.submit(_start, ex) for pool, ex in zip(self._pools, self.executors, strict=True)]
        self._booting = dict(enumerate(boots))
        told = threading.Lock()

        def booted(_f: Future[bool]) -> None:
            self.wake()
            if all(f.done() for f in boots) and told.acquire(blocking=False):
                if all(not f.cancelled() and f.result() for f in boots):  # else the node is stopping
                    log.info("inference_lanes_ready", lanes=len(boots))

        for boot in boots:
            boot.add_done_callback(booted)

    def alive(self) -> bool:
        for ex in self.executors:
            alive = getattr(ex, "alive", None)
            if callable(alive) and not alive() and not self._running_on(ex):
                return False
        return True

    def _running_on(self, ex: Executor) -> bool:
        return any(self.executors[b.lane] is ex for b in self._busy.values())

    @property
    def restarts(self) -> int:
        return sum(int(getattr(ex, "restarts", 0)) for ex in self.executors)

    def running(self, model_id: int) -> bool:
        return any(b.model_id == model_id for b in self._busy.values())

    def in_flight(self) -> set[int]:
        """Request ids running now."""
        return {j.request_id for b in self._busy.values() for j in b.jobs}

    def _idle(self) -> list[int]:
        """Lanes with no batch and a booted child."""
        for lane in [i for i, f in self._booting.items() if f.done()]:
            del self._booting[lane]
        return [i for i in range(len(self.executors)) if i not in self._busy and i not in self._booting]

    def free(self) -> int:
        return len(self._idle())

    def submit(self, info: ModelInfo, jobs: list[Job]) -> bool:
        """Starts ``jobs`` of one model on a free lane; False when every lane is busy (or the model runs)."""
        if self.running(info.model_id):
            return False
        lane = next(iter(self._idle()), None)
        if lane is None:
            return False
        future = self._pools[lane].submit(_run, self.executors[lane], info, [j.input for j in jobs], self._began,
                                          lane)
        self._busy[lane] = Batch(lane, info, jobs, time.perf_counter(), future)
        future.add_done_callback(lambda _f: self.wake())
        return True

    def finished(self) -> list[Batch]:
        """The batches that are done (their future holds the results or the exception); their lanes are free."""
        done = [b for b in self._busy.values() if b.future.done()]
        for b in done:
            del self._busy[b.lane]
            b.started = self._began.pop(b.lane, b.started)
        return done

    def close(self) -> None:
        """Stops every child (a lane stuck in a slow input returns at once) and then the lane threads."""
        for ex in self.executors:
            ex.close()
        for pool in self._pools:
            pool.shutdown(wait=True, cancel_futures=True)


#: Models prepared at once: a hostile EXACT file holds one preparer for up to the binding's time limit, and
#: the other keeps bringing up new models meanwhile (each binding child may use the inference memory limit).
PREPARERS = 2


class Preparer:
    """Runs :meth:`ModelStore.get` (fetch, validate, bind) on background threads."""

    def __init__(self, store: ModelStore, wake: Callable[[], None] = lambda: None) -> None:
        self.store = store
        self._pool = ThreadPoolExecutor(PREPARERS, thread_name_prefix="oracle-models")
        self._pending: dict[tuple[int, bytes], Future[ModelInfo]] = {}
        self.wake = wake

    def get(self, model: Model) -> ModelInfo | None:
        """The model if ready, None while it is being prepared; raises its :class:`ModelError` if refused."""
        info = self.store.ready(model)
        if info is not None:
            return info
        key = (model.model_id, model.onnx_hash)
        fut = self._pending.get(key)
        if fut is None:
            fut = self._pending[key] = self._pool.submit(self.store.get, model)
            fut.add_done_callback(lambda _f: self.wake())
            return None
        if not fut.done():
            return None
        del self._pending[key]
        return fut.result()  # the info, or the ModelError (also cached by the store for its TTL)

    def preparing(self) -> int:
        return sum(1 for f in self._pending.values() if not f.done())

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
