"""Runs models on onnxruntime inside a child process with a wall-time and a memory limit.

A hostile or broken model can hang, allocate without bound or crash onnxruntime; none of that may take the
worker down. The :class:`ProcessExecutor` keeps one long-lived child (started with ``spawn``) that caches
sessions by model hash; the child sets ``RLIMIT_AS`` on itself before loading any model and streams one
result per input; the parent kills and restarts it when an input exceeds its model's wall-time budget or the
child dies. The input that did it fails alone: after a death the rest run in a fresh child, after a timeout
they come back as :class:`NotRun` (the model is slow, not the input; the processor decides whether to park
it, :mod:`oracle.worker.lanes`). The node runs several executors at once, one per lane.

Session options are pinned (one thread, sequential execution, no graph optimisations, deterministic compute,
CPU provider only) so that the same bytes give the same output run after run.

An ``EXACT`` model whose :class:`ModelInfo` carries a proven program (``program_path``, set by the model store
only after the file was bound to the registered commitment, :mod:`oracle.profile.binding`) is answered by
running that program (:class:`oracle.profile.binding.ProgramRunner`, bit-for-bit the reference interpreter),
in the same limited child; onnxruntime never runs an ``EXACT`` file.

The :class:`Executor` protocol is the seam for wrappers (e.g. a dishonest demo worker that alters outputs).
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Protocol

import structlog

from oracle.worker.errors import InferenceError, InferenceTimeout, NotRun
from oracle.worker.models import ModelInfo, TensorSpec

log = structlog.get_logger("oracle.worker.executor")

Result = bytes | InferenceError


class Executor(Protocol):
    """Runs a verified model on canonical input bytes and returns canonical output bytes (or the error)."""

    def run(self, model: ModelInfo, inputs: Sequence[bytes]) -> list[Result]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ExecutorLimits:
    timeout: float = 10.0  # wall-time seconds per input, unless the model has its own in model_timeouts
    memory_bytes: int = 2 * 1024**3  # RLIMIT_AS of the child
    model_timeouts: Mapping[int, float] = field(default_factory=dict)  # model id -> seconds per input

    def timeout_for(self, model_id: int) -> float:
        return float(self.model_timeouts.get(model_id, self.timeout))


class ProcessExecutor:
    """The default :class:`Executor`: onnxruntime in a supervised child process."""

    def __init__(self, limits: ExecutorLimits | None = None) -> None:
        self.limits = limits or ExecutorLimits()
        self._ctx = mp.get_context("spawn")
        self._proc: Any = None
        self._conn: Connection | None = None
        #: onnxruntime seconds spent in the last call (reported by the child), for metrics and the benchmark.
        self.last_inference_seconds = 0.0
        self.restarts = 0
        self._closed = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            return
        if self._closed:
            raise InferenceError("the inference executor is closed (the node is stopping)")
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=_child_main, args=(child, self.limits.memory_bytes),
                                       name="oracle-inference", daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent
        if not parent.poll(60):
            self._kill()
            raise InferenceError("inference child did not start within 60 s")
        hello = parent.recv()
        if hello != ("ready",):
            self._kill()
            raise InferenceError(f"inference child failed to start: {hello!r}")

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def close(self) -> None:
        self._closed = True
        if self._conn is not None:
            try:
                self._conn.send(("stop",))
            except (OSError, ValueError):
                pass
        if self._proc is not None:
            self._proc.join(timeout=2)
        self._kill()

    def _kill(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()
            self._proc.join(timeout=5)
        if self._conn is not None:
            self._conn.close()
        self._proc, self._conn = None, None

    # ------------------------------------------------------------------ running
    def run(self, model: ModelInfo, inputs: Sequence[bytes]) -> list[Result]:
        """One result per input. The child streams a result per input, so each input has the model's own
        wall-time budget (:meth:`ExecutorLimits.timeout_for`): an input past it kills the child and gets an
        :class:`InferenceTimeout`, the inputs after it a :class:`NotRun` (they cost no attempt); an input that
        kills the child fails alone and the rest run in a fresh child."""
        limit = self.limits.timeout_for(model.model_id)
        out: list[Result] = []
        todo = list(inputs)
        spent = 0.0
        while todo:
            got, seconds = self._call(model, todo, limit)
            spent += seconds
            out.extend(got)
            todo = todo[len(got):]
            if got and isinstance(got[-1], InferenceTimeout):
                out.extend(NotRun("not run: an earlier input of the call timed out") for _ in todo)
                break
        self.last_inference_seconds = spent
        return out

    def _call(self, model: ModelInfo, inputs: list[bytes], limit: float) -> tuple[list[Result], float]:
        """Results for a prefix of ``inputs`` (all of them unless the child timed out or died on one) and the
        onnxruntime seconds the child reported."""
        self.start()
        assert self._conn is not None
        out: list[Result] = []
        spent = 0.0
        try:
            program = (str(model.program_path), model.program_commitment) if model.program_path else None
            self._conn.send(("run", str(model.path), model.onnx_hash, model.input, model.output, inputs, program))
            while len(out) < len(inputs):
                if not self._conn.poll(limit):
                    self._restart("timeout")
                    out.append(InferenceTimeout(f"inference exceeded the {limit:.1f} s wall-time limit of model "
                                                f"{model.model_id}"))
                    return out, spent
                kind, payload, seconds = self._conn.recv()
                if kind == "error":  # the model or program could not be loaded: every input fails alike
                    return out + [InferenceError(str(payload)) for _ in inputs[len(out):]], spent
                spent += float(seconds)
                out.append(payload if isinstance(payload, bytes) else InferenceError(str(payload)))
        except (EOFError, OSError, BrokenPipeError):
            code = self._proc.exitcode if self._proc is not None else None
            self._restart("died")
            out.append(InferenceError(f"inference child died (exit code {code}); memory limit or a crash "
                                      "in onnxruntime"))
        return out, spent

    def _restart(self, why: str) -> None:
        log.warning("inference_child_restarted", reason=why, pid=self.pid)
        self.restarts += 1
        self._kill()


# ---------------------------------------------------------------------- in the child
def session_options() -> Any:
    """The pinned onnxruntime session options every operator should use."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.use_deterministic_compute = True
    so.enable_mem_pattern = False
    so.log_severity_level = 3
    return so


