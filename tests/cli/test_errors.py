"""What a newcomer gets wrong, answered in one line that says what to do (oracle/cli/errors.py).

Every case runs the installed ``oracle`` command in a subprocess against the session's real anvil (or a
closed port), and asserts: non-zero exit, exactly one ``error:`` line on stderr, no traceback, and the words
that tell the person what to fix.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3

from oracle.chain.deploy import DeployParams, deploy_system
from oracle.chain.devnet import Devnet
from oracle.cli.errors import explain, scrub

from .helpers import DEV_ACCOUNT_0, DEV_KEY_1, assert_one_line_error, closed_port, run_oracle

ORACLE = "0x" + "11" * 20


@pytest.fixture
def deployment(w3: Web3, accounts: list[str], tmp_path: Path) -> Path:
    dep = deploy_system(w3, accounts[0], DeployParams(challenge_window=60, request_timeout=300,
                                                      unbonding_period=3600))
    path = tmp_path / "deployment.json"
    dep.save(path)
    return path


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def _node_env(rpc: str, deployment: Path, **extra: str) -> dict[str, str]:
    env = {"ORACLE_RPC_URLS": json.dumps([rpc]), "ORACLE_DEPLOYMENT_FILE": str(deployment),
           "ORACLE_PRIVATE_KEY": DEV_KEY_1, "ORACLE_API_PORT": "0"}
    env.update(extra)
    return env


# ------------------------------------------------------------------ RPC: unreachable, malformed
@pytest.mark.parametrize("url, needle", [
    (f"http://127.0.0.1:{closed_port()}", "cannot reach the RPC endpoint"),
    ("127.0.0.1:8545", "malformed RPC URL"),
    ("ftp://example.org", "malformed RPC URL"),
])
def test_bad_rpc_is_one_line_on_deploy_node_run_and_challenger_run(url: str, needle: str, tmp_path: Path,
                                                                     deployment: Path) -> None:
    deploy = run_oracle("chain", "deploy", "--rpc", url, "--unlocked", DEV_ACCOUNT_0, cwd=tmp_path)
    assert_one_line_error(deploy, needle, "--rpc")
    node = run_oracle("node", "run", cwd=tmp_path, env=_node_env(url, deployment), timeout=60)
    assert_one_line_error(node, needle)
    chall = run_oracle("challenger", "run", "--rpc", url, "--deployment", str(deployment), "--unlocked",
                       DEV_ACCOUNT_0, cwd=tmp_path, timeout=60)
    assert_one_line_error(chall, needle)
    status = run_oracle("node", "status", cwd=tmp_path, env=_node_env(url, deployment))
    assert_one_line_error(status, needle)


# ------------------------------------------------------------------ unfunded account
def test_unfunded_deployer_and_staker_are_told_to_fund_their_address(devnet: Devnet, w3: Web3, tmp_path: Path,
                                                                     deployment: Path) -> None:
    poor = Account.create()
    deploy = run_oracle("chain", "deploy", "--rpc", devnet.url, cwd=tmp_path,
                        env={"ORACLE_PRIVATE_KEY": poor.key.to_0x_hex()})
    assert_one_line_error(deploy, "not enough ETH", poor.address, f"oracle chain fund {poor.address}")
    stake = run_oracle("node", "stake", "1", cwd=tmp_path,
                       env=_node_env(devnet.url, deployment, ORACLE_PRIVATE_KEY=poor.key.to_0x_hex()))
    assert_one_line_error(stake, "not enough ETH", poor.address)


def test_fund_then_stake_works_for_a_new_keystore_account(devnet: Devnet, w3: Web3, tmp_path: Path,
                                                          deployment: Path) -> None:
    env = {"ORACLE_KEYSTORE_PASSWORD": "a-long-test-password"}
    new = run_oracle("account", "new", "--out", "op.json", cwd=tmp_path, env=env)
    assert new.returncode == 0, new.stderr
    address = new.stdout.strip()
    assert Web3.is_checksum_address(address)
    assert run_oracle("account", "address", "op.json", cwd=tmp_path).stdout.strip() == address
    funded = run_oracle("chain", "fund", address, "--eth", "2", "--rpc", devnet.url, cwd=tmp_path)
    assert funded.returncode == 0, funded.stderr
    assert w3.eth.get_balance(address) == 2 * 10**18
    stake = run_oracle("node", "stake", "1", cwd=tmp_path,
                       env={**_node_env(devnet.url, deployment), "ORACLE_PRIVATE_KEY": "",
                            "ORACLE_KEYSTORE_PATH": "op.json", **env})
    assert stake.returncode == 0, stake.stderr
    assert "stake now 1.000000 ETH" in stake.stdout
    again = run_oracle("account", "new", "--out", "op.json", cwd=tmp_path, env=env)
    assert_one_line_error(again, "already exists")


# ------------------------------------------------------------------ malformed private key
@pytest.mark.parametrize("bad", ["0x1234", "0x" + "zz" * 32, "not a key", "0x" + "ab" * 33])
def test_malformed_private_key_names_the_variable_and_never_echoes_it(bad: str, devnet: Devnet, tmp_path: Path,
                                                                      deployment: Path) -> None:
    cases = [
        (run_oracle("chain", "deploy", "--rpc", devnet.url, cwd=tmp_path, env={"ORACLE_PRIVATE_KEY": bad}),
         "ORACLE_PRIVATE_KEY"),
        (run_oracle("node", "status", cwd=tmp_path, env=_node_env(devnet.url, deployment, ORACLE_PRIVATE_KEY=bad)),
         "ORACLE_PRIVATE_KEY"),
        (run_oracle("challenger", "run", "--rpc", devnet.url, "--deployment", str(deployment), cwd=tmp_path,
                    env={"ORACLE_CHALLENGER_PRIVATE_KEY": bad}), "ORACLE_CHALLENGER_PRIVATE_KEY"),
    ]
    for proc, name in cases:
        line = assert_one_line_error(proc, name, "64 hex digits")
        assert bad.removeprefix("0x")[:8] not in line


# ------------------------------------------------------------------ keystore and deployment files
def test_missing_keystore_is_not_reported_as_a_wrong_password(devnet: Devnet, tmp_path: Path,
                                                              deployment: Path) -> None:
    env = _node_env(devnet.url, deployment, ORACLE_PRIVATE_KEY="", ORACLE_KEYSTORE_PATH="nope.json",
                    ORACLE_KEYSTORE_PASSWORD="a-long-test-password")
    node = run_oracle("node", "status", cwd=tmp_path, env=env)
    line = assert_one_line_error(node, "keystore nope.json does not exist", "oracle account new")
    assert "password" not in line
    chall = run_oracle("challenger", "run", "--rpc", devnet.url, "--deployment", str(deployment), "--keystore",
                       "nope.json", cwd=tmp_path, env={"ORACLE_KEYSTORE_PASSWORD": "a-long-test-password"})
    assert "password" not in assert_one_line_error(chall, "keystore nope.json does not exist")


def test_wrong_password_and_not_a_keystore_are_said_as_such(devnet: Devnet, tmp_path: Path,
                                                            deployment: Path) -> None:
    (tmp_path / "op.json").write_text(json.dumps(Account.encrypt(Account.create().key, "right-password")))
    (tmp_path / "junk.json").write_text('{"hello": 1}')
    env = _node_env(devnet.url, deployment, ORACLE_PRIVATE_KEY="", ORACLE_KEYSTORE_PATH="op.json",
                    ORACLE_KEYSTORE_PASSWORD="wrong-password")
    assert_one_line_error(run_oracle("node", "status", cwd=tmp_path, env=env), "wrong password for keystore op.json")
    env["ORACLE_KEYSTORE_PATH"] = "junk.json"
    assert_one_line_error(run_oracle("node", "status", cwd=tmp_path, env=env), "junk.json is not a keystore file")
    chall = run_oracle("challenger", "run", "--rpc", devnet.url, "--deployment", str(deployment), "--keystore",
                       "op.json", cwd=tmp_path, env={"ORACLE_KEYSTORE_PASSWORD": "wrong-password"})
    assert_one_line_error(chall, "wrong password for keystore op.json")


def test_missing_deployment_file_says_to_deploy_first(devnet: Devnet, tmp_path: Path) -> None:
    node = run_oracle("node", "status", cwd=tmp_path,
                      env=_node_env(devnet.url, tmp_path / "missing.json"))
    assert_one_line_error(node, "missing.json does not exist", "oracle chain deploy")
    chall = run_oracle("challenger", "run", "--rpc", devnet.url, "--deployment", "missing.json", "--unlocked",
                       DEV_ACCOUNT_0, cwd=tmp_path)
    assert_one_line_error(chall, "missing.json does not exist", "oracle chain deploy")
    onnx = Path(__file__).resolve().parents[2] / "oracle" / "models" / "digits.onnx"
    reg = run_oracle("chain", "register", str(onnx), "--uri", onnx.as_uri(), "--fee", "1000", "--input-length",
                     "64", "--output-length", "1", "--deployment", "missing.json", "--rpc", devnet.url,
                     "--unlocked", DEV_ACCOUNT_0, cwd=tmp_path)
    assert_one_line_error(reg, "missing.json does not exist", "oracle chain deploy")
    (tmp_path / "bad.json").write_text("[1, 2]")
    chall = run_oracle("challenger", "run", "--rpc", devnet.url, "--deployment", "bad.json", "--unlocked",
                       DEV_ACCOUNT_0, cwd=tmp_path)
    assert_one_line_error(chall, "bad.json is not a deployment file")


# ------------------------------------------------------------------ ports in use
def test_port_in_use_is_refused_before_anything_starts(busy_port: int, devnet: Devnet, tmp_path: Path,
                                                       deployment: Path) -> None:
    node = run_oracle("node", "run", cwd=tmp_path,
                      env=_node_env(devnet.url, deployment, ORACLE_API_PORT=str(busy_port)), timeout=60)
    assert_one_line_error(node, f"port {busy_port}", "already in use", "ORACLE_API_PORT")
    dash = run_oracle("node", "run", "--dashboard", cwd=tmp_path,
                      env=_node_env(devnet.url, deployment, ORACLE_API_PORT=str(busy_port)), timeout=60)
    assert_one_line_error(dash, f"port {busy_port}", "already in use")
    chall = run_oracle("challenger", "run", "--rpc", devnet.url, "--deployment", str(deployment), "--unlocked",
                       DEV_ACCOUNT_0, "--metrics-port", str(busy_port), cwd=tmp_path, timeout=60)
    assert_one_line_error(chall, f"port {busy_port}", "already in use")
    anvil = run_oracle("chain", "devnet", "--port", str(busy_port), cwd=tmp_path)
    assert_one_line_error(anvil, f"port {busy_port}", "already in use")


# ------------------------------------------------------------------ the translation itself
def test_an_unexpected_exception_is_one_line_with_its_type() -> None:
    message, code = explain(EOFError())
    assert message.startswith("EOFError") and "ORACLE_DEBUG=1" in message and code == 1


def test_scrub_removes_secret_env_values_with_and_without_0x(monkeypatch: pytest.MonkeyPatch) -> None:
    key = Account.create().key.to_0x_hex()
    monkeypatch.setenv("ORACLE_PRIVATE_KEY", key)
    monkeypatch.setenv("ORACLE_ADMIN_KEY", "admin-key-value-123456")
    text = scrub(f"boom {key} {key[2:].upper()} admin-key-value-123456 keystore.json")
    assert key[2:].lower() not in text.lower() and "admin-key-value" not in text and "keystore.json" in text


# ------------------------------------------------------------------ Ctrl-C
def _ctrl_c(args: list[str], env: dict[str, str], cwd: Path, ready: str, settle: float = 1.0) -> tuple[int, str]:
    """Starts a daemon in its own process group, waits for ``ready`` and ``settle`` seconds more, sends SIGINT
    to the whole group (what a terminal's Ctrl-C does, reaching the inference child too); returns its exit
    code and output."""
    import os
    import signal
    import subprocess
    import time

    from .helpers import oracle_exe

    full = {k: v for k, v in os.environ.items() if not k.startswith("ORACLE_")}
    full.update(env)
    log = cwd / "daemon.log"
    proc = subprocess.Popen([oracle_exe(), *args], cwd=cwd, env=full, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while ready not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.3)
        assert ready in log.read_text(), log.read_text()
        time.sleep(settle)
        os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return code, log.read_text()


def test_ctrl_c_stops_the_node_and_the_challenger_without_a_traceback(devnet: Devnet, tmp_path: Path,
                                                                      deployment: Path) -> None:
    code, out = _ctrl_c(["node", "run"], _node_env(devnet.url, deployment), tmp_path, "inference_lanes_ready")
    assert code == 0 and "Traceback" not in out and "KeyboardInterrupt" not in out, out
    assert "node_stopped" in out
    code, out = _ctrl_c(["challenger", "run", "--rpc", devnet.url, "--deployment", str(deployment), "--unlocked",
                         DEV_ACCOUNT_0], {}, tmp_path, "challenger_started")
    assert code == 0 and "Traceback" not in out and "KeyboardInterrupt" not in out, out


def test_ctrl_c_while_the_inference_children_boot_prints_no_traceback(devnet: Devnet, tmp_path: Path,
                                                                      deployment: Path) -> None:
    """The children boot in the lanes' threads after ``node_started`` and take seconds to re-import the node
    stack. A Ctrl-C in that window printed each booting child's ``KeyboardInterrupt`` traceback (they ignore
    SIGINT only once running); they now start with SIGINT ignored (oracle/runtime/sandbox.py)."""
    code, out = _ctrl_c(["node", "run"], _node_env(devnet.url, deployment), tmp_path, "node_started", settle=0.3)
    ready_at = out.find("inference_lanes_ready")
    assert ready_at == -1 or out.index("signal=SIGINT") < ready_at, "Ctrl-C came after the boot: window missed"
    assert code == 0 and "Traceback" not in out and "KeyboardInterrupt" not in out, out
    assert "node_stopped" in out
