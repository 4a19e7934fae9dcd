"""Every shell and Python block in README.md and docs/*.md runs as written, in order, per file.

How a file is run:

- each file gets a fresh temporary directory (the reader's working directory) and its blocks run in order in
  one bash "session": exported variables of one block are seen by the next (the environment is saved after
  every block), Python blocks run with ``python`` in the same directory and environment;
- ``sh``/``bash``/``shell`` blocks run under ``set -euo pipefail``; stdin carries one line (a password for the
  ``read -rs ORACLE_KEYSTORE_PASSWORD`` the guides use, exactly as a person would type it);
- the docs name the devnet's and the API's well-known ports (8545, 8600); the test replaces them with free
  ports so it never fights another process on this machine (the only rewrite it makes);
- a block annotated ``<!-- doc-test: daemon "TEXT" -->`` is a long-running command (a devnet, a node, a
  challenger): it is started in the background, must print TEXT within three minutes, keeps running for the
  rest of the file (the later blocks use it) and is stopped at the end; it must still be alive then;
- a block annotated ``<!-- doc-test: skip (reason) -->`` is not run (the reason is visible in the markdown);
  the skipped blocks are counted and listed, and every skip must give a reason.

Every fenced block must say its language: ``text`` marks diagrams and formats; ``toml`` blocks are parsed as
node settings (unknown keys refused); ``solidity`` blocks are compiled against this repository's contracts with
the remapping the dApp guide documents.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from oracle.chain.toolchain import repo_root, solc_path

ROOT = repo_root()
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = {"sh", "bash", "shell", "console"}
PYTHON = {"python", "py"}
NOT_RUN = {"text", "toml", "solidity", "json", "yaml"}
PASSWORD = "doc-test keystore password"
_FENCE = re.compile(r"^```([\w-]*)\s*$")
_NOTE = re.compile(r"<!--\s*doc-test:\s*(skip|daemon)\s*(.*?)\s*-->")


@dataclass
class Block:
    file: Path
    line: int
    lang: str
    text: str
    mode: str  # "run", "skip", "daemon"
    arg: str  # skip reason or the daemon's expected text


def blocks_of(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start = i
        lang = m.group(1).lower()
        i += 1
        body: list[str] = []
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        i += 1
        prev = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        note = _NOTE.search(prev)
        mode, arg = ("run", "")
        if note:
            mode = note.group(1)
            arg = note.group(2).strip()
            if mode == "daemon":
                arg = arg.strip('"')
        out.append(Block(path, start + 1, lang, "\n".join(body) + "\n", mode, arg))
    return out


ALL_BLOCKS = [b for p in DOCS for b in blocks_of(p)]


def test_every_block_says_its_language_and_every_skip_its_reason() -> None:
    unlabeled = [f"{b.file.name}:{b.line}" for b in ALL_BLOCKS if not b.lang]
    assert not unlabeled, f"fenced blocks without a language (use ```text for diagrams): {unlabeled}"
    unknown = [f"{b.file.name}:{b.line} {b.lang}" for b in ALL_BLOCKS
               if b.lang not in SHELL | PYTHON | NOT_RUN]
    assert not unknown, unknown
    bad_skips = [f"{b.file.name}:{b.line}" for b in ALL_BLOCKS
                 if b.mode == "skip" and not re.fullmatch(r"\(.+\)", b.arg)]
    assert not bad_skips, f"doc-test: skip needs a (reason): {bad_skips}"
    daemons_without_text = [f"{b.file.name}:{b.line}" for b in ALL_BLOCKS if b.mode == "daemon" and not b.arg]
    assert not daemons_without_text


def test_the_skipped_blocks_are_few_and_counted() -> None:
    runnable = [b for b in ALL_BLOCKS if b.lang in SHELL | PYTHON]
    skipped = [b for b in runnable if b.mode == "skip"]
    report = "\n".join(f"  {b.file.name}:{b.line} {b.arg}" for b in skipped)
    print(f"\n{len(runnable)} shell/Python blocks, {len(skipped)} skipped:\n{report}")
    assert len(runnable) >= 20
    assert len(skipped) <= 6, report


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Session:
    """One reader's shell: a directory, an environment carried from block to block, background daemons."""

    def __init__(self, workdir: Path, ports: dict[str, str]) -> None:
        self.dir = workdir
        self.ports = ports
        self.state = workdir / ".doc-test-env"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORACLE_")}
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
        env.update({"COLUMNS": "160", "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"})
        self.state.write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items()
                                      if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k)))
        self.daemons: list[tuple[Block, subprocess.Popen[bytes], Path]] = []

    def _text(self, block: Block, text: str | None = None) -> str:
        text = block.text if text is None else text
        for doc_port, port in self.ports.items():
            text = text.replace(doc_port, port)
        return text

    def _script(self, block: Block, n: int) -> Path:
        body = self._text(block)
        if block.lang in PYTHON:
            py = self.dir / f".block-{n}.py"
            py.write_text(body)
            body = f"python {shlex.quote(str(py))}\n"
        script = self.dir / f".block-{n}.sh"
        script.write_text(f"set -euo pipefail\nsource {shlex.quote(str(self.state))}\n{body}\n"
                          f"export -p > {shlex.quote(str(self.state))}.new\n")
        return script

    def run(self, block: Block, n: int) -> str:
        script = self._script(block, n)
        proc = subprocess.run(["bash", str(script)], cwd=self.dir, input=PASSWORD + "\n", text=True,
                              capture_output=True, timeout=600, env={"PATH": os.environ["PATH"],
                                                                      "HOME": os.environ.get("HOME", "/root")})
        where = f"{block.file.name}:{block.line}"
        assert proc.returncode == 0, f"{where} failed ({proc.returncode}):\n{self._text(block)}\n--- stdout\n" \
                                     f"{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
        new = Path(f"{self.state}.new")
        new.replace(self.state)
        return proc.stdout + proc.stderr

    def start(self, block: Block, n: int, timeout: float = 180) -> None:
        script = self._script(block, n)
        log = self.dir / f".daemon-{n}.log"
        proc = subprocess.Popen(["bash", str(script)], cwd=self.dir, stdin=subprocess.DEVNULL,
                                stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
                                env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")})
        self.daemons.append((block, proc, log))
        expected = self._text(block, block.arg)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = log.read_text(errors="replace")
            if expected in out:
                return
            assert proc.poll() is None, f"{block.file.name}:{block.line} exited ({proc.returncode}):\n{out[-4000:]}"
            time.sleep(0.3)
        raise AssertionError(f"{block.file.name}:{block.line} did not print {expected!r} in {timeout}s:\n"
                             f"{log.read_text(errors='replace')[-4000:]}")

    def stop(self) -> list[str]:
        """Stops the daemons, newest first; returns the ones that had died before the end."""
        dead = []
        for block, proc, log in reversed(self.daemons):
            if proc.poll() is not None:
                dead.append(f"{block.file.name}:{block.line} died early ({proc.returncode}):\n"
                            f"{log.read_text(errors='replace')[-3000:]}")
                continue
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        return dead


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    s = Session(tmp_path, {"8545": str(_free_port()), "8600": str(_free_port())})
    try:
        yield s
    finally:
        s.stop()


RUNNABLE_FILES = [p for p in DOCS if any(b.lang in SHELL | PYTHON and b.mode != "skip" for b in blocks_of(p))]


@pytest.mark.parametrize("doc", RUNNABLE_FILES, ids=lambda p: p.name)
def test_the_blocks_of_a_file_run_as_written(doc: Path, session: Session) -> None:
    ran = 0
    for n, block in enumerate(blocks_of(doc)):
        if block.lang not in SHELL | PYTHON or block.mode == "skip":
            continue
        if block.mode == "daemon":
            session.start(block, n)
        else:
            session.run(block, n)
        ran += 1
    dead = session.stop()
    assert not dead, "\n".join(dead)
    assert ran > 0


# ------------------------------------------------------------------ the blocks that are not shell or Python
@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.lang == "toml"],
                         ids=lambda b: f"{b.file.name}:{b.line}")
