"""Untrusted work (decoding programs, re-executing them, compiling ONNX files) in a limited child process.

Like :class:`oracle.worker.executor.ProcessExecutor` does for onnxruntime: one long-lived ``spawn`` child that
sets ``RLIMIT_AS`` on itself before it touches anything untrusted, a wall-time limit per call enforced by
the parent (kill and restart), and a restart after the child died or ran out of memory. The child runs the
functions of :mod:`oracle.challenger.jobs` by name and keeps their caches between calls; :attr:`generation`
changes on every restart so callers know when a cache was lost.

A failure is a :class:`SandboxFailure` whose ``kind`` is ``timeout``, ``memory``, ``crash`` (the child died)
or ``error`` (the job raised); the next call gets a fresh child.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import structlog

from oracle.errors import OracleError

log = structlog.get_logger("oracle.challenger.sandbox")


@dataclass(frozen=True)
class SandboxLimits:
    timeout: float = 10.0  # seconds per call
    memory_bytes: int = 2 * 1024**3  # RLIMIT_AS of the child
    start_timeout: float = 60.0


class SandboxFailure(OracleError, RuntimeError):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


class Sandbox:
    def __init__(self, limits: SandboxLimits | None = None, name: str = "oracle-sandbox") -> None:
        self.limits = limits or SandboxLimits()
        self.name = name
        self._ctx = mp.get_context("spawn")
        self._proc: Any = None
        self._conn: Connection | None = None
        self._lock = threading.Lock()
        self.generation = 0
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _start(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            return
        self._kill()
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=_child_main, args=(child, self.limits.memory_bytes), name=self.name,
                                       daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent
        if not parent.poll(self.limits.start_timeout) or parent.recv() != ("ready",):
            self._kill()
            raise SandboxFailure("crash", f"{self.name} child did not start")
        self.generation += 1

    def call(self, job: str, *args: Any, timeout: float | None = None) -> Any:
        """Runs ``jobs.<job>(*args)`` in the child; raises :class:`SandboxFailure`."""
        limit = timeout if timeout is not None else self.limits.timeout
        with self._lock:
            self._start()
            assert self._conn is not None
            try:
                self._conn.send((job, args))
                if not self._conn.poll(limit):
                    self._restart("timeout")
                    raise SandboxFailure("timeout", f"{job} exceeded the {limit:.1f} s wall-time limit")
                reply = self._conn.recv()
            except (EOFError, OSError) as exc:
                code = self._proc.exitcode if self._proc is not None else None
                self._restart("died")
                raise SandboxFailure("crash", f"{job}: child died (exit code {code})") from exc
            if reply[0] == "ok":
                return reply[1]
            _, kind, message = reply
            if kind == "memory":
                self._restart("memory")  # a fresh heap for whatever comes next
            raise SandboxFailure(kind, f"{job}: {message}")

    def _restart(self, why: str) -> None:
        log.warning("sandbox_restarted", sandbox=self.name, reason=why, pid=self.pid)
        self.restarts += 1
        self._kill()

    def _kill(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()
            self._proc.join(timeout=5)
        if self._conn is not None:
            self._conn.close()
        self._proc, self._conn = None, None

    def close(self) -> None:
        """Stops the child; one busy with a call (in another thread) is killed rather than waited for."""
        if not self._lock.acquire(timeout=1.0):
            proc = self._proc
            if proc is not None and proc.is_alive():
                proc.kill()  # the call in progress fails with "crash"
            self._lock.acquire()
        try:
            if self._conn is not None:
                try:
                    self._conn.send(("stop", ()))
                except (OSError, ValueError):
                    pass
            if self._proc is not None:
                self._proc.join(timeout=2)
            self._kill()
        finally:
            self._lock.release()


def _child_main(conn: Connection, memory_bytes: int) -> None:  # pragma: no cover - runs in the child
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    from oracle.challenger import jobs

    conn.send(("ready",))
    while True:
        try:
            name, args = conn.recv()
        except (EOFError, OSError):
            return
        if name == "stop":
            return
        try:
            conn.send(("ok", getattr(jobs, name)(*args)))
        except MemoryError:
            conn.send(("fail", "memory", "exceeded the memory limit"))
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the parent
            conn.send(("fail", "error", f"{type(exc).__name__}: {exc}"))
