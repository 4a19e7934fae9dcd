"""kill -9 mid-inference and between broadcast and receipt: restart, exactly one submission (threat 11)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from oracle.chain.types import Status
from oracle.jobstate import JobState
from oracle.worker.db import Database

from .conftest import OPERATOR_INDEX, WorkerSystem, dev_account, int_input, wait_for

OP_INDEX = OPERATOR_INDEX + 1
OP = dev_account(OP_INDEX).address
ROOT = Path(__file__).resolve().parents[2]


def _spawn(ws: WorkerSystem, tmp: Path, start_block: int, **env: str) -> subprocess.Popen[bytes]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("ORACLE_")}
    e.update({
        "ORACLE_RPC_URLS": f'["{ws.url}"]', "ORACLE_ORACLE_ADDRESS": ws.deployment.oracle,
        "ORACLE_DB_PATH": str(tmp / "node.sqlite3"), "ORACLE_MODEL_DIR": str(tmp / "cache"),
        "ORACLE_POLL_INTERVAL": "0.05", "ORACLE_API_PORT": "0", "ORACLE_START_BLOCK": str(start_block),
        "ORACLE_PRIVATE_KEY": dev_account(OP_INDEX).key.hex(), "ORACLE_STUCK_AFTER": "60",
        "PYTHONPATH": str(ROOT),
    })
    e.update(env)
    return subprocess.Popen([sys.executable, "-m", "tests.worker.node_proc"], cwd=ROOT, env=e,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _kill9(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(timeout=20) == 0, "clean SIGTERM exit"
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.timeout(120)
def test_kill9_mid_inference_then_restart_submits_once(ws: WorkerSystem, tmp_path: Path) -> None:
    start = ws.w3.eth.block_number + 1
    marker = tmp_path / "inference-started"
    proc = _spawn(ws, tmp_path, start, WORKER_TEST_SLOW="60", WORKER_TEST_MARKER=str(marker))
    try:
        rid = ws.request(ws.int_model_id, int_input([5, 6, 7, 8]))
        wait_for(marker.exists, timeout=60, what="inference started")
        db = Database(tmp_path / "node.sqlite3")
        assert db.job(rid).state is JobState.SEEN
        _kill9(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert ws.client.status_of(rid) is Status.PENDING, "killed before anything was sent"
    assert ws.submissions_by(OP, rid) == []
    proc = _spawn(ws, tmp_path, start)
    try:
        wait_for(lambda: ws.client.status_of(rid) is Status.SUBMITTED, timeout=60, what="submitted after restart")
        wait_for(lambda: db.job(rid).state is JobState.SUBMITTED, what="db submitted")
    finally:
        _stop(proc)
    assert len(ws.submissions_by(OP, rid)) == 1
    assert ws.client.get_request(rid).operator == OP


@pytest.mark.timeout(120)
def test_kill9_between_broadcast_and_receipt_then_restart_submits_once(ws: WorkerSystem, tmp_path: Path) -> None:
    start = ws.w3.eth.block_number + 1
    rid = ws.request(ws.int_model_id, int_input([8, 7, 6, 5]))
    ws.rpc("evm_setAutomine", [False])
    try:
        proc = _spawn(ws, tmp_path, start)
        db = Database(tmp_path / "node.sqlite3")
        try:
            wait_for(lambda: (j := db.job(rid)) is not None and j.state is JobState.SENT, timeout=60,
                     what="broadcast")
            tx_hash = db.job(rid).tx_hash
            wait_for(lambda: ws.w3.eth.get_transaction(tx_hash) is not None, what="tx in the mempool")
            assert ws.w3.eth.get_transaction(tx_hash)["blockNumber"] is None, "broadcast, not mined"
            _kill9(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
        proc = _spawn(ws, tmp_path, start)
        ws.rpc("evm_setAutomine", [True])
        ws.rpc("evm_mine")
        try:
            wait_for(lambda: db.job(rid).state is JobState.SUBMITTED, timeout=60, what="receipt found after restart")
        finally:
            _stop(proc)
    finally:
        ws.rpc("evm_setAutomine", [True])
    assert ws.submissions_by(OP, rid) == [tx_hash]
    assert db.job(rid).tx_hash == tx_hash
