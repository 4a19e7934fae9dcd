"""Model store and executor: verified before parsing, dangerous files refused, limits enforced."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from eth_utils import keccak
from onnx import TensorProto, helper, numpy_helper

from oracle.chain.types import Mode, Model
from oracle.errors import InferenceError, ModelError
from oracle.runtime import codec
from oracle.runtime.executor import ExecutorLimits, ProcessExecutor
from oracle.runtime.model_store import ModelStore

from .conftest import (
    compiled_program,
    expected_float_output,
    expected_int_output,
    float_input,
    float_model,
    int_input,
    int_model,
)


def _model(path: Path, data: bytes, mode: Mode, inp: int, out: int, onnx_hash: bytes | None = None,
           program: bytes | None = None) -> Model:
    """A registration of ``data``; an EXACT one commits to the program the file compiles to (or ``program``)."""
    path.write_bytes(data)
    if program is None and mode is Mode.EXACT:
        program = compiled_program(data, inp, out) or b""
    commitment = keccak(program) if program is not None else b"\x00" * 32
    return Model(1, "0x" + "00" * 20, False, mode, 1, 4, inp, out, onnx_hash or keccak(data), commitment,
                 path.as_uri())


def _store(tmp_path: Path, **kw: int) -> ModelStore:
    return ModelStore(tmp_path / "cache", max_model_bytes=kw.get("max_model_bytes", 1 << 20),
                      max_tensor_bytes=kw.get("max_tensor_bytes", 1 << 20))


def test_valid_models_are_cached_by_hash(tmp_path: Path) -> None:
    store = _store(tmp_path)
    data = int_model().SerializeToString()
    info = store.get(_model(tmp_path / "m.onnx", data, Mode.EXACT, 8, 16))
    assert info.input.width == 2 and info.output.width == 8 and not info.input.is_float
    assert store.read_cached(keccak(data)) == data
    (tmp_path / "m.onnx").unlink()  # served from the content-addressed cache now
    store2 = _store(tmp_path)
    again = store2.get(_model(tmp_path / "gone.onnx", b"", Mode.EXACT, 8, 16, keccak(data),
                              program=compiled_program(data, 8, 16)))
    assert again.onnx_hash == keccak(data)


def test_hash_mismatch_is_refused_before_parsing(tmp_path: Path) -> None:
    data = int_model().SerializeToString()
    with pytest.raises(ModelError, match="does not match the registered"):
        _store(tmp_path).get(_model(tmp_path / "m.onnx", data, Mode.EXACT, 8, 16, onnx_hash=b"\x01" * 32))


def test_truncated_onnx_is_refused(tmp_path: Path) -> None:
    data = int_model().SerializeToString()[:-7]
    with pytest.raises(ModelError, match="not a valid ONNX|checker|input"):
        _store(tmp_path).get(_model(tmp_path / "m.onnx", data, Mode.EXACT, 8, 16))


def test_external_data_is_refused(tmp_path: Path) -> None:
    m = int_model()
    w = m.graph.initializer[0]
    w.data_location = TensorProto.EXTERNAL
    e = w.external_data.add()
    e.key, e.value = "location", "../../etc/passwd"
    w.ClearField("raw_data")
    data = m.SerializeToString()
    with pytest.raises(ModelError, match="external data"):
        _store(tmp_path).get(_model(tmp_path / "m.onnx", data, Mode.EXACT, 8, 16))


def test_oversized_tensors_and_files_are_refused(tmp_path: Path) -> None:
    g = helper.make_graph(
        [helper.make_node("Add", ["x", "B"], ["y"])], "big",
        [helper.make_tensor_value_info("x", TensorProto.INT64, [1, 4096])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, [1, 4096])],
        [numpy_helper.from_array(np.zeros((1, 4096), dtype=np.int64), "B")])
    data = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8).SerializeToString()
    with pytest.raises(ModelError, match="over the 1024-byte cap"):
        _store(tmp_path, max_tensor_bytes=1024).get(_model(tmp_path / "m.onnx", data, Mode.EXACT, 8192, 32768))
    with pytest.raises(ModelError, match="cap"):
        _store(tmp_path, max_model_bytes=100).get(_model(tmp_path / "m2.onnx", data, Mode.EXACT, 8192, 32768))


def test_unknown_and_out_of_profile_ops_are_refused(tmp_path: Path) -> None:
    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "relu",
        [helper.make_tensor_value_info("x", TensorProto.INT64, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, [1, 4])])
    data = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)], ir_version=8).SerializeToString()
    with pytest.raises(ModelError, match="not in the integer profile"):
        _store(tmp_path).get(_model(tmp_path / "m.onnx", data, Mode.EXACT, 32, 32))
    g2 = helper.make_graph(
        [helper.make_node("Evil", ["x"], ["y"], domain="com.evil")], "evil",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    data2 = helper.make_model(g2, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.evil", 1)],
                              ir_version=8).SerializeToString()
    with pytest.raises(ModelError, match="custom op domain"):
        _store(tmp_path).get(_model(tmp_path / "m2.onnx", data2, Mode.ATTESTED, 16, 16))


def test_io_length_must_match_registration(tmp_path: Path) -> None:
    data = int_model().SerializeToString()
    with pytest.raises(ModelError, match="length"):
        _store(tmp_path).get(_model(tmp_path / "m.onnx", data, Mode.EXACT, 12, 16))


def test_codec_roundtrip_and_canonical_nan() -> None:
    arr = np.array([[-32768, -1, 0, 32767]], dtype=np.int64)
    assert codec.decode_int(codec.encode_int(arr, 2), (1, 4), 2).tolist() == arr.tolist()
    assert codec.encode_int(np.array([-1]), 2) == b"\xff\xff"
    out = codec.encode_float(np.array([np.float32("nan"), -0.0], dtype=np.float32))
    assert out == b"\x7f\xc0\x00\x00\x80\x00\x00\x00"


@pytest.fixture(scope="module")
def executor() -> ProcessExecutor:
    ex = ProcessExecutor(ExecutorLimits(timeout=5.0, memory_bytes=1536 * 1024 * 1024))
    yield ex
    ex.close()


def test_executor_runs_exact_and_attested(tmp_path: Path, executor: ProcessExecutor) -> None:
    store = _store(tmp_path)
    ii = store.get(_model(tmp_path / "i.onnx", int_model().SerializeToString(), Mode.EXACT, 8, 16))
    fi = store.get(_model(tmp_path / "f.onnx", float_model().SerializeToString(), Mode.ATTESTED, 12, 8))
    assert executor.run(ii, [int_input([1, 2, 3, 4]), int_input([-9, 0, 5, 32767])]) == [
        expected_int_output([1, 2, 3, 4]), expected_int_output([-9, 0, 5, 32767])]
    assert executor.run(fi, [float_input([0.5, 1.0, -3.0])]) == [expected_float_output([0.5, 1.0, -3.0])]
    bad = executor.run(ii, [b"\x00" * 3])
    assert isinstance(bad[0], InferenceError)


def _huge_alloc_model() -> bytes:
    # ConstantOfShape of 2^29 float32 = 2 GiB at run time: passes static checks, must hit the memory limit.
    shape = numpy_helper.from_array(np.array([1 << 29], dtype=np.int64), "shape")
    g = helper.make_graph(
        [helper.make_node("ConstantOfShape", ["shape"], ["big"],
                          value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])),
         helper.make_node("ReduceSum", ["big"], ["s"], keepdims=1),
         helper.make_node("Add", ["x", "s"], ["y"])], "alloc",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])], [shape])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8).SerializeToString()


def test_memory_limit_kills_only_the_child(tmp_path: Path, executor: ProcessExecutor) -> None:
    store = _store(tmp_path)
    info = store.get(_model(tmp_path / "a.onnx", _huge_alloc_model(), Mode.ATTESTED, 4, 4))
    (res,) = executor.run(info, [float_input([1.0])])
    assert isinstance(res, InferenceError)
    ii = store.get(_model(tmp_path / "i.onnx", int_model().SerializeToString(), Mode.EXACT, 8, 16))
    assert executor.run(ii, [int_input([1, 1, 1, 1])]) == [expected_int_output([1, 1, 1, 1])]


def test_wall_time_limit_restarts_the_child(tmp_path: Path) -> None:
    import time

    ex = ProcessExecutor(ExecutorLimits(timeout=0.5))
    try:
        store = _store(tmp_path)
        ii = store.get(_model(tmp_path / "i.onnx", int_model().SerializeToString(), Mode.EXACT, 8, 16))
        ex.start()
        pid = ex.pid
        orig = ex.sandbox._conn.send  # noqa: SLF001

        def slow_send(msg):  # the child is made to sleep by a stop-the-world signal instead
            import os
            import signal
            orig(msg)
            os.kill(ex.pid, signal.SIGSTOP)

        ex.sandbox._conn.send = slow_send  # type: ignore[method-assign]  # noqa: SLF001
        t0 = time.monotonic()
        (res,) = ex.run(ii, [int_input([1, 2, 3, 4])])
        assert isinstance(res, InferenceError) and "wall-time" in str(res)
        assert time.monotonic() - t0 < 5
        assert ex.restarts == 1
        assert ex.run(ii, [int_input([1, 2, 3, 4])]) == [expected_int_output([1, 2, 3, 4])]
        assert ex.pid != pid
    finally:
        ex.close()


def test_exact_file_not_bound_to_its_program_is_refused(tmp_path: Path) -> None:
    data = int_model().SerializeToString()
    other = compiled_program(data, 8, 16) + b"\x00"  # any other program bytes
    with pytest.raises(ModelError, match="not bound to its program: the ONNX file compiles to program 0x"):
        _store(tmp_path).get(_model(tmp_path / "m.onnx", data, Mode.EXACT, 8, 16, program=other))


def test_exact_file_is_checked_against_the_chains_program_chunks(tmp_path: Path) -> None:
    data = int_model().SerializeToString()
    program = compiled_program(data, 8, 16)
    assert program is not None
    chain = {"bytes": program[:-1] + bytes([program[-1] ^ 1])}  # a chunk rewritten after registration
    store = ModelStore(tmp_path / "cache", max_model_bytes=1 << 20, max_tensor_bytes=1 << 20,
                       program_reader=lambda _m: chain["bytes"])
    with pytest.raises(ModelError, match="on-chain program changed after registration"):
        store.get(_model(tmp_path / "m.onnx", data, Mode.EXACT, 8, 16))
    chain["bytes"] = program
    store2 = ModelStore(tmp_path / "cache2", max_model_bytes=1 << 20, max_tensor_bytes=1 << 20,
                        program_reader=lambda _m: chain["bytes"])
    info = store2.get(_model(tmp_path / "m.onnx", data, Mode.EXACT, 8, 16))
    assert info.program_path is not None and info.program_path.read_bytes() == program


def test_executor_refuses_a_tampered_program_file(tmp_path: Path, executor: ProcessExecutor) -> None:
    store = _store(tmp_path)
    ii = store.get(_model(tmp_path / "i.onnx", int_model().SerializeToString(), Mode.EXACT, 8, 16))
    assert ii.program_path is not None
    ii.program_path.write_bytes(ii.program_path.read_bytes() + b"\x00")
    fresh = ProcessExecutor(ExecutorLimits(timeout=5.0))
    try:
        (res,) = fresh.run(ii, [int_input([1, 2, 3, 4])])
        assert isinstance(res, InferenceError) and "hash mismatch" in str(res)
    finally:
        fresh.close()


def test_a_binding_refusal_is_final_for_the_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import oracle.runtime.binder as binder

    calls = []
    real = binder.bind_in_child

    def counting(*args: object, **kw: object) -> object:  # the real compiler child, counted
        calls.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(binder, "bind_in_child", counting)
    monkeypatch.setattr("oracle.runtime.model_store.REFUSAL_TTL", 0.0)  # other refusals are retried at once now
    data = int_model().SerializeToString()
    model = _model(tmp_path / "m.onnx", data, Mode.EXACT, 8, 16, program=compiled_program(data, 8, 16) + b"\x00")
    store = _store(tmp_path)
    for _ in range(3):
        with pytest.raises(ModelError, match="not bound to its program"):
            store.get(model)
    assert len(calls) == 1
    fdata = float_model().SerializeToString()
    later = _model(tmp_path / "later.onnx", fdata, Mode.ATTESTED, 12, 8)
    (tmp_path / "later.onnx").unlink()
    with pytest.raises(ModelError, match="no source produced"):
        store.get(later)
    (tmp_path / "later.onnx").write_bytes(fdata)  # a fetch failure is not final: the file came back
    assert store.get(later).onnx_hash == keccak(fdata)


def test_a_binding_check_that_hits_its_time_limit_is_retried(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A compile that times out (a node frozen by SIGSTOP or a loaded machine does that to a correct file) says
    nothing about the file: it is refused for REFUSAL_TTL, not for the life of the process (found by the soak:
    a frozen worker refused the digits model for good and never served it again)."""
    monkeypatch.setattr("oracle.runtime.model_store.REFUSAL_TTL", 0.0)
    data = int_model().SerializeToString()
    model = _model(tmp_path / "m.onnx", data, Mode.EXACT, 8, 16)
    store = ModelStore(tmp_path / "cache", max_model_bytes=1 << 20, max_tensor_bytes=1 << 20, bind_timeout=1e-6)
    with pytest.raises(ModelError, match="binding check did not finish: compiling the ONNX file exceeded"):
        store.get(model)
    store.bind_timeout = 120.0  # the machine recovered
    info = store.get(model)
    assert info.program_path is not None and info.program_path.read_bytes() == compiled_program(data, 8, 16)
