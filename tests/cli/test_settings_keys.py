"""Unknown configuration keys are refused with the nearest valid name, in the file and in ``ORACLE_*`` variables
(a typo like ``rpc_url`` used to be ignored silently, and the node ran against the default endpoint)."""

from __future__ import annotations

from pathlib import Path

import pytest

from oracle.errors import ConfigError
from oracle.settings import NodeSettings

from .helpers import assert_one_line_error, run_oracle

ADDRESS = "0x" + "11" * 20


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [k for k in os.environ if k.startswith("ORACLE_")]:
        monkeypatch.delenv(name)


@pytest.mark.parametrize("suffix, text", [
    (".toml", f'rpc_url = "http://127.0.0.1:8545"\noracle_address = "{ADDRESS}"\n'),
    (".yaml", f'rpc_url: "http://127.0.0.1:8545"\noracle_address: "{ADDRESS}"\n'),
    (".json", f'{{"rpc_url": "http://127.0.0.1:8545", "oracle_address": "{ADDRESS}"}}'),
])
def test_a_typo_in_the_file_is_refused_with_the_nearest_key(tmp_path: Path, suffix: str, text: str) -> None:
    path = tmp_path / f"node{suffix}"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"unknown key 'rpc_url': did you mean 'rpc_urls'\?"):
        NodeSettings.load(path)


def test_every_unknown_file_key_is_listed_and_one_without_a_neighbour_has_no_guess(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text(f'oracle_address = "{ADDRESS}"\nconfirmation = 6\nzzzz = 1\n')
    with pytest.raises(ConfigError) as info:
        NodeSettings.load(path)
    assert "unknown key 'confirmation': did you mean 'confirmations'?" in str(info.value)
    assert "unknown key 'zzzz'" in str(info.value) and "'zzzz': did you mean" not in str(info.value)


def test_a_typo_in_the_environment_is_refused_with_the_nearest_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORACLE_ORACLE_ADDRESS", ADDRESS)
    monkeypatch.setenv("ORACLE_RPC_URLZ", '["http://127.0.0.1:8545"]')
    with pytest.raises(ConfigError, match=r"unknown setting ORACLE_RPC_URLZ: did you mean ORACLE_RPC_URLS\?"):
        NodeSettings.load()
    monkeypatch.delenv("ORACLE_RPC_URLZ")
    monkeypatch.setenv("ORACLE_MAXBOND_WEI", "1")
    with pytest.raises(ConfigError, match=r"did you mean ORACLE_MAX_BOND_WEI\?"):
        NodeSettings.load()


def test_known_variables_that_are_not_settings_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ORACLE_RPC_URL", "ORACLE_CHALLENGER_PRIVATE_KEY", "ORACLE_KEYSTORE_PASSWORD", "ORACLE_DEBUG",
                 "ORACLE_SOAK_SEED", "ORACLE_MY_PASSWORD"):
        monkeypatch.setenv(name, "x")
    monkeypatch.setenv("ORACLE_KEYSTORE_PASSWORD_ENV", "ORACLE_MY_PASSWORD")
    monkeypatch.setenv("ORACLE_ORACLE_ADDRESS", ADDRESS)
    settings = NodeSettings.load()
    assert settings.keystore_password_env == "ORACLE_MY_PASSWORD"


def test_the_cli_reports_the_typo_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "node.toml").write_text(f'rpc_url = "http://127.0.0.1:8545"\noracle_address = "{ADDRESS}"\n')
    proc = run_oracle("node", "status", "--config", "node.toml", cwd=tmp_path)
    assert_one_line_error(proc, "unknown key 'rpc_url': did you mean 'rpc_urls'?")
