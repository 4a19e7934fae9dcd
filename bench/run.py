"""Run every benchmark and write ``bench/results.json`` (flat: metric name -> number) plus a table.

    make bench            # or: python -m bench.run [--only gas,challenge]

Gas figures are ``gasUsed`` of real receipts on a fresh anvil (cancun); timings are measured in this
process on this machine. Nothing here asserts: the table compares each figure with its target.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

from web3 import Web3

from oracle.chain.devnet import Devnet

RESULTS = Path(__file__).with_name("results.json")

#: metric -> (comparison, target). "<=" means lower is better.
TARGETS: dict[str, tuple[str, float]] = {
    "gas.request": ("<=", 80_000),
    "gas.submit": ("<=", 80_000),
    "gas.finalize": ("<=", 60_000),
    "gas.lifecycle": ("<=", 200_000),
    "gas.lifecycle_storing_consumer": ("<=", 180_000),
    "worker.overhead_ms": ("<=", 5),
    "worker.throughput_rps": (">=", 100),
    "worker.latency_ms_p50": ("<=", 150),
    "fraudproof.gas_per_mac": ("<=", 30),
    "fraudproof.max_macs_30m": (">=", 500_000),
    "runtime.ort_vs_reference_speedup": (">=", 10),
}

#: name -> (module, needs a chain)
SUITES: dict[str, tuple[str, bool]] = {
    "gas": ("bench.gas_bench", True),
    "challenge": ("bench.challenge_bench", True),
    "verifier": ("bench.verifier_bench", True),
    "profile": ("bench.profile_bench", False),
    "worker": ("bench.worker_bench", False),
}


def run_suite(name: str) -> dict[str, float]:
    module_name, needs_chain = SUITES[name]
    module = importlib.import_module(module_name)
    if needs_chain:
        with Devnet() as dev:
            return dict(module.run(Web3(Web3.HTTPProvider(dev.url, request_kwargs={"timeout": 120}))))
    return dict(module.run())


def verdict(metric: str, value: float) -> str:
    if metric not in TARGETS:
        return ""
    op, target = TARGETS[metric]
    ok = value <= target if op == "<=" else value >= target
    return f"{'met' if ok else 'MISSED'} ({op} {target:,.0f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="comma-separated suites: " + ",".join(SUITES))
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(SUITES)
    results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for name in names:
        started = time.perf_counter()
        print(f"running {name} ...", file=sys.stderr, flush=True)
        results.update(run_suite(name))
        print(f"  {name} took {time.perf_counter() - started:.1f}s", file=sys.stderr)
    results = {k: results[k] for k in sorted(results)}
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{'metric':42s} {'value':>14s}  target")
    for k, v in results.items():
        print(f"{k:42s} {v:>14,.2f}  {verdict(k, v)}")
    print(f"\nmachine: {platform.machine()} {platform.processor() or ''} python {platform.python_version()}; "
          f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