def test_toml_examples_are_valid_node_settings(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from oracle.settings import NodeSettings

    for name in [k for k in os.environ if k.startswith("ORACLE_")]:
        monkeypatch.delenv(name)
    path = tmp_path / "node.toml"
    path.write_text(block.text)
    settings = NodeSettings.load(path)
    assert settings.rpc_urls


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.lang == "solidity"],
                         ids=lambda b: f"{b.file.name}:{b.line}")
def test_solidity_examples_compile_with_the_documented_import_path(block: Block, tmp_path: Path) -> None:
    """The dApp guide imports ``verifiable-inference-oracle/contracts/...``: a checkout of this repository
    mapped with ``verifiable-inference-oracle/=<checkout>/`` (what the guide tells a Foundry or solc user)."""
    request = {
        "language": "Solidity",
        "sources": {"Example.sol": {"content": block.text}},
        "settings": {"remappings": [f"verifiable-inference-oracle/={ROOT}/"],
                     "outputSelection": {"*": {"*": ["evm.bytecode.object"]}}},
    }
    proc = subprocess.run([str(solc_path()), "--base-path", str(tmp_path), "--allow-paths", str(ROOT),
                           "--standard-json"], input=json.dumps(request), capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    errors = [e["formattedMessage"] for e in result.get("errors", []) if e["severity"] == "error"]
    assert not errors, "\n".join(errors)
    compiled = result["contracts"]["Example.sol"]
    assert any(c["evm"]["bytecode"]["object"] for c in compiled.values())
