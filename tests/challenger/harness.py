"""A deployed oracle with the digits model, an operator, a requester, and the real challenger daemon running
in a thread (as the demo runs it); shared by tests/challenger and the challenger red-team tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from web3 import Web3

from oracle.chain.client import OracleClient
from oracle.chain.deploy import Deployment, DeployParams, deploy_system
from oracle.chain.types import Mode, ModelSpec
from oracle.challenger.daemon import Challenger, ChallengerConfig
from oracle.challenger.store import Claim, ClaimState, Store
from oracle.challenger.verify import ClaimVerifier
from oracle.profile.models import model_entry, model_path, program_bytes
from oracle.runtime.model_store import ModelStore

FEE = 10**15
BOND = 4 * FEE
DIGITS = model_entry("digits")
SAMPLES = DIGITS["samples"]


@dataclass
class Env:
    w3: Web3
    client: OracleClient
    deployment: Deployment
    digits_id: int
    operator: str
    user: str
    challenger: str
    window: int

    def rpc(self, method: str, *params: Any) -> Any:
        return self.w3.provider.make_request(method, list(params)).get("result")  # type: ignore[arg-type]


def deploy(w3: Web3, window: int) -> tuple[Deployment, int]:
    acct = w3.eth.accounts
    dep = deploy_system(w3, acct[0], DeployParams(challenge_window=window, request_timeout=2 * window,
                                                  unbonding_period=10 * window))
    client = OracleClient(w3, dep.oracle)
    digits = client.register_model(acct[0], ModelSpec(
        onnx_hash=bytes.fromhex(DIGITS["onnx_keccak256"][2:]), fee=FEE, bond=BOND, input_length=64,
        output_length=1, mode=Mode.EXACT, uri=model_path("digits").as_uri(),
        program_commitment=bytes.fromhex(DIGITS["program_commitment"][2:])), program_bytes("digits"))
    client.stake(acct[1], 10**20)
    return dep, digits


def env_of(w3: Web3, dep: Deployment, digits: int, window: int) -> Env:
    a = w3.eth.accounts
    return Env(w3, OracleClient(w3, dep.oracle), dep, digits, a[1], a[3], a[4], window)


def sample_io(k: int, wrong: bool) -> tuple[bytes, bytes]:
    s = SAMPLES[k % len(SAMPLES)]
    out = bytes.fromhex(s["expected_output_hex"][2:])
    return bytes.fromhex(s["input_hex"][2:]), bytes([(out[0] + 1) % 10]) if wrong else out


def answer(env: Env, k: int, wrong: bool = True, model_id: int | None = None) -> int:
    """A request on the digits model and the operator's answer to it (wrong by default); both mined."""
    pixels, out = sample_io(k, wrong)
    rid, _ = env.client.request(env.user, model_id or env.digits_id, pixels)
    env.client.submit(env.operator, rid, out)
    return rid


def make_challenger(env: Env, workdir: Path, config: ChallengerConfig | None = None,
                    db: str = "challenger.db") -> Challenger:
    models = ModelStore(workdir / "models", max_model_bytes=64 * 2**20, max_tensor_bytes=16 * 2**20)
    cfg = config or ChallengerConfig(poll_interval=0.1, recheck_interval=0.3)
    if cfg.start_block != env.deployment.block:
        cfg = ChallengerConfig(**{**cfg.__dict__, "start_block": env.deployment.block})
    return Challenger(env.client, Store(workdir / db), ClaimVerifier(env.client, models), env.challenger, cfg)


@dataclass
class Daemon:
    """The challenger's own ``run`` loop in a thread; ``died`` holds what killed it, if anything."""

    challenger: Challenger
    thread: threading.Thread | None = None
    died: list[BaseException] = field(default_factory=list)

    def start(self) -> Daemon:
        def main() -> None:
            try:
                self.challenger.run()
            except BaseException as exc:  # noqa: BLE001 - recorded for the test to fail on
                self.died.append(exc)

        self.thread = threading.Thread(target=main, name="challenger", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.challenger.stop()
        if self.thread is not None:
            self.thread.join(timeout=30)
        self.challenger.store.close()

    @property
    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def claim(self, request_id: int) -> Claim | None:
        return self.challenger.store.claim(request_id)


def wait_for(what: Callable[[], Any], timeout: float, message: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = what()
        if got:
            return got
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s: {message}")


def proven_on_chain(env: Env, request_id: int) -> list[dict[str, Any]]:
    """FraudProven events for a request on the current chain, with the block timestamp of each."""
    out = []
    for e in env.client.contract.events.FraudProven().get_logs(from_block=env.deployment.block,
                                                               argument_filters={"requestId": request_id}):
        out.append({"tx": Web3.to_hex(e["transactionHash"]), "block": e["blockNumber"],
                    "block_hash": Web3.to_hex(e["blockHash"]),
                    "challenger": e["args"]["challenger"],
                    "timestamp": int(env.w3.eth.get_block(e["blockNumber"])["timestamp"])})
    return out


def state_of(daemon: Daemon, request_id: int) -> ClaimState | None:
    c = daemon.claim(request_id)
    return c.state if c is not None else None


def resent(daemon: Daemon) -> float:
    """Challenges sent again, whatever the reason (dropped from the pool, stuck, proof reorganised away)."""
    m = daemon.challenger.metrics.challenges_resent
    return sum(m.labels(reason=r)._value.get() for r in ("dropped", "stuck", "reorg"))  # type: ignore[attr-defined]
