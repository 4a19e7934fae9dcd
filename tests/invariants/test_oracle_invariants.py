"""protocol.md §8 under random operation: the hypothesis state machine of ``machine.py`` against anvil.

CI size: at least 10,000 steps from fixed seeds (no example database), a few minutes. Deeper runs on demand::

    ORACLE_FUZZ_STEPS=200000 .venv/bin/python -m pytest tests/invariants -q -s -k invariants
    ORACLE_FUZZ_SEED=1000 ...       # start from another seed (each round of examples uses the next one)

The steps executed, the transactions sent and the outcome of every rule (success or which custom error) are
printed; run with ``-s`` to see them.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.stateful import run_state_machine_as_test

from tests.invariants.harness import FuzzSystem
from tests.invariants.machine import OracleMachine

CI_STEPS = 10_000
STEPS_PER_EXAMPLE = 100


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        stateful_step_count=STEPS_PER_EXAMPLE,
        database=None,  # nothing carried between runs: CI sees exactly the seeded sequence
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        print_blob=True,
    )


def run_fuzz(system: FuzzSystem, target_steps: int, first_seed: int = 0) -> dict[str, Any]:
    """Runs rounds of examples, each round from the next fixed seed, until ``target_steps`` steps ran.

    Hypothesis runs most examples to ``STEPS_PER_EXAMPLE`` steps but also tries short ones (mutations of
    earlier examples), so the number of steps per round is not known in advance; the rounds make the total
    deterministic for a given seed and code."""
    system.stats.clear()
    system.stats["started"] = time.monotonic()
    round_no = 0
    while system.stats.get("steps", 0) < target_steps:
        remaining = target_steps - system.stats.get("steps", 0)
        machine = type(f"OracleMachineSeed{first_seed + round_no}", (OracleMachine,), {"sys": system})
        run_state_machine_as_test(hypothesis_seed(first_seed + round_no)(machine),
                                  settings=fuzz_settings(math.ceil(remaining / STEPS_PER_EXAMPLE * 1.1)))
        round_no += 1
    system.stats["rounds"] = round_no
    return dict(system.stats)


def report(stats: dict[str, Any], elapsed: float, system: FuzzSystem) -> str:
    rules = ", ".join(f"{k[5:]}={v}" for k, v in sorted(stats.items()) if k.startswith("rule:"))
    outcomes = ", ".join(f"{k[8:]}={v}" for k, v in sorted(stats.items()) if k.startswith("outcome:"))
    return (
        f"\nstateful fuzz: {stats['steps']} steps in {stats.get('examples', 0)} examples "
        f"({stats['rounds']} seeded rounds), {stats.get('txs', 0)} transactions incl. end-of-example "
        f"settlement, {elapsed:.0f}s ({stats['steps'] / elapsed:.0f} steps/s), oracle={system.oracle_artifact}\n"
        f"  rpc time: transactions {stats.get('us:tx_rpc', 0) / 1e6:.0f}s, state reads "
        f"{stats.get('us:state_rpc', 0) / 1e6:.0f}s\n"
        f"  assignments: {stats.get('assigned', 0)} requests assigned, {stats.get('unassigned', 0)} open to all\n"
        f"  rules: {rules}\n"
        f"  outcomes (rule:expected=count): {outcomes}"
    )


def test_protocol_invariants_hold_under_random_operation(fuzz_system: FuzzSystem) -> None:
    target = int(os.environ.get("ORACLE_FUZZ_STEPS", CI_STEPS))
    first_seed = int(os.environ.get("ORACLE_FUZZ_SEED", "0"))
    started = time.monotonic()
    stats = run_fuzz(fuzz_system, target, first_seed)
    print(report(stats, time.monotonic() - started, fuzz_system))
    assert stats["steps"] >= target, f"only {stats['steps']} steps ran (target {target})"
    # The run must have exercised the paths that matter, not just reverted its way through.
    for path in ("challenge:ok", "finalize:ok", "finalize_batch:ok", "refund:ok", "withdraw:ok",
                 "withdraw_stake:ok", "submit:ok", "submit_batch:ok", "challenge:ResultIsCorrect"):
        assert stats.get("outcome:" + path, 0) > 0, f"the fuzz run never reached {path}"
