"""The real daemons in the dispute game: the operator node as its own process (``tests.worker.node_proc``, so a
test can ``kill -9`` it), and helpers that drive a scripted party until a game ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from oracle.dispute.actors import Actor, GameView, Phase
from tests.dispute.conftest import GameSystem
from tests.worker.conftest import dev_account

ROOT = Path(__file__).resolve().parents[2]
OPERATOR_INDEX = 1  # GameSystem.operator is accounts[1]


def spawn_node(gs: GameSystem, url: str, tmp: Path, **env: str) -> subprocess.Popen[bytes]:
    """The operator's node; it starts at the current block (its claims were submitted before)."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("ORACLE_", "WORKER_TEST_"))}
    e.update({
        "ORACLE_RPC_URLS": f'["{url}"]', "ORACLE_ORACLE_ADDRESS": gs.deployment.oracle,
        "ORACLE_DB_PATH": str(tmp / "node.sqlite3"), "ORACLE_MODEL_DIR": str(tmp / "cache"),
        "ORACLE_POLL_INTERVAL": "0.05", "ORACLE_API_PORT": "0", "ORACLE_START_BLOCK": str(gs.w3.eth.block_number),
        "ORACLE_PRIVATE_KEY": dev_account(OPERATOR_INDEX).key.hex(), "ORACLE_STUCK_AFTER": "60",
        "ORACLE_AUTO_FINALIZE": "false", "PYTHONPATH": str(ROOT),
    })
    e.update(env)
    log = (tmp / "node.log").open("ab")
    return subprocess.Popen([sys.executable, "-m", "tests.worker.node_proc"], cwd=ROOT, env=e,
                            stdout=log, stderr=log)


def kill9(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()


def play_against(gs: GameSystem, game_id: int, actor: Actor | None, timeout: float = 90.0,
                 on_move: Callable[[GameView], None] | None = None) -> GameView:
    """Plays ``actor``'s moves as they come while a daemon plays the other side; returns the ended game.
    ``on_move`` sees the game each time it changed (a test kills a daemon there)."""
    deadline = time.monotonic() + timeout
    last: tuple[object, ...] | None = None
    while time.monotonic() < deadline:
        g = GameView.read(gs.game, game_id)
        key = (g.phase, g.lo, g.hi, g.root_mid)
        if key != last:
            last = key
            if on_move is not None:
                on_move(g)
        if g.phase is Phase.RESOLVED:
            return g
        if actor is None:
            time.sleep(0.05)
            continue
        try:
            moved = actor.move(game_id)
        except RuntimeError:
            # The step is permissionless: the daemon's step can be mined between our call and our transaction,
            # which then reverts. Only a failed move in a game that did not move on is an error.
            now = GameView.read(gs.game, game_id)
            if (now.phase, now.lo, now.hi, now.root_mid) == key:
                raise
            moved = True
        if not moved:
            time.sleep(0.05)
    raise AssertionError(f"game {game_id} did not end within {timeout}s: {GameView.read(gs.game, game_id)}")


def metric(port: int, name: str, **labels: str) -> float:
    """One sample of a daemon's Prometheus ``/metrics`` (0 when it has not been recorded)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def spawn_challenger(gs: GameSystem, url: str, tmp: Path, metrics_port: int = 0) -> subprocess.Popen[bytes]:
    """The challenger daemon (``oracle challenger run``) on the unlocked challenger account, as its own process
    (its ``/metrics`` on ``metrics_port``; 0: off)."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("ORACLE_", "WORKER_TEST_"))}
    e["PYTHONPATH"] = str(ROOT)
    log = (tmp / "challenger.log").open("ab")
    code = "import sys; from oracle.cli import main; sys.argv[0] = 'oracle'; main()"
    return subprocess.Popen([sys.executable, "-c", code, "challenger", "run", "--rpc", url,
                             "--oracle", gs.deployment.oracle, "--db", str(tmp / "challenger.sqlite3"),
                             "--model-dir", str(tmp / "challenger-models"), "--unlocked", gs.challenger,
                             "--poll", "0.1", "--metrics-port", str(metrics_port)], cwd=ROOT, env=e, stdout=log,
                            stderr=log)


def wait_until(cond: Callable[[], object], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
