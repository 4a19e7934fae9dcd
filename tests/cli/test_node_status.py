"""`oracle node status` against a real deployment: the operator's stake and where it stands in assignment."""

from __future__ import annotations

import json
from pathlib import Path

from web3 import Web3

from oracle.chain.client import OracleClient
from oracle.chain.deploy import DeployParams, deploy_system

from .helpers import DEV_ACCOUNT_0, DEV_KEY_1, run_oracle

ETH = 10**18


def _status(w3: Web3, accounts: list[str], tmp_path: Path, stake: int) -> str:
    dep = deploy_system(w3, accounts[0], DeployParams(challenge_window=60, request_timeout=300,
                                                      unbonding_period=3600, max_assignment_weight=2 * ETH))
    dep.save(tmp_path / "deployment.json")
    if stake:
        OracleClient(w3, dep.oracle).stake(accounts[1], stake)  # DEV_KEY_1's account
    proc = run_oracle("node", "status", cwd=tmp_path,
                      env={"ORACLE_RPC_URLS": json.dumps([w3.provider.endpoint_uri]),  # type: ignore[attr-defined]
                           "ORACLE_DEPLOYMENT_FILE": str(tmp_path / "deployment.json"),
                           "ORACLE_PRIVATE_KEY": DEV_KEY_1})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_status_shows_the_assignment_weight_and_its_cap(w3: Web3, accounts: list[str], tmp_path: Path) -> None:
    out = _status(w3, accounts, tmp_path, 3 * ETH)
    assert "3.000000 ETH" in out  # the stake
    line = next(x for x in out.splitlines() if "assignment weight" in x)
    assert "2.000000 ETH" in line and "capped" in line, out


def test_status_says_when_the_stake_is_below_the_listing_floor(w3: Web3, accounts: list[str],
                                                                tmp_path: Path) -> None:
    out = _status(w3, accounts, tmp_path, ETH // 20)
    line = next(x for x in out.splitlines() if "assignment" in x)
    assert "not listed" in line and "0.100000 ETH" in line, out


def test_chain_deploy_takes_the_assignment_parameters(w3: Web3, tmp_path: Path) -> None:
    proc = run_oracle("chain", "deploy", "--rpc", w3.provider.endpoint_uri,  # type: ignore[attr-defined]
                      "--unlocked", DEV_ACCOUNT_0, "--exclusive-period", "12", "--min-operator-stake", str(ETH // 2),
                      "--max-assignment-weight", str(5 * ETH), "--no-dispute-game", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    client = OracleClient(w3, json.loads((tmp_path / "deployment.json").read_text())["oracle"])
    assert client.parameters()["exclusive_period"] == 12
    assert (client.min_operator_stake(), client.max_assignment_weight()) == (ETH // 2, 5 * ETH)
    bad = run_oracle("chain", "deploy", "--rpc", w3.provider.endpoint_uri,  # type: ignore[attr-defined]
                     "--unlocked", DEV_ACCOUNT_0, "--max-assignment-weight", "1", cwd=tmp_path)
    assert bad.returncode != 0 and "InvalidParameters" in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
