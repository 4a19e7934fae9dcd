"""Running the installed ``oracle`` command as a newcomer would: a subprocess, a clean ``ORACLE_*`` environment."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

DEV_ACCOUNT_0 = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
#: anvil's well-known second account (funded on every devnet; devnet only).
DEV_KEY_1 = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"


def oracle_exe() -> str:
    exe = Path(sys.executable).with_name("oracle")
    found = str(exe) if exe.exists() else shutil.which("oracle")
    assert found, "the `oracle` entry point is not installed (pip install -e .)"
    return found


def run_oracle(*args: str, cwd: Path, env: dict[str, str] | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ORACLE_")}
    base.update({"COLUMNS": "200", "NO_COLOR": "1"})
    base.update(env or {})
    return subprocess.run([oracle_exe(), *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env=base)


def closed_port() -> int:
    """A port nothing listens on (bound and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Failed, no traceback, exactly one line on stderr starting ``error:``, containing every needle."""
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "Traceback" not in out and "╭" not in out, out
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, out
    assert lines[0].startswith("error: "), out
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]
