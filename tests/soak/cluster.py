"""The soak's moving parts: the deployed system, worker processes (killable), the challenger, batched reads.

- :class:`SoakChain` deploys the oracle on a fresh anvil, registers the models (the shipped ``EXACT`` digits
  model, its ``ATTESTED`` float twin, and a *ghost* model whose file exists nowhere, so its requests expire
  and are refunded) and stakes the three operators.
- :class:`WorkerProc` runs one operator node as a process (``tests/soak/node_proc.py``) talking to the chain
  through the fault proxy; ``kill9`` is a real ``SIGKILL``, ``start`` after it reuses the same SQLite database.
- :class:`ChallengerProc` runs the challenger daemon as operators do (``oracle challenger run``), in its own
  process; ``kill9`` + ``start`` is a crash and a restart mid-window on the same state file.
- :class:`BatchRpc` reads many ``eth_call`` / blocks / receipts in one HTTP round trip (the audit reads every
  block of the run).
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from eth_abi import decode as abi_decode
from eth_account import Account
from eth_utils import keccak
from web3 import Web3

from oracle.chain.client import OracleClient
from oracle.chain.deploy import Deployment, DeployParams, deploy_system
from oracle.chain.devnet import DEV_MNEMONIC
from oracle.chain.types import Mode, ModelSpec
from oracle.challenger.store import ClaimState
from oracle.profile.models import model_entry, model_path, program_bytes

ROOT = Path(__file__).resolve().parents[2]
FEE = 10**15
BOND = 4 * FEE
STAKE = 10**20

Account.enable_unaudited_hdwallet_features()


def dev_key(index: int) -> str:
    return str(Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}").key.hex())


# ---------------------------------------------------------------------------------------------- batched RPC
class BatchRpc:
    """JSON-RPC batches over one keep-alive session (straight to anvil, never through the fault proxy)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()
        self._id = 0

    def batch(self, calls: list[tuple[str, list[Any]]], chunk: int = 200) -> list[Any]:
        out: list[Any] = []
        for start in range(0, len(calls), chunk):
            part = calls[start:start + chunk]
            payload = []
            for method, params in part:
                self._id += 1
                payload.append({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})
            first = self._id - len(part) + 1
            resp = self.session.post(self.url, json=payload, timeout=120)
            resp.raise_for_status()
            results: list[Any] = [None] * len(part)
            for item in resp.json():
                if "error" in item:
                    raise RuntimeError(f"{part[item['id'] - first][0]} failed: {item['error']}")
                results[item["id"] - first] = item["result"]
            out.extend(results)
        return out

    def call(self, method: str, params: list[Any]) -> Any:
        return self.batch([(method, params)])[0]


# ---------------------------------------------------------------------------------------------- the chain
@dataclass
class SoakChain:
    """The deployed system and who is who (anvil dev accounts)."""

    w3: Web3
    url: str
    deployment: Deployment
    client: OracleClient
    exact_id: int
    attested_id: int
    ghost_id: int
    deployer: str
    requesters: list[str]
    challenger: str
    honest: list[str]
    dishonest: str
    operator_keys: dict[str, str] = field(default_factory=dict)

    @property
    def operators(self) -> list[str]:
        return [*self.honest, self.dishonest]

    @property
    def oracle(self) -> str:
        return self.deployment.oracle

    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        resp = self.w3.provider.make_request(method, params or [])  # type: ignore[arg-type]
        if "error" in resp:
            raise RuntimeError(f"{method}: {resp['error']}")
        return resp["result"]

    def mine(self) -> None:
        self.rpc("evm_mine")

    def warp(self, seconds: int) -> None:
        self.rpc("evm_increaseTime", [seconds])
        self.rpc("evm_mine")

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])


