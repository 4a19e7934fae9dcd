"""Binding an EXACT file runs off the node's loop and its verdict is kept in the worker's database, keyed by
the file's keccak, the program (registered commitment and the chain's chunks) and the compiler version: a
restart does not compile again, a new compiler does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from eth_utils import keccak
from onnx import TensorProto, helper, numpy_helper

from oracle.chain.types import Mode, Model, Status
from oracle.errors import ModelError
from oracle.jobstate import JobState
from oracle.runtime.model_store import ModelStore
from oracle.worker.db import Database

from .conftest import (
    OPERATOR_INDEX,
    WorkerSystem,
    compiled_program,
    expected_float_output,
    expected_int_output,
    float_input,
    int_input,
    int_model,
    placeholder_program,
    wait_for,
)

OP_INDEX = OPERATOR_INDEX + 3


def _exact(tmp: Path, data: bytes, program: bytes | None = None, model_id: int = 1) -> Model:
    path = tmp / f"{keccak(data).hex()[:8]}.onnx"
    path.write_bytes(data)
    program = program or compiled_program(data, 8, 16)
    assert program is not None
    return Model(model_id, "0x" + "00" * 20, False, Mode.EXACT, 1, 4, 8, 16, keccak(data), keccak(program),
                 path.as_uri())


def _store(tmp: Path, db: Database) -> ModelStore:
    return ModelStore(tmp / "cache", max_model_bytes=1 << 20, max_tensor_bytes=1 << 20, verdicts=db)


def test_verdicts_survive_a_new_store_and_expire_with_the_compiler(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import oracle.profile.binding as binding

    db = Database(tmp_path / "w.sqlite3")
    good = _exact(tmp_path, int_model().SerializeToString())
    evil = _exact(tmp_path, int_model().SerializeToString(), program=placeholder_program(8, 16), model_id=2)
    first = _store(tmp_path, db)
    assert first.get(good).program_path is not None
    with pytest.raises(ModelError, match="not bound to its program"):
        first.get(evil)
    assert (first.compilations, first.verdict_hits) == (2, 0)

    restarted = _store(tmp_path, db)  # what a restart builds: same database, same cache directory
    info = restarted.get(good)
    assert info.program_path is not None and keccak(info.program_path.read_bytes()) == good.program_commitment
    with pytest.raises(ModelError, match="not bound to its program"):
        restarted.get(evil)
    assert (restarted.compilations, restarted.verdict_hits) == (0, 2)

    info.program_path.write_bytes(b"tampered")  # a cached verdict never serves a program file that changed
    again = _store(tmp_path, db)
    assert keccak(again.get(good).program_path.read_bytes()) == good.program_commitment
    assert again.compilations == 1

    monkeypatch.setattr(binding, "compiler_version", lambda: "a-newer-compiler")
    upgraded = _store(tmp_path, db)
    upgraded.get(good)
    with pytest.raises(ModelError):
        upgraded.get(evil)
    assert (upgraded.compilations, upgraded.verdict_hits) == (2, 0)
    db.close()


def test_compiler_version_names_the_profile_sources() -> None:
    from oracle.profile.binding import compiler_version

    v = compiler_version()
    assert v.count("+") == 1 and len(v.split("+")[1]) == 16


def _other_exact_model() -> bytes:
    """Another EXACT file (the int model with other weights): not bound yet on any node of this test."""
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Add", ["h", "B"], ["y"])], "other",
        [helper.make_tensor_value_info("x", TensorProto.INT64, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, [1, 2])],
        [numpy_helper.from_array(np.array([[2, 0], [0, 2], [1, 1], [-1, 3]], dtype=np.int64), "W"),
         numpy_helper.from_array(np.array([[5, 6]], dtype=np.int64), "B")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8).SerializeToString()


def test_binding_runs_off_the_loop_and_a_restart_reuses_its_verdict(ws: WorkerSystem, node_factory) -> None:
    rn = node_factory(operator_index=OP_INDEX)
    warm = ws.request(ws.float_model_id, float_input([1.0, 2.0, 3.0]))
    wait_for(lambda: ws.client.status_of(warm) is Status.SUBMITTED, timeout=60, what="float model served")
    compilations = rn.node.store.compilations

    # A model whose binding runs in a compiler child (spawned, then compiling); a float request made after it
    # is answered while that binding is still under way.
    big_id = ws.register(_other_exact_model(), Mode.EXACT, 8, 16, name="otherexact")
    x = int_input([1, 2, 3, 4])
    big = ws.request(big_id, x)
    later = ws.request(ws.float_model_id, float_input([0.5, 0.25, -1.0]))
    wait_for(lambda: ws.client.status_of(later) is Status.SUBMITTED, timeout=60, what="float answered")
    big_model = ws.client.get_model(big_id)
    assert rn.node.store.ready(big_model) is None and rn.node.db.job(big).attempts == 0, \
        "the float answer went out while the EXACT file was still being bound (the loop did not wait for it)"
    assert ws.client.is_attested_output(later, expected_float_output([0.5, 0.25, -1.0]))
    wait_for(lambda: ws.client.status_of(big) is Status.SUBMITTED, timeout=120, what="other EXACT model served")
    assert rn.node.store.compilations == compilations + 1

    digits = ws.request(ws.int_model_id, int_input([3, 1, 4, 1]))
    wait_for(lambda: ws.client.status_of(digits) is Status.SUBMITTED, timeout=60, what="int model served")
    assert rn.node.store.compilations == compilations + 2
    rn.stop()

    # Restart on the same database and model cache: both EXACT models are served without a compile.
    again = node_factory(operator_index=OP_INDEX, start_block=ws.w3.eth.block_number + 1)
    r1 = ws.request(big_id, x)
    r2 = ws.request(ws.int_model_id, int_input([2, 7, 1, 8]))
    wait_for(lambda: all(ws.client.status_of(r) is Status.SUBMITTED for r in (r1, r2)), timeout=60,
             what="served after the restart")
    assert ws.client.is_attested_output(r2, expected_int_output([2, 7, 1, 8]))
    assert again.node.store.compilations == 0 and again.node.store.verdict_hits == 2
    metrics = again.node.metrics.render().decode()
    assert "oracle_worker_binding_compilations 0.0" in metrics
    assert "oracle_worker_binding_cache_hits 2.0" in metrics
    assert again.node.db.job(r1).state is JobState.SUBMITTED
