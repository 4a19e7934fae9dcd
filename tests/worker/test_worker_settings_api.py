"""Settings refuse keys in files; the API guards admin routes, validates input and limits bodies."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from oracle.api.app import create_app
from oracle.errors import ConfigError
from oracle.runtime.model_store import ModelStore
from oracle.settings import NodeSettings
from oracle.worker.db import Database
from oracle.worker.job import NewJob
from oracle.worker.metrics import Metrics


def test_private_key_in_config_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "node.toml"
    f.write_text('oracle_address = "0x' + "11" * 20 + '"\nprivate_key = "0xabc"\n')
    with pytest.raises(ConfigError, match="keys are never read from a config file"):
        NodeSettings.load(f)


def test_env_overrides_file_and_key_is_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "node.yaml"
    f.write_text('oracle_address: "0x' + "11" * 20 + '"\nconfirmations: 6\nbatch_size: 10\n')
    monkeypatch.setenv("ORACLE_CONFIRMATIONS", "2")
    monkeypatch.setenv("ORACLE_PRIVATE_KEY", "0x" + "42" * 32)
    s = NodeSettings.load(f)
    assert s.confirmations == 2 and s.batch_size == 10
    assert "42" * 32 not in repr(s)


class FakeControl:
    def __init__(self, tmp: Path) -> None:
        self.db = Database(tmp / "api.db")
        self.store = ModelStore(tmp / "cache", max_model_bytes=1 << 20, max_tensor_bytes=1 << 20)
        self.metrics = Metrics()
        self.admin_key = "s" * 24
        self.max_body_bytes = 1024
        self.paused = False

    def status(self):  # noqa: ANN201
        from oracle.worker.node import NodeStatus

        return NodeStatus("0x0", "0x0", "http://x", True, self.paused, True, 1, 1, None, 0, True, {})

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def withdraw(self, to):  # noqa: ANN001, ANN201
        return {"sent": False, "credits": 0, "tx_hash": None}


def test_api_routes(tmp_path: Path) -> None:
    ctl = FakeControl(tmp_path)
    ctl.db.advance([NewJob(7, 1, "0x" + "ab" * 20, 5, b"\x01\x02", 3, "0x" + "cd" * 32, 100)], [],
                   (3, "0x" + "cd" * 32))
    data = b"model-bytes"
    from eth_utils import keccak

    ctl.store._store(keccak(data), data)  # noqa: SLF001
    c = TestClient(create_app(ctl))
    assert c.get("/health").json() == {"status": "ok"}
    assert c.get("/ready").status_code == 200
    assert c.get("/jobs").json()["counts"] == {"seen": 1}
    assert c.get("/jobs/0x7").json()["state"] == "seen"
    assert c.get("/jobs/8").status_code == 404
    assert c.get("/jobs/not-an-id").status_code == 422
    assert c.get("/jobs?limit=0").status_code == 422
    assert c.get(f"/models/0x{keccak(data).hex()}").content == data
    assert c.get("/models/0x" + "00" * 32).status_code == 404
    assert c.post("/admin/pause").status_code == 401
    assert c.post("/admin/pause", headers={"X-API-Key": "nope"}).status_code == 403
    assert c.post("/admin/pause", headers={"X-API-Key": "s" * 24}).json() == {"ok": True, "paused": True}
    assert c.post("/admin/withdraw", headers={"X-API-Key": "s" * 24}, json={"to": "bad"}).status_code == 422
    assert c.post("/admin/withdraw", headers={"X-API-Key": "s" * 24}, content=b"x" * 5000).status_code == 413
    assert "oracle_worker_requests_seen_total" in c.get("/metrics").text
