"""Seeded bugs: show that the stateful fuzzer finds them, and how fast.

Each mutant is a one-line change to a contract, applied IN MEMORY to the sources handed to the compiler
(``contracts/`` is never written). The patched oracle is compiled with the project's settings into a temporary
artifact, and the fuzzer runs against it (``ORACLE_FUZZ_ORACLE_ARTIFACT``) in a child pytest. Reported per
mutant: whether it was found, after how many steps and seconds (before shrinking), the violated check, and the
shrunk failing sequence (in the saved log).

    .venv/bin/python -m tests.invariants.mutants                  # all mutants, up to 10,000 steps each
    .venv/bin/python -m tests.invariants.mutants double-refund --steps 20000

Not part of the test suite (each run takes minutes); the figures go into the assurance notes.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str  # path under contracts/
    old: str  # exact source text to replace (must occur once)
    new: str
    bug: str  # what the mutation breaks, in protocol terms


MUTANTS = [
    Mutant(
        "double-refund", "contracts/InferenceOracle.sol",
        "        if (result.flags & FLAG_REFUNDED != 0) revert AlreadyRefunded(requestId);\n", "",
        "an expired request can be refunded twice: its fee is paid out twice (§8.3), the oracle goes insolvent",
    ),
    Mutant(
        "finalize-off-by-one", "contracts/InferenceOracle.sol",
        "        if (block.timestamp < deadline || result.flags & FLAG_DISPUTED != 0) {",
        "        if (block.timestamp <= deadline || result.flags & FLAG_DISPUTED != 0) {",
        "finalize at exactly submittedAt + window reverts: challenge and finalize bounds leave a one-second gap",
    ),
    Mutant(
        "unstake-locked-stake", "contracts/OperatorStaking.sol",
        "        uint256 free = s.staked - s.locked;\n        // INVARIANT",
        "        uint256 free = s.staked;\n        // INVARIANT",
        "requestUnstake ignores locked bonds: an operator can pull the stake backing an open result (§8.5)",
    ),
    Mutant(
        "slash-keeps-stake", "contracts/OperatorStaking.sol",
        "        s.staked -= uint80(bond);\n        emit Slashed",
        "        emit Slashed",
        "a slash unlocks the bond but leaves it in the operator's stake: the burn and reward are paid twice "
        "over (§8.1)",
    ),
    Mutant(
        "assignment-ignored", "contracts/InferenceOracle.sol",
        "        if (_reserved(request, assignee)) revert NotAssigned",
        "        if (false) revert NotAssigned",
        "anyone answers inside the exclusive period: a copier front-running the assignee takes the fee",
    ),
    Mutant(
        "assign-ignores-bond", "contracts/InferenceOracle.sol",
        "            if (free >= bond && free > (seed >> 128) % cap) return op;",
        "            if (free > (seed >> 128) % cap) return op;",
        "a request is assigned to an operator that cannot lock its bond: nobody answers it until the period ends",
    ),
    Mutant(
        "token-refund-in-eth", "contracts/InferenceOracle.sol",
        "        if (_modelCore[modelId].flags & MODEL_TOKEN_FEE != 0) _tokenCredits",
        "        if (false) _tokenCredits",
        "a refunded token fee is credited in ETH: ETH credits exceed the ETH held, the token stays stuck (§8.1 "
        "per asset)",
    ),
]


def _build_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("build_artifacts", ROOT / "tools" / "build_artifacts.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compile_mutant(mutant: Mutant, out_dir: Path) -> Path:
    """Compiles InferenceOracle with ``mutant`` applied (in memory) into ``out_dir``; returns the artifact."""
    build = _build_module()
    sources = {str(p.relative_to(ROOT)): {"content": p.read_text()} for p in build.source_files()}
    text = sources[mutant.file]["content"]
    if text.count(mutant.old) != 1:
        raise SystemExit(f"mutant {mutant.name}: the text to replace occurs {text.count(mutant.old)} times in "
                         f"{mutant.file} (the contract changed?); update tests/invariants/mutants.py")
    sources[mutant.file] = {"content": text.replace(mutant.old, mutant.new)}
    settings = dict(build.SETTINGS)
    settings["outputSelection"] = {"contracts/InferenceOracle.sol": {"InferenceOracle": ["abi", "evm.bytecode.object"]}}
    proc = subprocess.run(
        [str(build.solc_path()), "--standard-json", "--base-path", str(ROOT), "--allow-paths", str(ROOT)],
        input=json.dumps({"language": "Solidity", "sources": sources, "settings": settings}),
        capture_output=True, text=True, check=True,
    )
    output = json.loads(proc.stdout)
    errors = [e["formattedMessage"] for e in output.get("errors", []) if e["severity"] == "error"]
    if errors:
        raise SystemExit(f"mutant {mutant.name} does not compile:\n" + "\n".join(errors))
    contract = output["contracts"]["contracts/InferenceOracle.sol"]["InferenceOracle"]
    path = out_dir / f"InferenceOracle-{mutant.name}.json"
    path.write_text(json.dumps({"abi": contract["abi"], "bytecode": "0x" + contract["evm"]["bytecode"]["object"]}))
    return path


def run_mutant(mutant: Mutant, steps: int, log_dir: Path) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        artifact = compile_mutant(mutant, Path(tmp))
        compiled = time.monotonic() - started
        failure = Path(tmp) / "failure.json"
        env = {**os.environ, "ORACLE_FUZZ_ORACLE_ARTIFACT": str(artifact), "ORACLE_FUZZ_STEPS": str(steps),
               "ORACLE_FUZZ_FAILURE_OUT": str(failure)}
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
             "tests/invariants/test_oracle_invariants.py"],
            cwd=ROOT, env=env, capture_output=True, text=True, check=False,
        )
        wall = time.monotonic() - started
        log = log_dir / f"mutant-{mutant.name}.log"
        log.write_text(proc.stdout + proc.stderr)
        found = json.loads(failure.read_text()) if failure.exists() else None
    return {"mutant": mutant.name, "bug": mutant.bug, "found": proc.returncode != 0 and found is not None,
            "steps_to_find": found and found["steps"], "seconds_to_find": found and found["seconds"],
            "wall_seconds_incl_shrinking": round(wall, 1), "compile_seconds": round(compiled, 1),
            "error": found and found["error"], "log": str(log)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="mutants to run (default: all)")
    parser.add_argument("--steps", type=int, default=10_000, help="fuzz budget per mutant (default 10,000)")
    parser.add_argument("--log-dir", type=Path, default=Path(tempfile.gettempdir()) / "oracle-mutants")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.names or m.name in args.names]
    args.log_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for mutant in chosen:
        print(f"mutant {mutant.name}: {mutant.bug}", flush=True)
        r = run_mutant(mutant, args.steps, args.log_dir)
        results.append(r)
        if r["found"]:
            print(f"  FOUND after {r['steps_to_find']} steps / {r['seconds_to_find']}s "
                  f"({r['wall_seconds_incl_shrinking']}s with shrinking)\n  {r['error']}\n  log: {r['log']}",
                  flush=True)
        else:
            print(f"  NOT FOUND in {args.steps} steps ({r['wall_seconds_incl_shrinking']}s); log: {r['log']}",
                  flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0 if all(r["found"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