def run_once(session: Any, spec_in: TensorSpec, spec_out: TensorSpec, data: bytes) -> bytes:
    """Decode → run → encode for one input (used by the child and by in-process tools)."""
    import numpy as np

    from oracle.worker import codec

    if spec_in.is_float:
        x: Any = codec.decode_float(data, spec_in.shape)
    else:
        x = codec.decode_int(data, spec_in.shape, spec_in.width)
        x = x.astype(_np_int_type(spec_in.elem_type), copy=False)
    (y,) = session.run([spec_out.name], {spec_in.name: x})
    y = np.asarray(y)
    if tuple(y.shape) != spec_out.shape:
        raise ValueError(f"output shape {list(y.shape)} differs from the declared {list(spec_out.shape)}")
    if spec_out.is_float:
        return codec.encode_float(y)
    return codec.encode_int(y, spec_out.width)


def _np_int_type(elem_type: int) -> Any:
    import numpy as np

    return {2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32, 7: np.int64, 12: np.uint32,
            13: np.uint64}[elem_type]


def _child_main(conn: Connection, memory_bytes: int) -> None:  # pragma: no cover - runs in the child
    import resource
    import signal

    # Ctrl-C reaches the whole process group; the parent decides when the child stops (close() or EOF), so the
    # child neither dies mid-batch nor prints a KeyboardInterrupt traceback into the operator's terminal.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    import onnxruntime as ort

    try:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    except (ValueError, OSError) as exc:
        conn.send(("error", f"cannot set the memory limit: {exc}", 0.0))
        return
    sessions: dict[bytes, Any] = {}
    runners: dict[bytes, Any] = {}
    opts = session_options()

    def load_session(data: bytes) -> Any:
        return ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])

    conn.send(("ready",))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg[0] == "stop":
            return
        _, path, onnx_hash, spec_in, spec_out, inputs, program = msg
        if program is not None:
            _run_program(conn, runners, program, inputs)
            continue
        sess = _load_cached(conn, sessions, path, onnx_hash, load_session, "model",
                            "cached model file changed on disk (hash mismatch); it will be refetched")
        if sess is not None:
            _run_items(conn, functools.partial(run_once, sess, spec_in, spec_out), inputs)


def _run_program(conn: Connection, runners: dict[bytes, Any], program: tuple[str, bytes],
                 inputs: list[bytes]) -> None:  # pragma: no cover - runs in the child
    """Answer with the proven program of an EXACT model (re-checked against its commitment when loaded)."""
    from oracle.profile.binding import ProgramRunner
    from oracle.profile.program import decode

    path, commitment = program
    runner = _load_cached(conn, runners, path, commitment, lambda data: ProgramRunner(decode(data)), "program",
                          "cached program file changed on disk (hash mismatch); restart the node to rebuild it")
    if runner is not None:
        _run_items(conn, runner.run_bytes, inputs)


def _load_cached(conn: Connection, cache: dict[bytes, Any], path: str, digest: bytes, build: Callable[[bytes], Any],
                 what: str, changed: str) -> Any:  # pragma: no cover - runs in the child
    """The object built from the file at ``path`` once its keccak is ``digest``, cached by digest; on failure
    reports the error to the parent and returns None."""
    from eth_utils.crypto import keccak

    try:
        obj = cache.get(digest)
        if obj is None:
            with open(path, "rb") as fh:
                data = fh.read()
            if keccak(data) != digest:
                raise ValueError(changed)
            obj = cache[digest] = build(data)
        return obj
    except MemoryError:
        conn.send(("error", f"{what} load exceeded the memory limit", 0.0))
    except Exception as exc:  # noqa: BLE001 - report any load failure to the parent
        conn.send(("error", f"cannot load {what}: {exc}", 0.0))
    return None


def _run_items(conn: Connection, run: Callable[[bytes], bytes],
               inputs: list[bytes]) -> None:  # pragma: no cover - runs in the child
    """Runs every input on its own (one bad input fails only itself) and sends each result, with the time it
    took, as soon as it is done (the parent times every input against the model's budget)."""
    for item in inputs:
        t0 = time.perf_counter()
        result: bytes | str
        try:
            result = run(item)
        except MemoryError:
            result = "inference exceeded the memory limit"
        except Exception as exc:  # noqa: BLE001 - bad input or runtime failure: this item only
            result = f"inference failed: {exc}"
        conn.send(("item", result, time.perf_counter() - t0))
