"""Issue 12, item 3: a slow model cannot delay the others, ends parked, and only the operator un-parks it.

The attack, on anvil with a real node process: an ATTESTED model that really takes ~10 s per input (a chain
of 1024x1024 MatMuls, no sleep anywhere) gets three 1-wei-class requests, then digits-like requests arrive.
Before lanes, the node ran the slow batch on its loop thread (10 s batch limit, then each input alone):
the digits answers waited behind it for ~40 s. Now the digits answers reach the chain before the slow model
has even used up its first input's budget, and the slow model is parked with its pending jobs dropped.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from oracle.chain.types import Mode, Status
from oracle.jobstate import JobState
from oracle.worker.db import Database

from ..cli.helpers import closed_port, run_oracle
from .conftest import OPERATOR_INDEX, WorkerSystem, dev_account, int_input, wait_for

OP_INDEX = OPERATOR_INDEX + 2
ROOT = Path(__file__).resolve().parents[2]
SLOW_BUDGET = 3.0  # seconds per input for the slow model (model_timeouts); one input really takes ~10 s
ADMIN = "slow-model-admin-key"


def slow_model(n: int = 1024, k: int = 400) -> bytes:
    """float32 [1,1] -> (I + x) @ I @ I ... (k MatMuls of n x n) -> summed to [1,1]: ~k * 25 ms per input."""
    eye = numpy_helper.from_array(np.eye(n, dtype=np.float32), "W")
    row = numpy_helper.from_array(np.ones((1, n), dtype=np.float32), "r")
    col = numpy_helper.from_array(np.ones((n, 1), dtype=np.float32), "c")
    nodes = [helper.make_node("Add", ["W", "x"], ["h0"])]
    nodes += [helper.make_node("MatMul", [f"h{i}", "W"], [f"h{i + 1}"]) for i in range(k)]
    nodes += [helper.make_node("MatMul", ["r", f"h{k}"], ["s"]), helper.make_node("MatMul", ["s", "c"], ["y"])]
    g = helper.make_graph(nodes, "slow", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])], [eye, row, col])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8).SerializeToString()


def _spawn(ws: WorkerSystem, tmp: Path, port: int, slow_id: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORACLE_")}
    env.update({
        "ORACLE_RPC_URLS": f'["{ws.url}"]', "ORACLE_ORACLE_ADDRESS": ws.deployment.oracle,
        "ORACLE_DB_PATH": str(tmp / "node.sqlite3"), "ORACLE_MODEL_DIR": str(tmp / "cache"),
        "ORACLE_POLL_INTERVAL": "0.05", "ORACLE_API_PORT": str(port), "ORACLE_ADMIN_KEY": ADMIN,
        "ORACLE_START_BLOCK": str(ws.w3.eth.block_number + 1), "ORACLE_PRIVATE_KEY": dev_account(OP_INDEX).key.hex(),
        "ORACLE_MODEL_TIMEOUTS": f'{{"{slow_id}": {SLOW_BUDGET}}}', "ORACLE_STUCK_AFTER": "60",
        "PYTHONPATH": str(ROOT),
    })
    return subprocess.Popen([sys.executable, "-m", "tests.worker.node_proc"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _metric(api: str, name: str, model_id: int) -> float:
    text = httpx.get(f"{api}/metrics", timeout=5).text
    m = re.search(rf'^{name}\{{model_id="{model_id}"\}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


@pytest.mark.timeout(300)
def test_a_slow_model_cannot_delay_the_others_and_ends_parked(ws: WorkerSystem, tmp_path: Path) -> None:
    slow_id = ws.register(slow_model(), Mode.ATTESTED, 4, 4, name="slow")
    port = closed_port()
    api = f"http://127.0.0.1:{port}"
    proc = _spawn(ws, tmp_path, port, slow_id)
    try:
        warm = ws.request(ws.int_model_id, int_input([1, 2, 3, 4]))  # children started, digits bound
        wait_for(lambda: ws.client.status_of(warm) is Status.SUBMITTED, timeout=120, what="warm-up answered")
        slow = [ws.request(slow_id, np.array([float(i)], dtype=">f4").tobytes()) for i in range(3)]
        digits = [ws.request(ws.int_model_id, int_input([i, 1, 2, 3])) for i in range(5)]
        db = Database(tmp_path / "node.sqlite3")
        slow_errors: list[str] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            slow_errors = [j.error for r in slow if (j := db.job(r)) is not None and j.error]  # read first
            if all(ws.client.status_of(r) is Status.SUBMITTED for r in digits):
                break
            time.sleep(0.05)
        assert all(ws.client.status_of(r) is Status.SUBMITTED for r in digits), "digits answers never came"
        # Ordering, not wall clock: every digits answer was on-chain before the slow model's first input had
        # even run past its budget (before lanes, they waited for the whole slow batch and its retries).
        assert slow_errors == [], f"digits answered only after the slow model failed: {slow_errors}"
        assert _metric(api, "oracle_worker_inference_timeouts_total", slow_id) <= 1

        # The slow model keeps timing out: parked, its pending jobs dropped (counted per job), visible everywhere.
        parked = wait_for(lambda: httpx.get(f"{api}/parked", timeout=5).json()["parked"], timeout=150,
                          what="slow model parked")
        assert [p["model_id"] for p in parked] == [slow_id]
        assert "3 inputs in a row ran past its 3.0 s budget" in parked[0]["reason"]
        assert "oracle node unpark" in parked[0]["reason"]
        wait_for(lambda: all(db.job(r).state in (JobState.FAILED, JobState.SKIPPED) for r in slow),
                 what="slow jobs dropped")
        states = {r: db.job(r) for r in slow}
        failed = [j for j in states.values() if j.state is JobState.FAILED]
        skipped = [j for j in states.values() if j.state is JobState.SKIPPED]
        assert len(failed) == 1 and "wall-time limit" in failed[0].error and failed[0].attempts == 3
        assert len(skipped) == 2 and all("parked" in j.error and j.attempts == 0 for j in skipped)
        assert httpx.get(f"{api}/parked", timeout=5).json()["parked"][0]["dropped"] == 2
        assert httpx.get(f"{api}/ready", timeout=5).json()["parked_models"] == {str(slow_id): parked[0]["reason"]}
        assert _metric(api, "oracle_worker_model_parked", slow_id) == 1
        assert _metric(api, "oracle_worker_inference_timeouts_total", slow_id) == 3

        # A new request for the parked model is dropped on arrival; the others are still served.
        late = ws.request(slow_id, np.array([9.0], dtype=">f4").tobytes())
        after = ws.request(ws.int_model_id, int_input([9, 9, 9, 9]))
        wait_for(lambda: (j := db.job(late)) is not None and j.state is JobState.SKIPPED, what="late one dropped")
        wait_for(lambda: ws.client.status_of(after) is Status.SUBMITTED, what="digits still served")
        assert db.parked_models()[slow_id]["dropped"] == 3

        # A restart does not un-park it (parking is in the database); the operator does, here with the CLI on
        # the running node's database.
        out = run_oracle("node", "unpark", str(slow_id), cwd=tmp_path,
                         env={"ORACLE_DB_PATH": str(tmp_path / "node.sqlite3"),
                              "ORACLE_ORACLE_ADDRESS": ws.deployment.oracle})
        assert out.returncode == 0, out.stderr
        assert f"model {slow_id} un-parked" in out.stdout
        wait_for(lambda: _metric(api, "oracle_worker_model_parked", slow_id) == 0, what="gauge follows the CLI")
        assert httpx.get(f"{api}/parked", timeout=5).json()["parked"] == []
        again = run_oracle("node", "unpark", str(slow_id), cwd=tmp_path,
                           env={"ORACLE_DB_PATH": str(tmp_path / "node.sqlite3"),
                                "ORACLE_ORACLE_ADDRESS": ws.deployment.oracle})
        assert again.returncode == 1 and "is not parked" in again.stderr and "Traceback" not in again.stderr
        r = httpx.post(f"{api}/admin/unpark/{slow_id}", headers={"X-API-Key": ADMIN}, timeout=5)
        assert r.status_code == 404 and "not parked" in r.text
        db.close()
    finally:
        proc.terminate()
        try:
            assert proc.wait(timeout=30) == 0, "clean SIGTERM exit with a lane busy in a slow input"
        finally:
            if proc.poll() is None:
                proc.kill()


def test_each_input_has_its_models_budget_and_the_rest_of_the_chunk_is_not_run(tmp_path: Path) -> None:
    from eth_utils import keccak

    from oracle.chain.types import Model
    from oracle.runtime.errors import InferenceTimeout, NotRun
    from oracle.runtime.executor import ExecutorLimits, ProcessExecutor
    from oracle.runtime.model_store import ModelStore

    from .conftest import expected_float_output, float_input, float_model

    store = ModelStore(tmp_path / "cache", max_model_bytes=1 << 23, max_tensor_bytes=1 << 23)

    def register(model_id: int, data: bytes, inp: int, out: int) -> Model:
        path = tmp_path / f"{model_id}.onnx"
        path.write_bytes(data)
        return Model(model_id, "0x" + "00" * 20, False, Mode.ATTESTED, 1, 4, inp, out, keccak(data), b"\x00" * 32,
                     path.as_uri())

    slow = store.get(register(1, slow_model(), 4, 4))
    fast = store.get(register(2, float_model().SerializeToString(), 12, 8))
    ex = ProcessExecutor(ExecutorLimits(timeout=60.0, model_timeouts={1: 1.0}))
    try:
        x = np.array([1.0], dtype=">f4").tobytes()
        res = ex.run(slow, [x, x, x])
        assert isinstance(res[0], InferenceTimeout) and "1.0 s wall-time limit of model 1" in str(res[0])
        assert all(isinstance(r, NotRun) for r in res[1:]), "after a timeout the chunk's other inputs do not run"
        assert ex.restarts == 1
        # the other model keeps the default budget and the restarted child answers it
        assert ex.run(fast, [float_input([1.0, 2.0, 3.0])]) == [expected_float_output([1.0, 2.0, 3.0])]
    finally:
        ex.close()
