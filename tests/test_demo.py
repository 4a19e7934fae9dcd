"""The README's first command: the demo tells the whole story and checks itself (exit 0)."""

from __future__ import annotations

import re
import subprocess
import sys

from oracle.chain.toolchain import repo_root


def test_demo_runs_the_whole_story_and_exits_zero() -> None:
    proc = subprocess.run([sys.executable, "-m", "oracle.demo", "--window", "8", "--honest", "2"],
                          cwd=repo_root(), capture_output=True, text=True, timeout=600)
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    assert "FRAUD PROVEN" in out and "finalized" in out and "demo complete" in out
    frauds = int(re.search(r"frauds proven on-chain\s*│\s*(\d+)", out).group(1))  # type: ignore[union-attr]
    wrong_final = int(re.search(r"wrong results that got finalized\s*│\s*(\d+)", out).group(1))  # type: ignore[union-attr]
    assert frauds >= 1 and wrong_final == 0
