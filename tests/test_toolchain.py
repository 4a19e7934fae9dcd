"""The offline toolchain: the solc shim, shipped artifacts in step with contracts/, ape compile and deploy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from web3 import Web3

from oracle.chain import artifacts
from oracle.chain.devnet import Devnet
from oracle.chain.toolchain import SOLC_VERSION, anvil_path, repo_root, solc_path

ROOT = repo_root()


def ape_env() -> dict[str, str]:
    """The same environment the Makefile exports: tool config inside the repository, never in $HOME."""
    solcx = ROOT / "var" / "solcx"
    solcx.mkdir(parents=True, exist_ok=True)
    link = solcx / f"solc-v{SOLC_VERSION}"
    if not link.exists():
        link.symlink_to(ROOT / "tools" / "solc")
    env = dict(os.environ)
    env["SOLCX_BINARY_PATH"] = str(solcx)
    env["APE_DATA_FOLDER"] = str(ROOT / "var" / "ape")
    env["PATH"] = f"{anvil_path().parent}:{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return env


def test_solc_shim_speaks_native_version() -> None:
    out = subprocess.run([str(solc_path()), "--version"], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[1].startswith(f"Version: {SOLC_VERSION}+commit.")


def test_solc_shim_standard_json_with_paths(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "L.sol").write_text("// SPDX-License-Identifier: MIT\npragma solidity ^0.8.0;\n"
                                           "library L { function one() internal pure returns (uint) { return 1; } }\n")
    src = ('// SPDX-License-Identifier: MIT\npragma solidity ^0.8.0;\nimport {L} from "lib/L.sol";\n'
           "contract C { function f() external pure returns (uint) { return L.one(); } }\n")
    std = {"language": "Solidity", "sources": {"C.sol": {"content": src}},
           "settings": {"evmVersion": "prague", "outputSelection": {"*": {"*": ["abi"]}}}}
    proc = subprocess.run(
        [str(solc_path()), "--standard-json", "--base-path", str(tmp_path), "--include-path", str(tmp_path / "lib"),
         "--allow-paths", str(tmp_path)],
        input=json.dumps(std), capture_output=True, text=True, check=True,
    )
    out = json.loads(proc.stdout)  # the whole stdout is JSON: no stray line like solcjs prints
    assert not [e for e in out.get("errors", []) if e["severity"] == "error"]
    assert out["contracts"]["C.sol"]["C"]["abi"][0]["name"] == "f"


def test_solc_shim_rejects_unsupported_modes() -> None:
    proc = subprocess.run([str(solc_path()), "--bin", "x.sol"], capture_output=True, text=True)
    assert proc.returncode != 0 and "unsupported option" in proc.stderr


def test_shipped_artifacts_are_not_stale() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "build_artifacts.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr + " (run `make build` and commit oracle/artifacts)"


def test_shipped_artifacts_carry_natspec_and_no_test_contracts() -> None:
    shipped = json.loads((ROOT / "oracle" / "artifacts" / "manifest.json").read_text())["contracts"]
    assert "InferenceOracle" in shipped and not {"RevertingConsumer", "GasMeter", "VerifierChunkWriter"} & set(shipped)
    oracle_art = json.loads((ROOT / "oracle" / "artifacts" / "InferenceOracle.json").read_text())
    assert oracle_art["userdoc"]["methods"]  # NatSpec @notice for clients and explorers
    assert "details" in json.dumps(oracle_art["devdoc"])
    for path in (ROOT / "oracle" / "artifacts").glob("*.json"):
        if path.name != "manifest.json":
            assert "/test/" not in json.loads(path.read_text())["sourceName"], path.name


def test_artifacts_load_and_missing_one_says_how_to_fix() -> None:
    art = artifacts.load("InferenceOracle")
    assert art.bytecode.startswith("0x6") and any(i.get("name") == "requestInference" for i in art.abi)
    with pytest.raises(Exception, match="make build"):
        artifacts.load("NoSuchContract")


@pytest.mark.slow
def test_ape_compile_and_run_deploy_on_foundry_and_on_a_named_network(tmp_path: Path) -> None:
    env = ape_env()
    # Plain `tools/ape compile` works with an empty HOME and writes nothing there (no solc download, no ~/.ape).
    home = tmp_path / "home"
    home.mkdir()
    compiled = subprocess.run([str(ROOT / "tools" / "ape"), "compile", "--force"], cwd=tmp_path,
                              env={**env, "HOME": str(home)}, capture_output=True, text=True, timeout=900)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    # ape reports SUCCESS even when sources silently dropped out of its listing: check it built every contract
    # that the artifact build (which reads contracts/ itself) knows, in every folder.
    built = json.loads((ROOT / ".build" / "__local__.json").read_text())["contractTypes"]
    expected = {name for out in (ROOT / "oracle" / "artifacts", ROOT / "tests" / "artifacts")
                for name in json.loads((out / "manifest.json").read_text())["contracts"]}
    assert expected - set(built) == set(), f"ape did not compile {sorted(expected - set(built))}"
    assert list(home.iterdir()) == []

    # 1. ape-foundry starts its own anvil.
    local = subprocess.run(["ape", "run", "deploy", "--network", "ethereum:local:foundry"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=600)
    assert local.returncode == 0, local.stdout + local.stderr
    assert "InferenceOracle' deployed" in local.stdout + local.stderr

    # 2. Any network named on the command line: here a separate anvil, checked independently.
    with Devnet() as dev:
        proc = subprocess.run(["ape", "run", "deploy", "--network", dev.url, "--window", "120"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        text = proc.stdout
        deployment = json.loads(text[text.index("{"): text.rindex("}") + 1])
        w3 = Web3(Web3.HTTPProvider(dev.url))
        oracle = w3.eth.contract(address=deployment["oracle"], abi=artifacts.load("InferenceOracle").abi)
        assert oracle.functions.CHALLENGE_WINDOW().call() == 120
        assert oracle.functions.VERIFIER().call() == deployment["verifier"]


def test_abi_reference_for_non_python_clients_is_current() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "abi_reference.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    text = (ROOT / "docs" / "abi-reference.md").read_text()
    # The selector of a well-known error, computed independently of the generator.
    assert f"`0x{Web3.keccak(text='ResultIsCorrect(uint256)')[:4].hex()}` | `ResultIsCorrect(uint256)`" in text
    assert "| 7 | `FraudProven` |" in text
