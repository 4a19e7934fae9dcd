"""Run every benchmark and write ``bench/results.json`` (flat: metric name -> number) plus a table.

    make bench            # or: python -m bench.run [--only gas,challenge]

Gas figures are ``gasUsed`` of real receipts on a fresh anvil (prague); timings are measured in this
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
REPORT = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
NOTES_MARKER = "<!-- notes: everything below is kept when the table is regenerated -->"

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
    "fraudproof.bound_over_measured_min": (">=", 1.0),
    "fraudproof.bound_over_measured_max": ("<=", 1.5),
    "fraudproof.max_macs_per_tx_worst": (">=", 1_000_000),
    "fraudproof.gas_per_mac_worst": ("<=", 15),
    "runtime.ort_vs_reference_speedup": (">=", 10),
    "worker.exact_answer_overhead": ("<=", 2),
    "models.cnn.challenge_gas_worst": ("<=", 16_777_216),
    "models.cnn.int_accuracy_drop_pp": ("<=", 1),
    "models.transformer.proof_gas": ("<=", 16_777_216),
    "models.transformer.int_accuracy_drop_pp": ("<=", 1),
    "dispute.largest_model_macs": (">=", 50_000_000),
    "dispute.largest_op_macs": (">=", 8_000_000),
    "dispute.max_tx_gas": ("<=", 16_777_216),
    "dispute.wall_s": ("<=", 60),
    "ops.bound_over_measured_min": (">=", 1.0),
    "ops.bound_over_measured_max": ("<=", 1.5),
    "dispute.daemons.max_tx_gas": ("<=", 16_777_216),
    "registration.max_tx_gas": ("<=", 16_777_216),
    "soak.faults_2pct.driver_finalized_share": ("<=", 0.01),
    "soak.faults_5pct.driver_finalized_share": ("<=", 0.01),
    "soak.faults_2pct.violations": ("<=", 0),
    "soak.faults_5pct.violations": ("<=", 0),
}

#: name -> (module, needs a chain)
SUITES: dict[str, tuple[str, bool]] = {
    "gas": ("bench.gas_bench", True),
    "consumer": ("bench.consumer_bench", True),
    "challenge": ("bench.challenge_bench", True),
    "verifier": ("bench.verifier_bench", True),
    "trees": ("bench.trees_bench", True),
    "profile": ("bench.profile_bench", False),
    "worker": ("bench.worker_bench", False),
    "binding": ("bench.binding_bench", False),
    "slow": ("bench.slow_model_bench", False),
    "cnn": ("bench.cnn_bench", True),
    "transformer": ("bench.transformer_bench", True),
    "dispute": ("bench.dispute_bench", True),
    "ops": ("bench.transformer_ops_bench", True),
    "dispute_daemons": ("bench.dispute_daemons_bench", True),
    "registration": ("bench.registration_bench", True),
    "soak": ("bench.soak", False),  # starts its own anvil, workers and challenger
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
    return f"{'met' if ok else 'MISSED'} ({op} {_shown_target(target)})"


def _shown_target(target: float) -> str:
    return f"{target:,.0f}" if target >= 100 or target == int(target) else f"{target:g}"


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
    machine = describe_machine()
    print(f"\nmachine: {machine}; wrote {RESULTS} and {REPORT.name}")
    write_report(results, machine)
    return 0


def describe_machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    system = f"{platform.system()} {platform.release()}"
    return f"{cpu}, {os.cpu_count()} cores, {system}, Python {platform.python_version()}"


def write_report(results: dict[str, Any], machine: str) -> None:
    """BENCHMARKS.md: the table against targets, the machine, how to reproduce; hand-written notes kept."""
    notes = ""
    if REPORT.exists() and NOTES_MARKER in REPORT.read_text():
        notes = REPORT.read_text().split(NOTES_MARKER, 1)[1]
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python -m bench.run`), which also writes `bench/results.json`. Gas is the",
        "`gasUsed` of real receipts on a fresh anvil (prague, the npm solc 0.8.37); times are wall-clock on the",
        "machine below. Benchmarks never assert: a missed target is reported, not hidden.",
        "",
        f"Machine: {machine}. Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "| metric | value | target | |",
        "|---|---:|---|---|",
    ]
    for k, v in results.items():
        target = ""
        status = ""
        if k in TARGETS:
            op, t = TARGETS[k]
            target = f"{op} {_shown_target(t)}"
            status = "met" if (v <= t if op == "<=" else v >= t) else "**missed**"
        shown = f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.3g}"
        lines.append(f"| `{k}` | {shown} | {target} | {status} |")
    lines += ["", "Reproduce: `make bench` (all suites) or `python -m bench.run --only gas,challenge` (a subset).",
              "", NOTES_MARKER]
    REPORT.write_text("\n".join(lines) + (notes if notes else "\n"))


if __name__ == "__main__":
    raise SystemExit(main())