def deploy_soak_chain(url: str, window: int, request_timeout: int, ghost_uri: str) -> SoakChain:
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 60}))
    acct = list(w3.eth.accounts)
    deployer, challenger = acct[0], acct[4]
    requesters = [acct[1], acct[2]]
    honest, dishonest = [acct[5], acct[6]], acct[7]
    params = DeployParams(challenge_window=window, request_timeout=request_timeout,
                          unbonding_period=request_timeout + 2 * window, min_bond_ratio=4,
                          max_callback_gas=1_000_000)
    dep = deploy_system(w3, deployer, params)
    client = OracleClient(w3, dep.oracle)
    digits, digits_float = model_entry("digits"), model_entry("digits_float")
    exact_id = client.register_model(deployer, ModelSpec(
        onnx_hash=bytes.fromhex(digits["onnx_keccak256"][2:]), fee=FEE, bond=BOND, input_length=64,
        output_length=1, mode=Mode.EXACT, uri=model_path("digits").as_uri(),
        program_commitment=bytes.fromhex(digits["program_commitment"][2:])), program_bytes("digits"))
    attested_id = client.register_model(deployer, ModelSpec(
        onnx_hash=bytes.fromhex(digits_float["onnx_keccak256"][2:]), fee=FEE, bond=BOND, input_length=256,
        output_length=40, mode=Mode.ATTESTED, uri=model_path("digits_float").as_uri()))
    ghost_id = client.register_model(deployer, ModelSpec(
        onnx_hash=keccak(b"soak: a model whose file exists nowhere"), fee=FEE, bond=BOND, input_length=64,
        output_length=1, mode=Mode.ATTESTED, uri=ghost_uri))
    for op in (*honest, dishonest):
        client.stake(op, STAKE)
    keys = {op: dev_key(i) for op, i in zip((*honest, dishonest), (5, 6, 7), strict=True)}
    for op, key in keys.items():
        assert Account.from_key(key).address == op
    return SoakChain(w3, url, dep, client, exact_id, attested_id, ghost_id, deployer, requesters, challenger,
                     honest, dishonest, keys)


# ---------------------------------------------------------------------------------------------- workers
@dataclass
class KillRecord:
    worker: str
    at: float  # seconds since the run started
    jobs_in_flight: int  # jobs in SENT / FINALIZING when the process died
    txs_pending: int  # signed, stored transactions without a receipt when it died
    at_broadcast: bool = False  # killed by the proxy's trap: its transaction reached the node, no answer came back


