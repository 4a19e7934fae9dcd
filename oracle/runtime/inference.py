"""Running one model on canonical bytes: the pinned onnxruntime session, and the jobs of the inference child.

:func:`session_options` and :func:`run_once` are also used in-process by tools (the CLI's checks, the
benchmarks, tests). :func:`run` is the job :class:`oracle.runtime.executor.ProcessExecutor` streams in its
:class:`~oracle.runtime.sandbox.Sandbox` child: sessions and proven programs are cached there by hash, and
every file is re-checked against its hash when it is loaded.

An ``EXACT`` model whose :class:`~oracle.runtime.model_checks.ModelInfo` carries a proven program is answered
by that program (:class:`oracle.profile.binding.ProgramRunner`, the reference interpreter's int64 arithmetic
bit for bit); onnxruntime never runs an ``EXACT`` file.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from typing import Any

from oracle.runtime.model_checks import TensorSpec

#: What the child yields per input: ("item", output bytes or why it failed, seconds), or ("error", why) once
#: when the model or program could not be loaded (then every input fails alike).
Item = tuple[str, bytes | str, float] | tuple[str, str]

_sessions: dict[bytes, Any] = {}  # onnx keccak -> onnxruntime session (in the child)
_runners: dict[bytes, Any] = {}  # program commitment -> ProgramRunner (in the child)


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

    from oracle.runtime import codec

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


# ---------------------------------------------------------------------- jobs (run in the sandbox child)
def run(path: str, onnx_hash: bytes, spec_in: TensorSpec, spec_out: TensorSpec, inputs: list[bytes],
        program: tuple[str, bytes] | None) -> Iterator[Item]:
    """One item per input, each as soon as it is done (the parent times every input against the model's
    budget); a proven program answers instead of the file when ``program`` is given."""
    if program is not None:
        from oracle.profile.binding import ProgramRunner
        from oracle.profile.program import decode

        ppath, commitment = program
        runner, error = _load_cached(_runners, ppath, commitment, lambda data: ProgramRunner(decode(data)),
                                     "program", "cached program file changed on disk (hash mismatch); restart the "
                                     "node to rebuild it")
        if runner is None:
            yield ("error", error)
            return
        yield from _run_items(runner.run_bytes, inputs)
        return
    sess, error = _load_cached(_sessions, path, onnx_hash, _load_session, "model",
                               "cached model file changed on disk (hash mismatch); it will be refetched")
    if sess is None:
        yield ("error", error)
        return
    yield from _run_items(functools.partial(run_once, sess, spec_in, spec_out), inputs)


def _load_session(data: bytes) -> Any:
    import onnxruntime as ort

    return ort.InferenceSession(data, sess_options=session_options(), providers=["CPUExecutionProvider"])


def _load_cached(cache: dict[bytes, Any], path: str, digest: bytes, build: Callable[[bytes], Any], what: str,
                 changed: str) -> tuple[Any, str]:
    """The object built from the file at ``path`` once its keccak is ``digest``, cached by digest; or None and
    why it could not be loaded."""
    from eth_utils.crypto import keccak

    try:
        obj = cache.get(digest)
        if obj is None:
            with open(path, "rb") as fh:
                data = fh.read()
            if keccak(data) != digest:
                raise ValueError(changed)
            obj = cache[digest] = build(data)
        return obj, ""
    except MemoryError:
        return None, f"{what} load exceeded the memory limit"
    except Exception as exc:  # noqa: BLE001 - report any load failure to the parent
        return None, f"cannot load {what}: {exc}"


def _run_items(run_one: Callable[[bytes], bytes], inputs: list[bytes]) -> Iterator[Item]:
    """Runs every input on its own (one bad input fails only itself)."""
    for item in inputs:
        t0 = time.perf_counter()
        result: bytes | str
        try:
            result = run_one(item)
        except MemoryError:
            result = "inference exceeded the memory limit"
        except Exception as exc:  # noqa: BLE001 - bad input or runtime failure: this item only
            result = f"inference failed: {exc}"
        yield ("item", result, time.perf_counter() - t0)
