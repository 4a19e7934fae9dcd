"""Node supervisor: wires the components and runs their loop with one lifecycle (setup / run / stop / cleanup).

One loop thread does, per iteration: read the head, let the listener ingest confirmed requests, let the
processor collect and start inference (run in the lanes' threads and child processes, models prepared on a
background thread: the loop never waits on a model), advance the in-flight transaction, play our move in any
dispute game against our claims (:mod:`oracle.worker.defender`), send the next result batch, finalize what is
due.
Everything is persisted between steps, so the loop can die anywhere. Transient RPC failures back off
exponentially (with jitter, capped) and rotate to the next endpoint; :meth:`Node.stop` ends the loop at the
next step boundary. Commands that need the nonce, like withdraw, are queued to the loop thread
(:meth:`Node.submit_command`). The node knows nothing of HTTP: :mod:`oracle.app` (the composition root) serves
the operator API next to it and installs the signal handlers.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import structlog

from oracle.chain.faults import is_transient
from oracle.chain.retry import MAX_BACKOFF, Backoff, retry_until_stopped
from oracle.chain.types import Head
from oracle.profile.binding import read_onchain_program
from oracle.profile.trace import Tamper
from oracle.runtime.executor import Executor, ExecutorLimits, ProcessExecutor
from oracle.runtime.model_store import ModelStore
from oracle.settings import NodeSettings, load_account
from oracle.worker.db import Database
from oracle.worker.defender import Defender
from oracle.worker.finalizer import Finalizer
from oracle.worker.lanes import Lanes, Preparer
from oracle.worker.listener import Listener
from oracle.worker.metrics import Metrics
from oracle.worker.parking import Parking
from oracle.worker.processor import Processor
from oracle.worker.rpc import Rpc
from oracle.worker.submitter import GWEI, FeePolicy, SubmitPolicy, Submitter

log = structlog.get_logger("oracle.worker.node")


@dataclass(frozen=True)
class NodeStatus:
    """A snapshot for /health, /ready and the CLI."""

    address: str
    oracle: str
    rpc_url: str
    started: bool
    paused: bool
    caught_up: bool
    cursor_block: int | None
    head_block: int | None
    last_error: str | None
    consecutive_errors: int
    executor_alive: bool
    job_counts: dict[str, int] = field(default_factory=dict)
    #: model id -> {reason, parked_at, dropped} of every parked model
    parked_models: dict[int, dict[str, Any]] = field(default_factory=dict)


class Node:
    """The operator worker. Build with :meth:`from_settings` (or pass components for tests)."""

    def __init__(self, *, settings: NodeSettings, rpc: Rpc, db: Database, account: Any, metrics: Metrics,
                 store: ModelStore, lanes: Lanes) -> None:
        self.settings = settings
        self.rpc = rpc
        self.db = db
        self.account = account
        self.metrics = metrics
        self.store = store
        #: the inference lanes (``restarts``, ``close``, ``executors``)
        self.executor = lanes
        self._stop = threading.Event()
        self._wake = threading.Event()  # set by a finished inference batch or model preparation
        lanes.wake = self._wake.set
        self.preparer = Preparer(store, self._wake.set)
        self.parking = Parking(db, metrics, settings.park_after_timeouts, self.timeout_for)
        metrics.binding_compilations.set_function(lambda: store.compilations)
        metrics.binding_cache_hits.set_function(lambda: store.verdict_hits)
        self._paused = threading.Event()
        self._commands: queue.Queue[tuple[Callable[[Head], Any], Future[Any]]] = queue.Queue()
        self._caught_up = False
        self._head: Head | None = None
        self._last_error: str | None = None
        self._errors = 0
        self._started = False
        self._closers: list[Callable[[], None]] = []
        self.listener: Listener
        self.processor: Processor
        self.submitter: Submitter
        self.finalizer: Finalizer
        self.defender: Defender | None = None
        #: test-only fault injection: the trace a lying node defends (tests/worker/node_proc.py sets it)
        self.game_tamper: Tamper | None = None

    @classmethod
    def from_settings(cls, settings: NodeSettings, executor: Executor | None = None,
                      account: Any | None = None,
                      executor_factory: Callable[[ExecutorLimits], Executor] = ProcessExecutor) -> Node:
        """``inference_lanes`` executors from ``executor_factory``; a given ``executor`` (a wrapper, e.g. the
        demo's dishonest worker) is the only lane."""
        account = account or load_account(settings)
        rpc = Rpc(settings.rpc_urls, settings.resolve_oracle_address(), timeout=settings.rpc_timeout)
        db = Database(settings.db_path)
        store = ModelStore(settings.model_dir, max_model_bytes=settings.max_model_bytes,
                           max_tensor_bytes=settings.max_tensor_bytes, mirrors=tuple(settings.model_mirrors),
                           fetch_timeout=settings.fetch_timeout,
                           program_reader=lambda m: read_onchain_program(rpc.client, m.model_id),
                           bind_memory_bytes=settings.inference_memory_mb * 1024 * 1024, verdicts=db)
        limits = ExecutorLimits(settings.inference_timeout, settings.inference_memory_mb * 1024 * 1024,
                                dict(settings.model_timeouts))
        executors = [executor] if executor is not None else \
            [executor_factory(limits) for _ in range(settings.inference_lanes)]
        return cls(settings=settings, rpc=rpc, db=db, account=account, metrics=Metrics(), store=store,
                   lanes=Lanes(executors))

    def timeout_for(self, model_id: int) -> float:
        """The operator's wall-time budget of one input of ``model_id`` (seconds)."""
        return float(self.settings.model_timeouts.get(model_id, self.settings.inference_timeout))

    # ------------------------------------------------------------------ lifecycle
    def setup(self) -> None:
        """Connects, reads the contract's parameters, re-broadcasts in-flight txs, starts the inference lanes
        (their children boot in the background: the loop does not wait for them)."""
        s = self.settings
        params = self._retry(self.rpc.client.parameters, "setup")
        self.submitter = Submitter(
            self.rpc, self.db, self.account, self.metrics,
            fees=FeePolicy(int(s.max_fee_gwei * GWEI), int(s.priority_fee_gwei * GWEI), s.fee_bump_percent,
                           s.stuck_after),
            policy=SubmitPolicy(s.batch_size, s.min_time_left, params["request_timeout"],
                                params["challenge_window"], s.max_attempts))
        self.listener = Listener(self.rpc, self.db, self.metrics, confirmations=s.confirmations,
                                 block_range=s.block_range, start_block=s.default_start_block())
        self.processor = Processor(self.rpc, self.db, self.preparer, self.executor, self.parking, self.metrics,
                                   request_timeout=params["request_timeout"], min_time_left=s.min_time_left,
                                   exclusive_period=params["exclusive_period"], address=self.account.address,
                                   max_attempts=s.max_attempts, batch=s.execute_batch,
                                   slice_seconds=s.inference_slice,
                                   model_ids=frozenset(s.model_ids) if s.model_ids is not None else None,
                                   deny_model_ids=frozenset(s.deny_model_ids), max_bond_wei=s.max_bond_wei)
        self.listener.on_range = self.submitter.verify_mined
        self.finalizer = Finalizer(self.rpc, self.db, self.submitter, batch_size=s.batch_size)
        self._retry(self.submitter.setup, "setup")
        if s.defend_games:
            self.defender = self._retry(lambda: Defender(self.rpc, self.db, self.submitter, self.game_tamper),
                                        "setup")
        self.executor.start()
        self.parking.parked()  # the gauge shows models parked before this start
        self._started = True
        log.info("node_started", address=self.account.address, oracle=self.rpc.oracle_address,
                 confirmations=s.confirmations)

    def _retry(self, fn: Callable[[], Any], where: str) -> Any:
        return retry_until_stopped(fn, self._stop, Backoff(0.2, MAX_BACKOFF), is_transient,
                                   lambda exc, _delay: self._note_error(exc, where))

    def run(self) -> None:
        """The main loop; returns when :meth:`stop` is called."""
        backoff = Backoff(0.2, MAX_BACKOFF)
        last_account = 0.0
        while not self._stop.is_set():
            progress = self.db.writes
            try:
                busy = self.step()
                if time.monotonic() - last_account > 5:
                    self._update_account_metrics()
                    last_account = time.monotonic()
                self._errors = 0
                backoff.reset()
                if not busy:
                    self.idle(self.settings.poll_interval)
            except Exception as exc:  # noqa: BLE001 - the loop must survive anything; transient ones back off
                self._note_error(exc, "loop")
                if not is_transient(exc):
                    log.exception("loop_error")
                if self.db.writes != progress:  # the step failed part-way but got somewhere: no growing delay
                    backoff.reset()
                if self._errors % 3 == 0:
                    self.rpc.rotate()
                self._stop.wait(backoff.next())

    def step(self) -> bool:
        """One iteration; returns True when work was done (so the loop goes on without sleeping)."""
        head = self.rpc.head()
        self._head = head
        self._run_commands(head)
        polled = self.listener.poll(head)
        self._caught_up = polled.caught_up
        if polled.reorg_depth:
            self.submitter.resync_nonce()  # our orphaned transactions gave their nonces back
        self.metrics.cursor_block.set(polled.cursor)
        executed = 0 if self._paused.is_set() else self.processor.step(head)
        inflight = self.submitter.tick(head)
        sent = 0
        if not inflight and self.defender is not None:  # defending our stake goes first, even when paused
            sent = self.defender.step(head)
        if not inflight and not sent:
            if not self._paused.is_set():
                sent = self.submitter.submit_ready(head)
            if not sent and self.settings.auto_finalize:
                sent = self.finalizer.step(head)
        return bool(polled.new_jobs or executed or sent or polled.reorg_depth or not polled.caught_up)

    def idle(self, timeout: float) -> None:
        """Waits up to ``timeout`` seconds, less when an inference batch or a model preparation finishes."""
        self._wake.wait(timeout)
        self._wake.clear()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def add_closer(self, close: Callable[[], None]) -> None:
        """Runs ``close`` first in :meth:`cleanup` (the composition root stops the operator API this way)."""
        self._closers.append(close)

    def cleanup(self) -> None:
        for close in reversed(self._closers):
            close()
        self._closers.clear()
        try:
            self.preparer.close()
            self.executor.close()
        finally:
            self.db.close()
        log.info("node_stopped")

    # ------------------------------------------------------------------ control
    def _run_commands(self, head: Head) -> None:
        while True:
            try:
                fn, fut = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                fut.set_result(fn(head))
            except Exception as exc:  # noqa: BLE001 - handed back to the caller
                fut.set_exception(exc)

    def submit_command(self, fn: Callable[[Head], Any], timeout: float = 60.0) -> Any:
        fut: Future[Any] = Future()
        self._commands.put((fn, fut))
        return fut.result(timeout=timeout)

    def pause(self) -> None:
        self._paused.set()
        self.metrics.paused.set(1)
        log.info("node_paused")

    def resume(self) -> None:
        self._paused.clear()
        self.metrics.paused.set(0)
        log.info("node_resumed")

    def withdraw_credits(self, to: str | None = None) -> dict[str, Any]:
        """Queues ``withdraw(to)`` to the loop thread (the nonce owner) and waits for it to be sent."""
        def _do(head: Head) -> dict[str, Any]:
            credits = self.rpc.client.credits_of(self.account.address)
            if credits == 0:
                return {"sent": False, "credits": 0, "tx_hash": None}
            if self.submitter.busy:
                raise RuntimeError("a transaction is in flight; retry in a few seconds")
            fn = self.rpc.client.withdraw_fn(to or self.account.address)
            ok = self.submitter.send("withdraw", fn, [], None, head) is not None
            pending = self.db.pending_txs() or self.db.all_txs()[-1:]
            return {"sent": ok, "credits": credits, "tx_hash": pending[-1].tx_hash if pending and ok else None}

        return dict(self.submit_command(_do))

    def unpark(self, model_id: int) -> bool:
        """Serves a parked model again (its strikes start from zero); False when it was not parked."""
        return self.parking.unpark(model_id)

    def status(self) -> NodeStatus:
        cur = self.db.last_block()
        return NodeStatus(self.account.address, self.rpc.oracle_address, self.rpc.url, self._started,
                          self._paused.is_set(), self._caught_up, cur[0] if cur else None,
                          self._head.number if self._head else None, self._last_error, self._errors,
                          self.executor.alive(), self.db.counts(), self.db.parked_models())

    def _note_error(self, exc: BaseException, where: str) -> None:
        self._errors += 1
        self._last_error = f"{type(exc).__name__}: {str(exc)[:200]}"
        if is_transient(exc):
            self.metrics.rpc_errors.inc()
        log.warning("rpc_error" if is_transient(exc) else "step_error", where=where, error=self._last_error,
                    consecutive=self._errors)

    def _update_account_metrics(self) -> None:
        addr = self.account.address
        self.metrics.balance_wei.set(self.rpc.w3.eth.get_balance(addr))
        st = self.rpc.client.stake_of(addr)
        self.metrics.stake_wei.labels(kind="staked").set(st.staked)
        self.metrics.stake_wei.labels(kind="locked").set(st.locked)
        self.metrics.stake_wei.labels(kind="pending").set(st.pending)
        self.metrics.credits_wei.set(self.rpc.client.credits_of(addr))
        for kind, n in self.db.assignment_counts(addr).items():
            self.metrics.assignments.labels(kind=kind).set(n)