class WorkerProc:
    """One operator node as a subprocess; its stdout/stderr go to ``log_path``."""

    def __init__(self, name: str, operator: str, key: str, chain: SoakChain, rpc_url: str, workdir: Path,
                 corrupt_rate: float = 0.0, corrupt_seed: int = 0, poll_interval: float = 0.2,
                 block_range: int = 500) -> None:
        self.name = name
        self.operator = operator
        self.dir = workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.dir / "node.sqlite3"
        self.log_path = self.dir / "node.log"
        self.corrupt_rate = corrupt_rate
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ORACLE_", "SOAK_"))}
        env.update({
            "ORACLE_RPC_URLS": f'["{rpc_url}"]', "ORACLE_ORACLE_ADDRESS": chain.oracle,
            "ORACLE_DB_PATH": str(self.db_path), "ORACLE_MODEL_DIR": str(self.dir / "cache"),
            "ORACLE_POLL_INTERVAL": str(poll_interval), "ORACLE_API_PORT": "0",
            "ORACLE_START_BLOCK": str(chain.deployment.block + 1), "ORACLE_PRIVATE_KEY": key,
            "ORACLE_RPC_TIMEOUT": "1.0", "ORACLE_STUCK_AFTER": "8", "ORACLE_MIN_TIME_LEFT": "20",
            "ORACLE_BATCH_SIZE": "40", "ORACLE_INFERENCE_TIMEOUT": "20", "ORACLE_BLOCK_RANGE": str(block_range),
            "SOAK_CORRUPT_RATE": str(corrupt_rate), "SOAK_CORRUPT_SEED": str(corrupt_seed),
            "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1",
        })
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0
        self.exit_codes: list[int] = []
        self.frozen = False
        self._log_offset = 0
        self._ready = False

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        assert not self.alive
        with open(self.log_path, "ab") as log:
            log.write(f"---- start #{self.starts + 1} ----\n".encode())
            log.flush()
            self._log_offset = log.tell()
            self._ready = False
            self.proc = subprocess.Popen([sys.executable, "-m", "tests.soak.node_proc"], cwd=ROOT, env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.starts += 1

    def _logged_in_this_life(self, *needles: bytes) -> bool:
        with open(self.log_path, "rb") as log:
            log.seek(self._log_offset)
            text = log.read()
        return all(n in text for n in needles)

    @property
    def started(self) -> bool:
        """Alive and its loop running in this life (``node_started`` logged since the last start): it may send."""
        return self.alive and (self._ready or self._logged_in_this_life(b"node_started"))

    @property
    def ready(self) -> bool:
        """Alive and past its setup in this life: ``node_started`` and ``inference_lanes_ready`` (its inference
        children boot after the loop started) logged since the last start."""
        if not self.alive:
            return False
        if not self._ready:
            self._ready = self._logged_in_this_life(b"node_started", b"inference_lanes_ready")
        return self._ready

    def kill9(self, at: float) -> KillRecord:
        """SIGKILL the node process only (its inference child exits on the closed pipe, like after a crash)."""
        assert self.proc is not None and self.alive
        self.proc.send_signal(signal.SIGKILL)
        code = self.proc.wait(timeout=10)
        assert code == -signal.SIGKILL, f"{self.name} exited with {code} instead of being killed"
        self.exit_codes.append(code)
        self.kills += 1
        self.frozen = False
        in_flight, pending = self.in_flight()
        return KillRecord(self.name, at, in_flight, pending)

    def freeze(self) -> None:
        """SIGSTOP: the process stops dead (a VM pause, a GC stall, a swapped-out host) until :meth:`thaw`."""
        assert self.proc is not None and self.alive
        self.proc.send_signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        if self.proc is not None and self.frozen:
            self.proc.send_signal(signal.SIGCONT)
        self.frozen = False

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait: a clean stop exits 0."""
        if self.proc is None:
            return 0
        self.thaw()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        code = int(self.proc.returncode)
        self.exit_codes.append(code)
        return code

    def reap(self) -> None:
        """Teardown: the node's process group (it and its inference child), by the id of the node we started."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=10)

    def _read(self, sql: str) -> list[tuple[Any, ...]]:
        if not self.db_path.exists():
            return []
        conn = sqlite3.connect(f"file:{self.db_path}?mode=rw", uri=True, timeout=10)
        try:
            return list(conn.execute(sql))
        except sqlite3.OperationalError:  # killed before the schema existed
            return []
        finally:
            conn.close()

    def in_flight(self) -> tuple[int, int]:
        jobs = self._read("SELECT COUNT(*) FROM jobs WHERE state IN ('sent', 'finalizing')")
        txs = self._read("SELECT COUNT(*) FROM txs WHERE state = 'pending'")
        return (int(jobs[0][0]) if jobs else 0, int(txs[0][0]) if txs else 0)

    def job_counts(self) -> dict[str, int]:
        return {str(s): int(n) for s, n in self._read("SELECT state, COUNT(*) FROM jobs GROUP BY state")}

    def log_count(self, needle: str) -> int:
        if not self.log_path.exists():
            return 0
        return self.log_path.read_text(errors="replace").count(needle)

    def error_sites(self) -> Counter[str]:
        """Where the node's loop caught its errors (``soak_error_site`` lines written by node_proc)."""
        if not self.log_path.exists():
            return Counter()
        return Counter(m.group(1) for m in re.finditer(r"soak_error_site.*? site=(\S+)",
                                                          self.log_path.read_text(errors="replace")))

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


# ---------------------------------------------------------------------------------------------- challenger
class ChallengerProc:
    """The challenger daemon as operators run it (``oracle challenger run``), in its own process.

    ``kill9`` + ``start`` is a crash and a restart mid-window on the same SQLite state file.
    """

    def __init__(self, chain: SoakChain, rpc_url: str, workdir: Path, poll_interval: float = 0.2) -> None:
        self.chain = chain
        self.dir = workdir / "challenger"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.dir / "challenger.sqlite3"
        self.log_path = self.dir / "challenger.log"
        deployment = self.dir / "deployment.json"
        chain.deployment.save(deployment)
        self.argv = [sys.executable, "-c", "import sys; from oracle.cli import main; sys.argv[0] = 'oracle'; main()",
                     "challenger", "run", "--rpc", rpc_url, "--deployment", str(deployment), "--db", str(self.db_path),
                     "--model-dir", str(self.dir / "models"), "--unlocked", chain.challenger,
                     "--poll", str(poll_interval)]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("ORACLE_", "SOAK_"))}
        self.env.update({"PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"})
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0
        self.exit_codes: list[int] = []
        self._log_offset = 0

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        assert not self.alive
        with open(self.log_path, "ab") as log:
            log.write(f"---- start #{self.starts + 1} ----\n".encode())
            log.flush()
            self._log_offset = log.tell()
            self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self.starts += 1

    @property
    def ready(self) -> bool:
        """Alive and past its setup in this life (``challenger_started`` logged since the last start)."""
        if not self.alive:
            return False
        with open(self.log_path, "rb") as log:
            log.seek(self._log_offset)
            return b"challenger_started" in log.read()

    def kill9(self) -> None:
        assert self.proc is not None and self.alive
        self.proc.send_signal(signal.SIGKILL)
        code = self.proc.wait(timeout=10)
        assert code == -signal.SIGKILL, f"challenger exited with {code} instead of being killed"
        self.exit_codes.append(code)
        self.kills += 1

    def stop(self, timeout: float = 60.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        code = int(self.proc.returncode)
        self.exit_codes.append(code)
        return code

    def reap(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=10)

    def _connect(self) -> sqlite3.Connection | None:
        if not self.db_path.exists():
            return None
        return sqlite3.connect(f"file:{self.db_path}?mode=rw", uri=True, timeout=10)

    def snapshot(self) -> tuple[dict[str, int], int | None]:
        """Claim counts by state and the cursor block, read from the daemon's state file."""
        conn = self._connect()
        if conn is None:
            return {}, None
        try:
            counts = {str(s): int(n) for s, n in conn.execute("SELECT state, COUNT(*) FROM claims GROUP BY state")}
            row = conn.execute("SELECT value FROM meta WHERE key='cursor_number'").fetchone()
        except sqlite3.OperationalError:
            return {}, None
        finally:
            conn.close()
        return counts, int(row[0]) if row else None

    def claims(self) -> dict[int, tuple[str, str | None]]:
        """request id -> (claim state, challenge tx hash)."""
        conn = self._connect()
        if conn is None:
            return {}
        try:
            rows = conn.execute("SELECT request_id, state, tx_hash FROM claims")
            return {int(r, 16): (str(s), t) for r, s, t in rows}
        finally:
            conn.close()

    def log_count(self, needle: str) -> int:
        return self.log_path.read_text(errors="replace").count(needle) if self.log_path.exists() else 0

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    @staticmethod
    def open_states() -> tuple[str, ...]:
        return tuple(s.value for s in ClaimState if not s.final)


def decode_words(data: str, count: int) -> tuple[int, ...]:
    """``count`` static uint words of an ``eth_call`` result (statusOf, creditsOf, stakeOf's struct)."""
    return tuple(abi_decode(["uint256"] * count, bytes.fromhex(data[2:])))
