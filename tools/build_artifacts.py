"""Compile ``contracts/`` into ABI + bytecode artifacts shipped inside the ``oracle`` package.

Run with ``make build`` (or ``python tools/build_artifacts.py``). Operators who install the package
never compile: ``oracle.chain.artifacts`` loads the JSON written here. ``--check`` exits non-zero when
the shipped artifacts are stale against the sources (a test runs it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from oracle.chain.toolchain import EVM_VERSION, SOLC_VERSION, solc_path  # noqa: E402

CONTRACTS = ROOT / "contracts"
OUT = ROOT / "oracle" / "artifacts"
#: Test contracts (any source under a `test/` folder) are compiled here, outside the package.
TEST_OUT = ROOT / "tests" / "artifacts"
SETTINGS = {
    "evmVersion": EVM_VERSION,
    "optimizer": {"enabled": True, "runs": 2_000},
    "remappings": ["@openzeppelin/=node_modules/@openzeppelin/"],
    "outputSelection": {"*": {"*": ["abi", "devdoc", "userdoc", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
}


def source_files() -> list[Path]:
    # Hidden folders (ape's dependency copies in contracts/.cache) are not the project's sources.
    return sorted(
        p for p in CONTRACTS.rglob("*.sol") if not any(part.startswith(".") for part in p.relative_to(CONTRACTS).parts)
    )


def sources_digest() -> str:
    """Digest of every contract source plus compiler version and settings: what the artifacts depend on."""
    h = hashlib.sha256()
    h.update(SOLC_VERSION.encode())
    h.update(json.dumps(SETTINGS, sort_keys=True).encode())
    oz = ROOT / "node_modules" / "@openzeppelin" / "contracts" / "package.json"
    if oz.exists():
        h.update(json.loads(oz.read_text())["version"].encode())
    for p in source_files():
        h.update(str(p.relative_to(ROOT)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def compile_all() -> dict[str, dict[str, object]]:
    sources = {str(p.relative_to(ROOT)): {"content": p.read_text()} for p in source_files()}
    std_input = {"language": "Solidity", "sources": sources, "settings": SETTINGS}
    proc = subprocess.run(
        [str(solc_path()), "--standard-json", "--base-path", str(ROOT), "--allow-paths", str(ROOT)],
        input=json.dumps(std_input),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        sys.exit(f"solc failed: {proc.stderr}")
    output = json.loads(proc.stdout)
    errors = [e for e in output.get("errors", []) if e["severity"] == "error"]
    for e in output.get("errors", []):
        print(e["formattedMessage"], file=sys.stderr)
    if errors:
        sys.exit(f"compilation failed with {len(errors)} error(s)")
    artifacts: dict[str, dict[str, object]] = {}
    for src, contracts in output["contracts"].items():
        if not src.startswith("contracts/"):
            continue
        for name, data in contracts.items():
            bytecode = data["evm"]["bytecode"]["object"]
            if name in artifacts:
                sys.exit(f"duplicate contract name {name} in {src}")
            artifacts[name] = {
                "contractName": name,
                "sourceName": src,
                "abi": data["abi"],
                "userdoc": data["userdoc"],
                "devdoc": data["devdoc"],
                "bytecode": "0x" + bytecode,
                "deployedBytecode": "0x" + data["evm"]["deployedBytecode"]["object"],
            }
    return artifacts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the shipped artifacts are stale")
    args = parser.parse_args()
    digest = sources_digest()
    if args.check:
        for out in (OUT, TEST_OUT):
            manifest = out / "manifest.json"
            if not manifest.exists():
                print(f"artifacts missing in {out.relative_to(ROOT)}: run `make build`", file=sys.stderr)
                return 1
            if json.loads(manifest.read_text()).get("sourcesDigest") != digest:
                print("artifacts are stale against contracts/: run `make build` and commit", file=sys.stderr)
                return 1
        print("artifacts up to date")
        return 0
    artifacts = compile_all()
    test_names = {n for n, a in artifacts.items() if is_test_source(str(a["sourceName"]))}
    for out, names in ((OUT, sorted(set(artifacts) - test_names)), (TEST_OUT, sorted(test_names))):
        out.mkdir(parents=True, exist_ok=True)
        for old in out.glob("*.json"):
            old.unlink()
        for name in names:
            (out / f"{name}.json").write_text(json.dumps(artifacts[name], indent=1, sort_keys=True) + "\n")
        (out / "manifest.json").write_text(
            json.dumps(
                {"solcVersion": SOLC_VERSION, "evmVersion": EVM_VERSION, "sourcesDigest": digest,
                 "contracts": names},
                indent=1,
            )
            + "\n"
        )
        print(f"wrote {len(names)} artifacts to {out.relative_to(ROOT)}")
    return 0


def is_test_source(source_name: str) -> bool:
    """Sources under a `test/` folder are test contracts: never shipped in the package."""
    return "test" in Path(source_name).parts[:-1]


if __name__ == "__main__":
    raise SystemExit(main())
