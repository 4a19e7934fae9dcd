"""Deeper soak run on demand: ``python -m bench.soak --requests 3000 [--seed N] [--fault-rate 0.05] [--json out]``.

The same run as ``tests/soak`` (see ``tests/soak/README.md``) with the size and fault rates as options; prints
the report, writes it as JSON when asked, exits 1 if any invariant was violated.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


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

    import structlog

    if not args.verbose:
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
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
