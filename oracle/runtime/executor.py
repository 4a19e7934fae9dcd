"""Runs verified models in a limited child process: the worker's executor, one per inference lane.

A hostile or broken model can hang, allocate without bound or crash onnxruntime; none of that may take the
worker down. The :class:`ProcessExecutor` keeps one :class:`~oracle.runtime.sandbox.Sandbox` child running
the jobs of :mod:`oracle.runtime.inference` (sessions cached by model hash, ``RLIMIT_AS`` set before any
model is loaded) and streams one result per input; the sandbox kills and restarts the child when an input
exceeds its model's wall-time budget or the child dies. The input that did it fails alone: after a death the
rest run in a fresh child, after a timeout they come back as :class:`NotRun` (the model is slow, not the
input; the processor decides whether to park it, :mod:`oracle.worker.lanes`). The node runs several
executors at once, one per lane.

Session options are pinned (:func:`oracle.runtime.inference.session_options`: one thread, sequential
execution, no graph optimisations, deterministic compute, CPU provider only) so that the same bytes give the
same output run after run.

An ``EXACT`` model whose :class:`ModelInfo` carries a proven program (``program_path``, set by the model store
only after the file was bound to the registered commitment, :mod:`oracle.runtime.binder`) is answered by
running that program (:class:`oracle.profile.binding.ProgramRunner`, bit-for-bit the reference interpreter),
in the same limited child; onnxruntime never runs an ``EXACT`` file.

The :class:`Executor` protocol is the seam for wrappers (e.g. a dishonest demo worker that alters outputs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from oracle.errors import InferenceError
from oracle.runtime.errors import InferenceTimeout, NotRun
from oracle.runtime.model_checks import ModelInfo
from oracle.runtime.sandbox import Sandbox, SandboxClosed, SandboxFailure, SandboxLimits

Result = bytes | InferenceError


class ExecutorClosed(InferenceError):
    """The executor was closed (the node is stopping); starting it again is refused, and that is no fault."""


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
    """The default :class:`Executor`: onnxruntime (or an ``EXACT`` model's proven program) in a sandbox."""

    def __init__(self, limits: ExecutorLimits | None = None) -> None:
        self.limits = limits or ExecutorLimits()
        self.sandbox = Sandbox("oracle.runtime.inference",
                               SandboxLimits(timeout=self.limits.timeout, memory_bytes=self.limits.memory_bytes),
                               name="oracle-inference")
        #: onnxruntime seconds spent in the last call (reported by the child), for metrics and the benchmark.
        self.last_inference_seconds = 0.0
        self._closed = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._closed:
            raise ExecutorClosed("the inference executor is closed (the node is stopping)")
        try:
            self.sandbox.start()
        except SandboxClosed:
            raise ExecutorClosed("the inference executor is closed (the node is stopping)") from None
        except SandboxFailure as exc:
            raise InferenceError(f"inference child failed to start: {exc.detail}") from None

    @property
    def pid(self) -> int | None:
        return self.sandbox.pid

    @property
    def restarts(self) -> int:
        return self.sandbox.restarts

    def alive(self) -> bool:
        return self.sandbox.alive()

    def close(self) -> None:
        self._closed = True
        self.sandbox.close()

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
        out: list[Result] = []
        spent = 0.0

        def each(item: Any) -> None:
            nonlocal spent
            if item[0] == "error":  # the model or program could not be loaded: every input fails alike
                out.extend(InferenceError(str(item[1])) for _ in inputs[len(out):])
                return
            _, payload, seconds = item
            spent += float(seconds)
            out.append(payload if isinstance(payload, bytes) else InferenceError(str(payload)))

        program = (str(model.program_path), model.program_commitment) if model.program_path else None
        try:
            self.sandbox.stream("run", str(model.path), model.onnx_hash, model.input, model.output, inputs, program,
                                each=each, items=len(inputs), timeout=limit)
        except SandboxFailure as exc:
            if exc.kind == "timeout":
                out.append(InferenceTimeout(f"inference exceeded the {limit:.1f} s wall-time limit of model "
                                            f"{model.model_id}"))
            elif exc.kind == "error":
                out.extend(InferenceError(f"inference failed: {exc.detail}") for _ in inputs[len(out):])
            else:
                out.append(InferenceError(f"inference child died (exit code {self.sandbox.last_exit_code}); "
                                          "memory limit or a crash in onnxruntime"))
        return out, spent
