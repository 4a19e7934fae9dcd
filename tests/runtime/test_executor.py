"""The worker's executor on the shared sandbox: a file onnxruntime cannot load fails every input of its call
with the reason, costs no restart, and the next model is served by the same child."""

from __future__ import annotations

from pathlib import Path

from eth_utils import keccak

from oracle.chain.types import Mode
from oracle.errors import InferenceError
from oracle.runtime.executor import ExecutorLimits, ProcessExecutor
from oracle.runtime.model_checks import ModelInfo, TensorSpec
from tests.worker.conftest import expected_float_output, float_input, float_model

SPEC_IN = TensorSpec("x", (1, 3), 1, True, 4)
SPEC_OUT = TensorSpec("y", (1, 2), 1, True, 4)


def _info(path: Path, data: bytes) -> ModelInfo:
    path.write_bytes(data)
    return ModelInfo(1, Mode.ATTESTED, keccak(data), path, SPEC_IN, SPEC_OUT)


def test_a_file_onnxruntime_cannot_load_fails_its_inputs_and_the_child_lives_on(tmp_path: Path) -> None:
    ex = ProcessExecutor(ExecutorLimits(timeout=30.0))
    try:
        ex.start()
        pid = ex.pid
        bad = _info(tmp_path / "bad.onnx", b"\x08\x07" + b"not a protobuf graph" * 50)  # its hash matches
        results = ex.run(bad, [float_input([1.0, 2.0, 3.0])] * 3)
        assert len(results) == 3
        assert all(isinstance(r, InferenceError) and "cannot load model" in str(r) for r in results)
        assert ex.pid == pid and ex.restarts == 0
        data = float_model().SerializeToString()
        good = _info(tmp_path / "good.onnx", data)  # float32 [1,3] -> [1,2]
        assert ex.run(good, [float_input([1.0, 2.0, 3.0])]) == [expected_float_output([1.0, 2.0, 3.0])]
        assert ex.pid == pid
    finally:
        ex.close()


def test_a_closed_executor_refuses_to_start_again() -> None:
    ex = ProcessExecutor()
    ex.close()
    try:
        ex.start()
    except InferenceError as exc:
        assert "closed" in str(exc)
    else:
        raise AssertionError("a closed executor started a child")
    assert ex.pid is None

