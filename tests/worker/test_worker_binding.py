"""The real worker on anvil serves an EXACT model only when its file is bound to the registered program, answers
with that program, and applies the operator's risk settings (bond limit, allow and deny lists)."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from oracle.chain.types import Mode, Status
from oracle.jobstate import JobState

from .conftest import (
    OPERATOR_INDEX,
    WorkerSystem,
    compiled_program,
    expected_int_output,
    int_input,
    int_model,
    placeholder_program,
    wait_for,
)


def _identity_model(dead_div: bool) -> bytes:
    """int64 [1,2] -> Identity -> int64 [1,2]; optionally with an unused Div(x, -1) (SIGFPE on INT64_MIN)."""
    nodes = [helper.make_node("Identity", ["x"], ["y"], name="keep")]
    inits = []
    if dead_div:
        nodes.insert(0, helper.make_node("Div", ["x", "m1"], ["boom"], name="unused_div"))
        inits.append(numpy_helper.from_array(np.array([-1], dtype=np.int64), "m1"))
    g = helper.make_graph(nodes, "ident", [helper.make_tensor_value_info("x", TensorProto.INT64, [1, 2])],
                          [helper.make_tensor_value_info("y", TensorProto.INT64, [1, 2])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8).SerializeToString()


def _skipped(rn, label: str) -> float:
    return rn.node.metrics.requests_skipped.labels(reason=label)._value.get()  # noqa: SLF001


def test_a_file_registered_with_another_program_is_refused_and_others_are_served(ws: WorkerSystem,
                                                                                 node_factory) -> None:
    data = int_model().SerializeToString()
    # Same file, same I/O lengths, but the program committed on-chain is a different (all-zero) model.
    evil_id = ws.register(data, Mode.EXACT, 8, 16, name="evil", program=placeholder_program(8, 16))
    rn = node_factory(operator_index=OPERATOR_INDEX + 1)
    evil = ws.request(evil_id, int_input([1, 2, 3, 4]))
    good = ws.request(ws.int_model_id, int_input([1, 2, 3, 4]))
    wait_for(lambda: ws.client.status_of(good) == Status.SUBMITTED, what="bound model served")
    assert ws.client.is_attested_output(good, expected_int_output([1, 2, 3, 4]))
    wait_for(lambda: rn.node.db.job(evil).state is JobState.FAILED, what="unbound model refused")
    error = rn.node.db.job(evil).error
    assert "not bound to its program" in error and "different models" in error and "\n" not in error
    assert ws.client.status_of(evil) == Status.PENDING  # nothing was attested for it
    assert rn.error is None and rn.thread.is_alive()


def test_a_dead_div_node_is_refused_and_never_reaches_onnxruntime(ws: WorkerSystem, node_factory) -> None:
    # The owner registers the program of the live part (what the old compiler produced), with the dead node in
    # the file; INT64_MIN is the input that made onnxruntime die with SIGFPE.
    program = compiled_program(_identity_model(dead_div=False), 16, 16)
    assert program is not None
    dead_id = ws.register(_identity_model(dead_div=True), Mode.EXACT, 16, 16, name="deaddiv", program=program)
    rn = node_factory(operator_index=OPERATOR_INDEX + 2)
    int64_min = np.array([[-(2**63), 5]], dtype=">i8").tobytes()
    dead = ws.request(dead_id, int64_min)
    good = ws.request(ws.int_model_id, int_input([4, 3, 2, 1]))
    wait_for(lambda: ws.client.status_of(good) == Status.SUBMITTED, what="other model served")
    wait_for(lambda: rn.node.db.job(dead).state is JobState.FAILED, what="dead-node model refused")
    job = rn.node.db.job(dead)
    assert "dead node" in job.error and "unused_div" in job.error
    assert job.attempts == 0  # refused before any inference: no attempt burnt, no crash
    assert rn.node.executor.restarts == 0
    assert rn.error is None and rn.thread.is_alive()


def test_exact_answers_come_from_the_bound_program(ws: WorkerSystem, node_factory) -> None:
    from eth_utils import keccak

    rn = node_factory(operator_index=OPERATOR_INDEX + 4)
    rid = ws.request(ws.int_model_id, int_input([-32768, 32767, 0, 1]))
    wait_for(lambda: ws.client.status_of(rid) == Status.SUBMITTED, what="submitted")
    assert ws.client.is_attested_output(rid, expected_int_output([-32768, 32767, 0, 1]))
    model = ws.client.get_model(ws.int_model_id)
    info = rn.node.store.get(model)
    assert info.program_commitment == model.program_commitment
    assert keccak(info.program_path.read_bytes()) == model.program_commitment


def test_risk_settings_skip_models_over_the_bond_limit_or_denied(ws: WorkerSystem, node_factory) -> None:
    big_bond_id = ws.register(int_model().SerializeToString(), Mode.EXACT, 8, 16, name="bigbond", bond=10**19)
    rn = node_factory(operator_index=OPERATOR_INDEX + 3, max_bond_wei=10**18, deny_model_ids=[ws.float_model_id])
    over = [ws.request(big_bond_id, int_input([1, 1, 1, k])) for k in range(3)]
    denied = ws.request(ws.float_model_id, np.array([1.0, 2.0, 3.0], dtype=">f4").tobytes())
    good = ws.request(ws.int_model_id, int_input([1, 1, 1, 1]))
    wait_for(lambda: ws.client.status_of(good) == Status.SUBMITTED, what="allowed model served")
    wait_for(lambda: all(rn.node.db.job(r) is not None and rn.node.db.job(r).state is JobState.SKIPPED
                         for r in (*over, denied)), what="risky requests skipped")
    assert "max_bond_wei" in rn.node.db.job(over[0]).error
    assert "deny_model_ids" in rn.node.db.job(denied).error
    assert _skipped(rn, "bond_over_limit") == 3 and _skipped(rn, "model_denied") == 1
    assert rn.node.processor._risk_logged == {(big_bond_id, "bond_over_limit"),  # noqa: SLF001 - logged once each
                                              (ws.float_model_id, "model_denied")}
    for r in (*over, denied):
        assert ws.client.status_of(r) == Status.PENDING
    assert rn.error is None


def test_the_dead_div_file_really_kills_onnxruntime(tmp_path) -> None:
    """Control for the test above: run as a plain file (what the worker did before binding), the same bytes and
    input make onnxruntime die with SIGFPE; the sandboxed child absorbs it, the request burns an attempt."""
    from eth_utils import keccak

    from oracle.chain.types import Model
    from oracle.errors import InferenceError
    from oracle.runtime.executor import ExecutorLimits, ProcessExecutor
    from oracle.runtime.model_store import ModelStore

    data = _identity_model(dead_div=True)
    path = tmp_path / "dead.onnx"
    path.write_bytes(data)
    store = ModelStore(tmp_path / "cache", max_model_bytes=1 << 20, max_tensor_bytes=1 << 20)
    as_file = store.get(Model(1, "0x" + "00" * 20, False, Mode.ATTESTED, 1, 4, 16, 16, keccak(data), b"\x00" * 32,
                              path.as_uri()))
    ex = ProcessExecutor(ExecutorLimits(timeout=10.0))
    try:
        (res,) = ex.run(as_file, [np.array([[-(2**63), 5]], dtype=">i8").tobytes()])
        assert isinstance(res, InferenceError) and "died" in str(res)
        assert ex.restarts == 1
    finally:
        ex.close()


def test_risk_settings_defaults_and_environment(monkeypatch) -> None:
    from oracle.settings import NodeSettings

    monkeypatch.setenv("ORACLE_ORACLE_ADDRESS", "0x" + "00" * 19 + "01")
    s = NodeSettings.load(None)
    assert (s.max_bond_wei, s.deny_model_ids, s.model_ids) == (10**18, [], None)  # 1 ETH, nothing denied
    monkeypatch.setenv("ORACLE_MAX_BOND_WEI", "5000000000000000000")
    monkeypatch.setenv("ORACLE_DENY_MODEL_IDS", "[3, 4]")
    s = NodeSettings.load(None)
    assert (s.max_bond_wei, s.deny_model_ids) == (5 * 10**18, [3, 4])
    monkeypatch.setenv("ORACLE_MAX_BOND_WEI", "none")
    assert NodeSettings.load(None).max_bond_wei is None
