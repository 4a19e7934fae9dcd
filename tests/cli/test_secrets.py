"""Secrets never appear in output: every command that loads the node settings, and every command that reads a
key from the environment, is run with real random secrets and a broken setting next to them, and neither a
secret nor any 8-hex-digit piece of one may appear on stdout or stderr.

pydantic's validation errors echo the input values (``input_value='...'``); a settings error once printed the
whole admin key and 28 of the private key's 64 hex digits.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from eth_account import Account

from oracle.chain.devnet import Devnet

from .helpers import run_oracle

#: Every command that builds NodeSettings (oracle/cli/node_cmds.py).
NODE_COMMANDS = [("node", "stake", "1"), ("node", "unstake", "1"), ("node", "withdraw-stake"),
                 ("node", "withdraw"), ("node", "status"), ("node", "run")]


def _pieces(secret: str, width: int = 8) -> set[str]:
    s = secret.removeprefix("0x").lower()
    return {s[i:i + width] for i in range(len(s) - width + 1)}


def _assert_no_secret(output: str, *secret_values: str) -> None:
    low = output.lower()
    for value in secret_values:
        assert value.lower() not in low
        leaked = [p for p in _pieces(value) if p in low]
        assert not leaked, f"pieces of a secret in the output: {leaked}\n{output}"


@pytest.fixture
def key() -> str:
    return Account.create().key.to_0x_hex()


@pytest.fixture
def admin() -> str:
    return secrets.token_hex(24)


# Each case: extra environment that breaks the settings in a different place (the secrets stay valid or not).
BROKEN = {
    "bad number next to the secrets": {"ORACLE_CONFIRMATIONS": "-1"},
    "bad list next to the secrets": {"ORACLE_RPC_URLS": "5"},
    "no deployment": {"ORACLE_DEPLOYMENT_FILE": ""},
    "unknown variable": {"ORACLE_CONFIRMATION": "6"},
    "unreachable rpc": {"ORACLE_RPC_URLS": '["http://127.0.0.1:9"]'},
}


#: Every command with the validation errors (where pydantic echoed inputs); every case with ``node status``.
PAIRS = sorted({(c, case) for c in NODE_COMMANDS for case in ("bad number next to the secrets",
                                                              "bad list next to the secrets")}
               | {(("node", "status"), case) for case in BROKEN})


@pytest.mark.parametrize("command, case", PAIRS, ids=lambda x: " ".join(x) if isinstance(x, tuple) else x)
def test_settings_errors_never_print_the_keys(command: tuple[str, ...], case: str, key: str, admin: str,
                                              tmp_path: Path) -> None:
    (tmp_path / "deployment.json").write_text("{}")
    env = {"ORACLE_PRIVATE_KEY": key, "ORACLE_ADMIN_KEY": admin, "ORACLE_DEPLOYMENT_FILE": "deployment.json",
           "ORACLE_API_PORT": "0", **BROKEN[case]}
    proc = run_oracle(*command, cwd=tmp_path, env=env, timeout=60)
    assert proc.returncode != 0
    assert proc.stderr.startswith("error: ")
    _assert_no_secret(proc.stdout + proc.stderr, key, admin)


@pytest.mark.parametrize("command", NODE_COMMANDS, ids=lambda c: " ".join(c))
def test_invalid_secrets_themselves_are_not_echoed(command: tuple[str, ...], tmp_path: Path) -> None:
    """A too-short admin key and a key with one wrong digit: the message names the variable, not the value."""
    short_admin = secrets.token_hex(7)  # 14 characters, refused (< 16)
    bad_key = "0x" + secrets.token_hex(31) + "zz"
    (tmp_path / "node.toml").write_text(f'admin_key = "{short_admin}"\noracle_address = "0x{"11" * 20}"\n')
    proc = run_oracle(*command, "--config", "node.toml", cwd=tmp_path, env={"ORACLE_PRIVATE_KEY": bad_key},
                      timeout=60)
    assert proc.returncode != 0
    assert "admin_key" in proc.stderr and "at least 16 characters" in proc.stderr
    _assert_no_secret(proc.stdout + proc.stderr, short_admin, bad_key)
    proc = run_oracle(*command, cwd=tmp_path, env={"ORACLE_PRIVATE_KEY": bad_key,
                                                   "ORACLE_ORACLE_ADDRESS": "0x" + "11" * 20}, timeout=60)
    assert "ORACLE_PRIVATE_KEY is not a private key" in proc.stderr
    _assert_no_secret(proc.stdout + proc.stderr, bad_key)


def test_key_commands_outside_the_settings_never_print_the_key(devnet: Devnet, tmp_path: Path) -> None:
    bad_key = "0x" + secrets.token_hex(31) + "zz"
    good_key = Account.create().key.to_0x_hex()
    (tmp_path / "deployment.json").write_text(json.dumps({"broken": True}))
    runs = [
        run_oracle("chain", "deploy", "--rpc", devnet.url, cwd=tmp_path, env={"ORACLE_PRIVATE_KEY": bad_key}),
        run_oracle("chain", "deploy", "--rpc", devnet.url, cwd=tmp_path, env={"ORACLE_PRIVATE_KEY": good_key}),
        run_oracle("chain", "fund", "0x" + "22" * 20, "--rpc", devnet.url, cwd=tmp_path,
                   env={"ORACLE_PRIVATE_KEY": good_key}),
        run_oracle("challenger", "run", "--rpc", devnet.url, "--oracle", "0x" + "11" * 20, cwd=tmp_path,
                   env={"ORACLE_CHALLENGER_PRIVATE_KEY": bad_key}),
        run_oracle("challenger", "run", "--rpc", "http://127.0.0.1:9", "--oracle", "0x" + "11" * 20,
                   cwd=tmp_path, env={"ORACLE_CHALLENGER_PRIVATE_KEY": good_key}),
    ]
    for proc in runs:
        assert proc.returncode != 0 and proc.stderr.startswith("error: "), proc.stderr
        _assert_no_secret(proc.stdout + proc.stderr, bad_key, good_key)
