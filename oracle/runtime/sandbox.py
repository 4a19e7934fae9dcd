"""The one sandbox: untrusted work (running a model, compiling an ONNX file, re-executing a program) in a
limited child process.

A :class:`Sandbox` keeps one long-lived ``spawn`` child that ignores Ctrl-C from its first instruction (the
parent decides when it stops; see :func:`_sigint_immune_python`), sets ``RLIMIT_AS`` on itself before it
imports anything that touches untrusted bytes, then runs the functions of one *jobs module* by name and keeps
that module's caches between calls. The parent enforces a
wall-time limit (kill and restart) and restarts the child after it died or ran out of memory;
:attr:`Sandbox.generation` changes on every start so callers know when a cache was lost.

- :meth:`Sandbox.call`: one job, one reply.
- :meth:`Sandbox.stream`: a job that is a generator; each item it yields is handed to the caller as soon as
  it is done and has its own wall-time limit (the worker's executor times every input against its model's
  budget this way).

A failure is a :class:`SandboxFailure` whose ``kind`` is ``timeout``, ``memory``, ``crash`` (the child died
or did not start) or ``error`` (the job raised); the next call gets a fresh child after the first three.

Users: :mod:`oracle.runtime.executor` (onnxruntime and proven programs, the worker's lanes),
:mod:`oracle.runtime.binder` (the ``EXACT`` binding check) and :mod:`oracle.challenger.verify` (reference
re-execution and the ONNX audit, jobs in :mod:`oracle.challenger.jobs`).
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import os
import shlex
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import structlog

from oracle.errors import OracleError

log = structlog.get_logger("oracle.runtime.sandbox")


@dataclass(frozen=True)
class SandboxLimits:
    timeout: float = 10.0  # seconds per call (per item of a stream)
    memory_bytes: int = 2 * 1024**3  # RLIMIT_AS of the child
    start_timeout: float = 60.0


class SandboxFailure(OracleError, RuntimeError):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.detail = message


class SandboxClosed(SandboxFailure):
    """The sandbox was closed (its process is stopping): not a fault of the child or of the job."""


class Sandbox:
    """A limited child running the functions of ``jobs`` (a module path) by name; thread-safe."""

    def __init__(self, jobs: str, limits: SandboxLimits | None = None, name: str = "oracle-sandbox") -> None:
        self.jobs = jobs
        self.limits = limits or SandboxLimits()
        self.name = name
        self._ctx = mp.get_context("spawn")
        _sigint_immune_python(self._ctx)
        self._proc: Any = None
        self._conn: Connection | None = None
        self._lock = threading.Lock()
        self.generation = 0
        self.restarts = 0
        #: exit code of the last child that died under a call (None: killed by the parent or never died)
        self.last_exit_code: int | None = None
        self._closed = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def start(self) -> None:
        """Starts the child unless it runs; raises :class:`SandboxFailure` (``crash``) if it cannot start."""
        with self._lock:
            self._start()

    def _start(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            return
        self._kill()
        if self._closed:  # a call racing close() must not leave a fresh child behind
            raise SandboxClosed("crash", f"{self.name} is closed (the process is stopping)")
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=_child_main, args=(child, self.limits.memory_bytes, self.jobs),
                                       name=self.name, daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent
        try:
            hello = parent.recv() if parent.poll(self.limits.start_timeout) else None
        except (EOFError, OSError):
            hello = None
        if hello != ("ready",):
            self._kill()
            if self._closed:  # close() killed it while it booted: the process is stopping, nothing failed
                raise SandboxClosed("crash", f"{self.name} is closed (the process is stopping)")
            why = hello[1] if isinstance(hello, tuple) and len(hello) == 2 else \
                f"not ready within {self.limits.start_timeout:.0f} s"
            raise SandboxFailure("crash", f"{self.name} child did not start: {why}")
        self.generation += 1

    def call(self, job: str, *args: Any, timeout: float | None = None) -> Any:
        """Runs ``<jobs>.<job>(*args)`` in the child and returns its result; raises :class:`SandboxFailure`."""
        got: list[Any] = []
        self._exchange("call", job, args, None, timeout, got.append)
        return got[0]

    def stream(self, job: str, *args: Any, each: Callable[[Any], None], items: int | None = None,
               timeout: float | None = None) -> None:
        """Runs the generator ``<jobs>.<job>(*args)`` in the child and calls ``each`` on every item it yields,
        as soon as it arrives; every item has ``timeout`` seconds. With ``items``, the stream ends at that
        many (the child marks the last one, so no end message costs a pipe round trip). Raises
        :class:`SandboxFailure` after the items that did arrive were handed over."""
        self._exchange("stream", job, args, items, timeout, each)

    def _exchange(self, how: str, job: str, args: tuple[Any, ...], items: int | None, timeout: float | None,
                  each: Callable[[Any], None]) -> None:
        limit = timeout if timeout is not None else self.limits.timeout
        with self._lock:
            self._start()
            assert self._conn is not None
            try:
                self._conn.send((how, job, args, items))
                while True:
                    if not self._conn.poll(limit):
                        self._restart("timeout")
                        raise SandboxFailure("timeout", f"{job} exceeded the {limit:.1f} s wall-time limit")
                    reply = self._conn.recv()
                    if reply[0] == "item":
                        each(reply[1])
                        continue
                    if reply[0] == "last":
                        each(reply[1])
                        return
                    break
            except (EOFError, OSError) as exc:
                code = None
                if self._proc is not None:
                    self._proc.join(timeout=2)  # the pipe closed because the child is exiting: reap it
                    code = self._proc.exitcode
                self.last_exit_code = code
                self._restart("died")
                raise SandboxFailure("crash", f"{job}: child died (exit code {code})") from exc
            if reply[0] == "ok":
                if how == "call":
                    each(reply[1])
                return
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
        """Stops the child for good; one busy with a call (in another thread) is killed rather than waited for,
        and later calls fail instead of starting a new one."""
        self._closed = True
        if not self._lock.acquire(timeout=1.0):
            proc = self._proc
            if proc is not None and proc.is_alive():
                proc.kill()  # the call in progress fails with "crash"
            self._lock.acquire()
        try:
            if self._conn is not None:
                try:
                    self._conn.send(("stop", "", (), None))
                except (OSError, ValueError):
                    pass
            if self._proc is not None:
                self._proc.join(timeout=2)
            self._kill()
        finally:
            self._lock.release()


_launcher_lock = threading.Lock()
_launcher_tried = False


def _sigint_immune_python(ctx: Any) -> None:
    """Makes ``spawn`` start children through ``sh -c "trap '' INT; exec python"`` (once per process).

    A terminal's Ctrl-C reaches the whole process group. A child ignores SIGINT once :func:`_child_main`
    runs, but before that it spends seconds re-importing the parent's modules, and a Ctrl-C then printed the
    interpreter's ``KeyboardInterrupt`` traceback into the operator's terminal. An ignored signal stays
    ignored across ``exec`` and Python keeps it so, which closes that window; blocking the signal instead does
    not work (spawn resets the child's signal mask) and ``signal.signal`` cannot be called from the worker's
    lane threads, where children start. ``multiprocessing`` takes one interpreter path for every spawn in the
    process, hence a small launcher script; if it cannot be written or executed (a read-only or ``noexec`` temp
    directory: ``access(X_OK)`` says so without starting anything) children start as before."""
    global _launcher_tried
    with _launcher_lock:
        if _launcher_tried or not sys.executable or os.name != "posix":
            return
        _launcher_tried = True
        folder = tempfile.mkdtemp(prefix="oracle-sandbox-")
        path = os.path.join(folder, "python")
        try:
            with open(path, "w") as f:
                f.write(f"#!/bin/sh\ntrap '' INT\nexec {shlex.quote(sys.executable)} \"$@\"\n")
            os.chmod(path, 0o700)
            ok = os.access(path, os.X_OK) and os.access("/bin/sh", os.X_OK)
        except OSError:
            ok = False
        if not ok:
            shutil.rmtree(folder, ignore_errors=True)
            log.warning("sandbox_launcher_unavailable", folder=folder)
            return
        ctx.set_executable(path)
        atexit.register(shutil.rmtree, folder, True)


def _child_main(conn: Connection, memory_bytes: int, jobs_module: str) -> None:  # pragma: no cover - the child
    import importlib
    import inspect
    import resource
    import signal

    # Ctrl-C reaches the whole process group; the parent decides when the child stops (close() or EOF), so the
    # child neither dies mid-call nor prints a KeyboardInterrupt traceback into the operator's terminal.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        jobs = importlib.import_module(jobs_module)
    except (ValueError, OSError) as exc:
        conn.send(("failed", f"cannot set the memory limit: {exc}"))
        return
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which refuses to use this child
        conn.send(("failed", f"cannot import {jobs_module}: {type(exc).__name__}: {exc}"))
        return
    conn.send(("ready",))
    while True:
        try:
            how, name, args, items = conn.recv()
        except (EOFError, OSError):
            return
        if how == "stop":
            return
        try:
            result = getattr(jobs, name)(*args)
            if how == "stream" and inspect.isgenerator(result):
                if _send_items(conn, result, items):
                    continue
                result = None
            conn.send(("ok", result))
        except MemoryError:
            conn.send(("fail", "memory", "exceeded the memory limit"))
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the parent
            conn.send(("fail", "error", f"{type(exc).__name__}: {exc}"))


def _send_items(conn: Connection, gen: Any, items: int | None) -> bool:  # pragma: no cover - runs in the child
    """Sends what ``gen`` yields, each item as soon as it is made; True when item number ``items`` went out as
    the last one (the parent then expects nothing more)."""
    sent = 0
    for item in gen:
        sent += 1
        if items is not None and sent >= items:
            conn.send(("last", item))
            gen.close()
            return True
        conn.send(("item", item))
    return False
