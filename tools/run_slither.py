"""Static analysis of ``contracts/`` with slither, gated on the triage list in ``docs/slither.md``.

Run with ``make slither`` (or ``python tools/run_slither.py``); ``tests/invariants/test_slither.py`` runs it as
part of the test suite. Exit status: 0 when every High or Medium finding is listed in the triage table of
``docs/slither.md`` (documented false positive or accepted with a reason), 1 otherwise, 2 when the analysis
itself failed.

Why not the ``slither`` command line: the project's compiler is ``tools/solc``, a native-CLI shim over npm
solc that speaks only ``--standard-json`` (no ``--combined-json``, which crytic-compile's default solc
platform uses). This script builds the same standard-JSON input as ``tools/build_artifacts.py`` (remappings,
EVM version), asks only for ASTs (no optimizer, no bytecode: analysis needs neither, and it halves the
compile time), hands it to crytic-compile's standard-JSON platform with ``solc=tools/solc`` and runs every
slither detector. Test-only sources (any ``test`` directory) and ``node_modules`` are left out.

Findings are matched to triage entries by detector and location (``Contract.function`` or
``Contract.function.variable``), not by slither's finding id, which changes whenever a line moves.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from oracle.chain.toolchain import EVM_VERSION, solc_path  # noqa: E402

CONTRACTS = ROOT / "contracts"
TRIAGE_DOC = ROOT / "docs" / "slither.md"
REMAPPINGS = ["@openzeppelin/=node_modules/@openzeppelin/"]
GATED = ("High", "Medium")
_ROW = re.compile(r"^\|\s*`?([a-z0-9-]+)`?\s*\|\s*`([^`]+)`\s*\|\s*(\w[\w -]*?)\s*\|")


@dataclass(frozen=True)
class Finding:
    check: str
    impact: str
    confidence: str
    location: str
    description: str

    @property
    def key(self) -> tuple[str, str]:
        return self.check, self.location


@dataclass(frozen=True)
class TriageEntry:
    check: str
    location: str
    verdict: str  # "false positive", "accepted", "fixed"


def source_files() -> list[Path]:
    """Deployable sources: everything under contracts/ except test-only directories and hidden ones (ape copies
    its dependencies into contracts/.cache; they are analysed where our sources import them, not whole)."""
    return sorted(p for p in CONTRACTS.rglob("*.sol")
                  if not any(part == "test" or part.startswith(".") for part in p.relative_to(CONTRACTS).parts))


def standard_json() -> dict[str, Any]:
    return {
        "language": "Solidity",
        "sources": {str(p.relative_to(ROOT)): {"content": p.read_text()} for p in source_files()},
        "settings": {
            "evmVersion": EVM_VERSION,
            "remappings": REMAPPINGS,
            "optimizer": {"enabled": False},
            "outputSelection": {"*": {"": ["ast"]}},
        },
    }


def load_triage(path: Path = TRIAGE_DOC) -> dict[tuple[str, str], TriageEntry]:
    """Rows of the triage table: ``| detector | `Location` | verdict | reason |``."""
    entries: dict[tuple[str, str], TriageEntry] = {}
    if not path.exists():
        return entries
    for line in path.read_text().splitlines():
        m = _ROW.match(line.strip())
        if m and m.group(1) != "detector":
            entries[(m.group(1), m.group(2))] = TriageEntry(m.group(1), m.group(2), m.group(3).lower())
    return entries


def _location(element: dict[str, Any]) -> str:
    """``Contract.function`` / ``Contract.function.variable`` / ``Contract.variable`` / ``Contract``."""
    fields = element.get("type_specific_fields", {})
    kind, name = element.get("type"), str(element.get("name", ""))
    parent = fields.get("parent", {})
    if kind == "function":
        return f"{parent.get('name', '?')}.{name.split('(')[0]}"
    if kind == "node":
        return _location(parent) if parent else name
    if kind == "variable" and parent.get("type") == "function":
        return f"{_location(parent)}.{name}"
    if kind in ("variable", "event", "struct", "enum", "modifier", "custom_error") and parent:
        return f"{parent.get('name', '?')}.{name}"
    return name


def _only_outside(result: dict[str, Any]) -> bool:
    """True when every element of a finding lies in node_modules or test-only code."""
    files = [e["source_mapping"].get("filename_relative", "") for e in result.get("elements", [])
             if e.get("source_mapping")]
    return bool(files) and all(f.startswith("node_modules/") or "/test/" in f for f in files)


def to_finding(result: dict[str, Any]) -> Finding:
    elements = result.get("elements") or [{}]
    return Finding(result["check"], result["impact"], result["confidence"], _location(elements[0]),
                   result["description"].strip())


def analyse() -> list[Finding]:
    """Compiles with the shim and runs every slither detector; returns the findings outside test code."""
    from crytic_compile import CryticCompile
    from crytic_compile.platform.solc_standard_json import SolcStandardJson
    from slither import Slither
    from slither.detectors import all_detectors
    from slither.detectors.abstract_detector import AbstractDetector

    compilation = CryticCompile(SolcStandardJson(standard_json()), solc=str(solc_path()),
                                solc_working_dir=str(ROOT), solc_disable_warnings=True)
    # No slither-side filtering: its filter_paths drops a finding if ANY element lies in a filtered path
    # (a reentrancy in our code that names OpenZeppelin's guard would vanish), and inline
    # `slither-disable` comments or a stray slither.db.json would bypass the triage list. We keep a finding
    # unless ALL its elements are in dependencies or test code.
    with tempfile.TemporaryDirectory() as tmp:
        slither = Slither(compilation, triage_database=str(Path(tmp) / "none.json"))
        slither._show_ignored_findings = True  # noqa: SLF001 - the triage list is the only way to silence
        for _, detector in inspect.getmembers(all_detectors, inspect.isclass):
            if issubclass(detector, AbstractDetector):
                slither.register_detector(detector)
        results = [r for batch in slither.run_detectors() for r in batch]
    findings = [to_finding(r) for r in results if not _only_outside(r)]
    return sorted(findings, key=lambda f: (["High", "Medium", "Low", "Informational", "Optimization"].index(
        f.impact), f.check, f.location))


def evaluate(findings: list[Finding], triage: dict[tuple[str, str], TriageEntry]
             ) -> tuple[list[Finding], list[Finding], list[TriageEntry]]:
    """Splits gated findings into (untriaged, triaged) and returns triage entries that matched nothing."""
    gated = [f for f in findings if f.impact in GATED]
    untriaged = [f for f in gated if f.key not in triage]
    triaged = [f for f in gated if f.key in triage]
    seen = {f.key for f in findings}
    stale = [e for e in triage.values() if (e.check, e.location) not in seen and e.verdict != "fixed"]
    return untriaged, triaged, stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--all", action="store_true", help="print Low/Informational/Optimization findings too")
    parser.add_argument("--json", type=Path, help="also write every finding to this JSON file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("CryticCompile").setLevel(logging.ERROR)  # solc's transient-storage notice on OZ

    started = time.monotonic()
    try:
        findings = analyse()
    except Exception as exc:  # noqa: BLE001 - any failure of the toolchain is reported, not triaged
        print(f"slither failed: {exc}\nrun `make setup` (npm + venv) first", file=sys.stderr)
        return 2
    triage = load_triage()
    untriaged, triaged, stale = evaluate(findings, triage)

    print(f"slither over {len(source_files())} files in contracts/ (tests and node_modules excluded): "
          f"{len(findings)} findings in {time.monotonic() - started:.0f}s")
    for f in findings:
        if f.impact in GATED:
            verdict = triage[f.key].verdict if f.key in triage else "UNTRIAGED"
            print(f"\n[{f.impact}/{f.confidence}] {f.check} at {f.location}  ({verdict})\n  "
                  + f.description.replace("\n", "\n  "))
        elif args.all:
            print(f"[{f.impact}] {f.check} at {f.location}: {f.description.splitlines()[0]}")
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.impact] = counts.get(f.impact, 0) + 1
    print("\nby impact: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    for e in stale:
        print(f"note: triage entry {e.check} at {e.location} matches no finding any more; "
              "mark it fixed or remove it from docs/slither.md")
    if args.json:
        args.json.write_text(json.dumps([f.__dict__ for f in findings], indent=1) + "\n")
    if untriaged:
        print(f"\nFAIL: {len(untriaged)} High/Medium finding(s) not triaged in docs/slither.md:")
        for f in untriaged:
            print(f"  | {f.check} | `{f.location}` | ? | ... |")
        return 1
    print(f"OK: {len(triaged)} High/Medium finding(s), all triaged in docs/slither.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
