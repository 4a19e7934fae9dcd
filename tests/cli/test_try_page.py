"""``/try`` on a real node: ``oracle node run --try-model`` serves it (a subprocess, the installed command, a real
anvil); a visitor's drawing is requested and attested by that node; when the node dies the page says so in a
real browser (Debian chromium driven by playwright), and keeps the drawing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from web3 import Web3

from oracle.chain.client import OracleClient
from oracle.chain.deploy import DeployParams, deploy_system
from oracle.chain.devnet import Devnet

from ..dashboard.conftest import STAKE, register_digits, sample_pixels
from ..dashboard.test_dashboard_e2e import chromium
from .helpers import DEV_KEY_1, assert_one_line_error, closed_port, oracle_exe, run_oracle

OPERATOR = 1  # DEV_KEY_1
PAYER = 3


@pytest.fixture
def setup(devnet: Devnet, w3: Web3, accounts: list[str], tmp_path: Path) -> dict[str, Any]:
    dep = deploy_system(w3, accounts[0], DeployParams(challenge_window=300, request_timeout=600,
                                                      unbonding_period=3600))
    dep.save(tmp_path / "deployment.json")
    client = OracleClient(w3, dep.oracle)
    model_id = register_digits(client, accounts[0])
    client.stake(accounts[OPERATOR], STAKE)
    port = closed_port()
    env = {"ORACLE_RPC_URLS": json.dumps([devnet.url]), "ORACLE_DEPLOYMENT_FILE": "deployment.json",
           "ORACLE_PRIVATE_KEY": DEV_KEY_1, "ORACLE_API_PORT": str(port), "ORACLE_POLL_INTERVAL": "0.1"}
    return {"env": env, "port": port, "model_id": model_id, "payer": accounts[PAYER], "client": client,
            "operator": accounts[OPERATOR]}


@pytest.fixture
def node(setup: dict[str, Any], tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORACLE_")}
    env.update(setup["env"])
    log = (tmp_path / "node.log").open("wb")
    proc = subprocess.Popen([oracle_exe(), "node", "run", "--try-model", str(setup["model_id"]), "--try-unlocked",
                             setup["payer"]], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{setup['port']}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert proc.poll() is None, (tmp_path / "node.log").read_text()
        try:
            if requests.get(f"{base}/api/try/config", timeout=2).json().get("enabled"):
                break
        except requests.RequestException:
            pass
        time.sleep(0.5)
    else:
        raise AssertionError("node did not serve /try: " + (tmp_path / "node.log").read_text()[-3000:])
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def test_try_flag_serves_requests_that_the_node_itself_attests(setup: dict[str, Any],
                                                               node: subprocess.Popen[bytes]) -> None:
    base = f"http://127.0.0.1:{setup['port']}"
    config = requests.get(f"{base}/api/try/config", timeout=10).json()
    assert config["model_id"] == setup["model_id"] and config["requester"] == setup["payer"]
    assert requests.get(f"{base}/try", timeout=10).status_code == 200
    sent = requests.post(f"{base}/api/try", json={"pixels": list(sample_pixels(0))}, timeout=60)
    assert sent.status_code == 200, sent.text
    rid = sent.json()["request_id"]
    deadline = time.monotonic() + 120
    stage = None
    while time.monotonic() < deadline:
        r = requests.get(f"{base}/api/dashboard/requests/{rid}", timeout=10)
        if r.status_code == 200:
            stage = r.json()["stage"]
            if stage != "requested":
                break
        time.sleep(0.5)
    assert stage not in (None, "requested"), stage
    view = setup["client"].get_request(int(rid, 16))
    assert view.operator == setup["operator"]


def test_the_page_shows_a_dead_node_and_keeps_the_drawing(setup: dict[str, Any],
                                                          node: subprocess.Popen[bytes]) -> None:
    base = f"http://127.0.0.1:{setup['port']}"
    from playwright.sync_api import expect

    with chromium() as browser:
        page = browser.new_page()
        page.goto(f"{base}/try")
        expect(page.get_by_test_id("try-info")).to_contain_text("model #", timeout=30_000)
        page.get_by_test_id("cell-0").click()
        assert page.get_by_test_id("submit").is_enabled()
        os.killpg(node.pid, signal.SIGKILL)
        node.wait(timeout=30)
        notice = page.get_by_test_id("try-disabled")
        notice.wait_for(state="visible", timeout=15_000)
        assert "not answering" in notice.inner_text()
        assert page.get_by_test_id("try-info").inner_text() == "the node is down"
        assert page.get_by_test_id("submit").is_disabled()
        assert page.get_by_test_id("cell-0").get_attribute("data-value") != "0"  # the drawing is kept


def test_try_flag_needs_a_payer_that_is_not_the_operator(setup: dict[str, Any], tmp_path: Path) -> None:
    no_payer = run_oracle("node", "run", "--try-model", str(setup["model_id"]), cwd=tmp_path, env=setup["env"],
                          timeout=60)
    assert_one_line_error(no_payer, "ORACLE_TRY_PRIVATE_KEY", "--try-unlocked")
    same = run_oracle("node", "run", "--try-model", str(setup["model_id"]), "--try-unlocked", setup["operator"],
                      cwd=tmp_path, env=setup["env"], timeout=60)
    assert_one_line_error(same, "must not be the operator's")
