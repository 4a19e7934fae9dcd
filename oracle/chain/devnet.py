"""Start and stop a local anvil devnet (tests, benchmarks, the demo).

anvil listens on 127.0.0.1 on a port the OS picks (``--port 0``); the chosen port is read from its
output, so two devnets (or another service) never fight over a fixed port.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

from oracle.chain.toolchain import EVM_VERSION, anvil_path
from oracle.errors import ToolchainError

#: anvil's default mnemonic: deterministic, well-known, devnet only.
DEV_MNEMONIC = "test test test test test test test test test test test junk"

_LISTEN = re.compile(r"Listening on (?:https?://)?([\d.]+):(\d+)")


@dataclass
class Devnet:
    """A running anvil process. Use as a context manager or call :meth:`stop`."""

    block_time: float | None = None
    accounts: int = 20
    balance_eth: int = 1_000_000
    chain_id: int = 31337
    extra_args: tuple[str, ...] = ()
    url: str = ""
    port: int = 0
    _proc: subprocess.Popen[str] | None = field(default=None, repr=False)
    _home: str | None = field(default=None, repr=False)
    _log: list[str] = field(default_factory=list, repr=False)

    def command(self, port: int = 0) -> list[str]:
        """The anvil command line (``port`` 0: the OS picks one)."""
        cmd = [
            str(anvil_path()),
            "--host", "127.0.0.1",
            "--port", str(port),
            "--hardfork", EVM_VERSION,
            "--accounts", str(self.accounts),
            "--balance", str(self.balance_eth),
            "--chain-id", str(self.chain_id),
            "--mnemonic", DEV_MNEMONIC,
            "--gas-limit", "100000000",
        ]
        if self.block_time:
            cmd += ["--block-time", str(self.block_time)]
        return cmd + list(self.extra_args)

    def start(self, timeout: float = 30.0) -> Devnet:
        cmd = self.command()
        # anvil keeps states it pages out of memory under $HOME/.foundry/anvil/tmp and leaves them there when
        # stopped (one test session left 57 GB): each devnet gets its own HOME, removed by :meth:`stop`.
        self._home = tempfile.mkdtemp(prefix="oracle-anvil-")
        self._proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
            env={**os.environ, "HOME": self._home},
        )
        deadline = time.monotonic() + timeout
        assert self._proc.stdout is not None
        while time.monotonic() < deadline:
            line = self._proc.stdout.readline()
            if not line:
                if self._proc.poll() is not None:
                    raise ToolchainError("anvil exited early:\n" + "".join(self._log[-20:]))
                continue
            self._log.append(line)
            m = _LISTEN.search(line)
            if m:
                self.port = int(m.group(2))
                self.url = f"http://127.0.0.1:{self.port}"
                threading.Thread(target=self._drain, daemon=True).start()
                return self
        self.stop()
        raise ToolchainError(f"anvil did not report its port within {timeout:.0f}s")

    def _drain(self) -> None:
        # Keep reading so anvil never blocks on a full pipe; keep only a short tail for errors.
        proc = self._proc
        if proc is None or proc.stdout is None:
            return
        for line in proc.stdout:
            self._log.append(line)
            if len(self._log) > 200:
                del self._log[:100]

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        if self._home is not None:
            shutil.rmtree(self._home, ignore_errors=True)
            self._home = None

    def __enter__(self) -> Devnet:
        return self.start() if self._proc is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
