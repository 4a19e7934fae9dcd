"""The README's first command: the demo tells the whole story and checks itself (exit 0)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from oracle.chain.toolchain import repo_root
from oracle.profile.models import model_entry

TX_GAS_CAP = 16_777_216  # EIP-7825


@pytest.fixture(scope="module")
def demo() -> subprocess.CompletedProcess[str]:
    """One run of the demo for the tests below (it takes half a minute)."""
    return subprocess.run([sys.executable, "-m", "oracle.demo", "--window", "8", "--honest", "2"],
                          cwd=repo_root(), capture_output=True, text=True, timeout=600,
                          env={**os.environ, "COLUMNS": "300"})  # one narration line per line


def test_demo_runs_the_whole_story_and_exits_zero(demo: subprocess.CompletedProcess[str]) -> None:
    out = demo.stdout
    assert demo.returncode == 0, out[-3000:] + demo.stderr[-3000:]
    assert "FRAUD PROVEN" in out and "finalized" in out and "demo complete" in out
    frauds = int(re.search(r"frauds proven on-chain\s*│\s*(\d+)", out).group(1))  # type: ignore[union-attr]
    wrong_final = int(re.search(r"wrong results that got finalized\s*│\s*(\d+)", out).group(1))  # type: ignore[union-attr]
    assert frauds >= 1 and wrong_final == 0
    # every other shipped family (CNN, gradient-boosted trees, transformer) is registered EXACT, proven by
    # one transaction or by the game, and answers its shipped sample with the expected output, read on-chain
    assert re.search(r"digits_cnn, .*EXACT.*\n\s+a wrong answer is proven by one transaction", out), out[:4000]
    assert re.search(r"credit_gbt, .*EXACT.*\n\s+a wrong answer is proven by one transaction", out), out[:4000]
    assert re.search(r"digits_transformer, .*EXACT.*\n\s+a wrong answer is proven by the dispute game", out), out[:4000]
    for name in ("digits_cnn", "credit_gbt", "digits_transformer"):
        expected = model_entry(name)["samples"][0]["expected_output_hex"]
        row = re.search(rf"model #\d+ {name}\s*│\s*(0x[0-9a-f]+) \(expected (0x[0-9a-f]+)\), (\w+)", out)
        assert row, out[-3000:]
        assert row.groups() == (expected, expected, "finalized"), (name, row.groups())
    assert len(re.findall(r"; registration [\d.]+M gas", out)) == 3, out[:4000]
    assert re.search(r"largest model registration.*│\s*[\d,]+ gas \(\w+\)", out), out[-3000:]


def test_every_shipped_model_registers_within_the_tx_gas_cap(demo: subprocess.CompletedProcess[str]) -> None:
    largest = re.search(r"largest model registration.*│\s*([\d,]+) gas \((\w+)\)", demo.stdout)
    # With margin: the largest is the transformer's fixPlan (its registerModel reads the bound fixPlan kept).
    assert int(largest.group(1).replace(",", "")) <= TX_GAS_CAP * 3 // 4, largest.groups()  # type: ignore[union-attr]


def test_demo_keep_running_leaves_the_try_page_up_until_sigterm() -> None:
    """`oracle demo --keep-running`: after the story the node and /try stay up (a person can finish a drawing),
    then SIGTERM stops everything and the demo still reports its own result."""
    exe = Path(sys.executable).with_name("oracle")
    proc = subprocess.Popen([str(exe), "demo", "--window", "4", "--honest", "1", "--keep-running"], cwd=repo_root(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COLUMNS": "200"})
    assert proc.stdout is not None
    lines: list[str] = []
    url = None
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            m = re.search(r"draw a digit at (http://127\.0\.0\.1:\d+)/try", line)
            if "still running" in line and m:
                url = m.group(1)
                break
        assert url, "".join(lines[-60:])
        time.sleep(3)  # well past the story: it must still be serving
        assert proc.poll() is None
        with urllib.request.urlopen(f"{url}/api/try/config", timeout=30) as resp:
            config = json.load(resp)
        assert config["enabled"] is True, config
        with urllib.request.urlopen(f"{url}/try", timeout=30) as resp:
            assert resp.status == 200
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = "".join(lines) + rest
    assert "demo complete" in out and "stopping" in rest
    assert proc.returncode == 0, out[-3000:]
