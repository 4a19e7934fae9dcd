"""The soak (``tests/soak``, see its README.md) as a benchmark, and a deeper run on demand.

- ``python -m bench.run --only soak``: the CI-sized soak (300 requests, ``ORACLE_SOAK_REQUESTS`` to change)
  once at the CI fault rate (2 % of the workers' RPC requests) and once at 5 %, exclusive assignment on (the
  deployment's default 30 s period). Figures ``soak.faults_<N>pct.*``: ``driver_finalized_share`` (results the
  driver's fallback had to finalize for the workers, of all finalized; issue 12 wants <= 0.01),
  ``answered_by_assignee_share``, answer latency (block time) p50 / p99, kills, RPC faults, frauds proven,
  violations of protocol.md §8 found by the audit, wall time.
- ``python -m bench.soak --requests 3000 [--seed N] [--fault-rate 0.05] [--json out]``: one run with the size and
  fault rates as options; prints the report, writes it as JSON when asked, exits 1 if any invariant was violated.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

#: the fault rates of the benchmark: the CI rate and 5 %
BENCH_FAULT_RATES = (0.02, 0.05)


def _quiet() -> None:
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def figures(run: Any) -> dict[str, float]:
    """The flat numbers of one soak run, for ``bench/results.json``."""
    f = run.figures
    prefix = f"soak.faults_{round(run.config.rpc_fault_rate * 100)}pct."
    latency = f.get("answer_latency_s") or {}
    out = {
        "requests": f["requests"],
        "finalized": f["finalized"],
        "driver_finalized": f["driver_finalized"],
        "driver_finalized_share": f["driver_finalized_share"],
        "answered_by_assignee_share": f["answered_by_assignee_share"],
        "answer_latency_s_p50": latency.get("p50", 0),
        "answer_latency_s_p99": latency.get("p99", 0),
        "frauds_proven": f["frauds_proven"],
        "kills": f["kills"],
        "rpc_faults": f["rpc_faults_total"],
        "violations": len(run.violations),
        "wall_s": round(run.phases.get("total", 0.0), 1),
    }
    return {prefix + k: float(v) for k, v in out.items()}


def run() -> dict[str, float]:
    """The suite of ``bench.run``: the CI-sized soak at each of ``BENCH_FAULT_RATES``."""
    _quiet()
    from tests.soak.harness import SoakConfig, run_soak

    results: dict[str, float] = {}
    for rate in BENCH_FAULT_RATES:
        soak = run_soak(SoakConfig.from_env(rpc_fault_rate=rate))
        print(soak.summary(), file=sys.stderr)
        results.update(figures(soak))
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--rate", type=float, default=None, help="requests per second sent by the driver")
    ap.add_argument("--fault-rate", type=float, default=None, help="share of worker RPC requests with a fault")
    ap.add_argument("--challenger-fault-rate", type=float, default=None)
    ap.add_argument("--window", type=int, default=None, help="challenge window (s)")
    ap.add_argument("--workdir", type=Path, default=None, help="keep logs and databases here")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    ap.add_argument("--verbose", action="store_true", help="show the driver's own logs")
    args = ap.parse_args(argv)

    if not args.verbose:
        _quiet()
    from tests.soak.harness import SoakConfig, config_dict, run_soak

    overrides: dict[str, object] = {"requests": args.requests,
                                    "answer_timeout": max(120.0, args.requests / 10),
                                    "settle_timeout": max(60.0, args.requests / 20)}
    for key, value in (("seed", args.seed), ("rate", args.rate), ("rpc_fault_rate", args.fault_rate),
                       ("challenger_fault_rate", args.challenger_fault_rate), ("window", args.window),
                       ("workdir", args.workdir)):
        if value is not None:
            overrides[key] = value
    run = run_soak(SoakConfig.from_env(**overrides))
    print(run.summary())
    if args.json:
        args.json.write_text(json.dumps({"config": config_dict(run.config), "figures": run.figures,
                                         "phases": run.phases, "violations": run.violations,
                                         "final_balance": run.final_balance}, indent=2, default=str) + "\n")
    return 1 if run.violations else 0


if __name__ == "__main__":
    sys.exit(main())
