"""Soak under faults: a bounded loopback run of the whole system, then an audit of the chain.

Layout (everything on this machine, nothing mocked):

    driver (this process) ──requests──► anvil (automine, short window) ◄── challenger (own process)
                                          ▲
          fault proxy (5xx, resets, timeouts, latency, stale heads, kill at broadcast)
                                          ▲
           worker A (honest)   worker B (honest)   worker C (dishonest: lies about a share of EXACT outputs)
           separate processes, each SIGKILLed / SIGSTOPped at random, restarted on its own SQLite database

The driver sends ``requests`` inferences (mostly the ``EXACT`` digits model, some ``ATTESTED``, a few for a
*ghost* model nobody can serve), kills, pauses and restarts workers, kills and restarts the challenger, and
checks solvency at pinned blocks along the way. Then it settles: waits until every serviceable request is
answered and every claim re-executed, warps past the challenge window so the workers finalize their own
results, warps past the request timeout and refunds what expired, stops everything with SIGTERM, and audits
(:mod:`tests.soak.audit`). Finally it unstakes and withdraws everything and checks the oracle's balance is
exactly zero.

All randomness comes from ``SoakConfig.seed``; thread and process timing still varies from run to run.
"""

from __future__ import annotations

import os
import random
import shutil
import struct
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from web3 import Web3

from oracle.chain.devnet import Devnet
from oracle.chain.types import Status
from oracle.profile.models import model_entry

from .cluster import BatchRpc, ChallengerProc, KillRecord, SoakChain, WorkerProc, decode_words, deploy_soak_chain
from .faults import SoakFaultProxy

DIGITS_SAMPLES = [bytes.fromhex(s["input_hex"][2:]) for s in model_entry("digits")["samples"]]


def _env_int(name: str, default: int) -> int:
    v = os.environ.get(name)
    return int(v) if v else default


def _env_float(name: str, default: float) -> float:
    v = os.environ.get(name)
    return float(v) if v else default


@dataclass(frozen=True)
class SoakConfig:
    """One soak run. The CI size takes 2-3 minutes; ``ORACLE_SOAK_REQUESTS=3000`` goes deeper (see README.md)."""

    requests: int = 300
    seed: int = 20240611
    rate: float = 6.0  # requests per second sent by the driver
    window: int = 30  # challenge window (s): short, so windows pass during the run, > a challenger cold start
    request_timeout: int = 600  # long: every serviceable request must be answered despite the kills
    corrupt_rate: float = 0.4  # share of EXACT outputs the dishonest worker lies about
    attested_share: float = 0.15
    ghost_share: float = 0.03  # requests nobody can serve: they expire and are refunded
    # Faults hit only daemons past their setup (a cold start takes 10-15 s on a busy 2-core machine), so every
    # life does some work and a long run stays sustainable.
    kill_every: tuple[float, float] = (5.0, 12.0)  # seconds between two kills (uniform)
    broadcast_kill_every: float = 20.0  # arm the proxy's kill-at-broadcast trap this often (0: never)
    restart_after: tuple[float, float] = (0.2, 2.5)  # seconds a killed worker stays down (uniform)
    freeze_every: tuple[float, float] = (5.0, 12.0)  # seconds between two SIGSTOP pauses (uniform)
    freeze_for: tuple[float, float] = (1.0, 4.0)  # seconds a paused worker stays stopped (uniform)
    target_leader: float = 0.6  # share of kills / pauses aimed at the worker winning the races
    honest_poll: float = 0.2  # worker poll intervals: the cheater is a little keener, so it wins some races
    dishonest_poll: float = 0.15
    worker_block_range: int = 500  # the node's default (the listener's catch-up is batched: no workaround needed)
    challenger_kill_every: float = 30.0  # seconds between two kill -9 of the challenger (0: never)
    challenger_down_for: tuple[float, float] = (0.5, 2.0)  # seconds it stays down (uniform)
    rpc_fault_rate: float = 0.02  # share of the workers' RPC requests that get a fault
    challenger_fault_rate: float = 0.0  # the challenger's own RPC (0: direct connection)
    solvency_every: float = 10.0  # seconds between pinned-block solvency checks during the run
    answer_timeout: float = 120.0  # after the last request, until every serviceable one is answered
    settle_timeout: float = 60.0  # for the workers to finalize after the window; then the driver does the rest
    workdir: Path | None = None  # kept after the run when given (logs, databases)

    @classmethod
    def from_env(cls, **overrides: Any) -> SoakConfig:
        """CI defaults, overridden by ``ORACLE_SOAK_*`` variables, then by ``overrides``."""
        env: dict[str, Any] = {}
        if os.environ.get("ORACLE_SOAK_REQUESTS"):
            n = _env_int("ORACLE_SOAK_REQUESTS", cls.requests)
            env["requests"] = n
            env["answer_timeout"] = max(cls.answer_timeout, n / 10)
            env["settle_timeout"] = max(cls.settle_timeout, n / 20)
        if os.environ.get("ORACLE_SOAK_SEED"):
            env["seed"] = _env_int("ORACLE_SOAK_SEED", cls.seed)
        if os.environ.get("ORACLE_SOAK_RATE"):
            env["rate"] = _env_float("ORACLE_SOAK_RATE", cls.rate)
        if os.environ.get("ORACLE_SOAK_FAULT_RATE"):
            env["rpc_fault_rate"] = _env_float("ORACLE_SOAK_FAULT_RATE", cls.rpc_fault_rate)
        if os.environ.get("ORACLE_SOAK_CHALLENGER_FAULT_RATE"):
            env["challenger_fault_rate"] = _env_float("ORACLE_SOAK_CHALLENGER_FAULT_RATE", 0.0)
        if os.environ.get("ORACLE_SOAK_WORKDIR"):
            env["workdir"] = Path(os.environ["ORACLE_SOAK_WORKDIR"])
        env.update(overrides)
        return cls(**env)


@dataclass
class SentRequest:
    request_id: int
    kind: str  # "exact" | "attested" | "ghost"
    model_id: int
    input: bytes
    block: int
    requester: str


@dataclass
class SoakRun:
    """What the driver did and saw (the audit adds what the chain says)."""

    config: SoakConfig
    chain: SoakChain
    sent: list[SentRequest] = field(default_factory=list)
    kills: list[KillRecord] = field(default_factory=list)
    restarts: Counter[str] = field(default_factory=Counter)
    challenger_kills: int = 0
    freezes: list[tuple[str, float]] = field(default_factory=list)  # (worker, seconds stopped)
    faults: dict[str, int] = field(default_factory=dict)
    challenger_faults: dict[str, int] = field(default_factory=dict)
    proxied_requests: int = 0
    proxy_errors: list[str] = field(default_factory=list)
    solvency_checks: list[tuple[int, int, int]] = field(default_factory=list)  # (block, balance, owed)
    phases: dict[str, float] = field(default_factory=dict)
    worker_exit_codes: dict[str, list[int]] = field(default_factory=dict)
    worker_rpc_errors: dict[str, int] = field(default_factory=dict)
    worker_restarted_lines: dict[str, int] = field(default_factory=dict)
    worker_jobs: dict[str, dict[str, int]] = field(default_factory=dict)
    worker_error_sites: Counter[str] = field(default_factory=Counter)
    challenger_exit_codes: list[int] = field(default_factory=list)
    challenger_log: dict[str, int] = field(default_factory=dict)
    challenger_claims: dict[int, tuple[str, str | None]] = field(default_factory=dict)
    driver_finalized: int = 0
    refunded_by_driver: int = 0
    final_balance: int | None = None
    withdrawn: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    timeline: list[tuple[float, str, str]] = field(default_factory=list)  # (s since start, wall clock, event)
    figures: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """The report: configuration, figures, phases, violations."""
        cfg = self.config
        lines = [f"soak: {self.figures.get('requests', len(self.sent))} requests, seed {cfg.seed}, "
                 f"window {cfg.window} s, RPC fault rate {cfg.rpc_fault_rate:.0%}, "
                 f"dishonest corrupt rate {cfg.corrupt_rate:.0%}, {self.phases.get('total', 0):.1f} s"]
        for k, val in self.figures.items():
            lines.append(f"  {k}: {val}")
        lines.append("  phases (s): " + ", ".join(f"{k} {t:.1f}" for k, t in self.phases.items()))
        lines.append(f"  violations: {len(self.violations)}")
        lines.extend(f"    - {x}" for x in self.violations[:50])
        return "\n".join(lines)


class _Chaos:
    """The fault schedule's state during the traffic phase (guarded by ``lock``: the proxy's trap kills too)."""

    def __init__(self, workers: list[WorkerProc], challenger: ChallengerProc, start: float, cfg: SoakConfig,
                 rng: random.Random) -> None:
        self.lock = threading.Lock()
        self.workers = workers
        self.challenger = challenger
        self.by_name = {w.name: w for w in workers}
        self.by_operator = {w.operator: w for w in workers}
        self.down: dict[str, float] = {}  # worker name -> when to restart it
        self.frozen: dict[str, float] = {}  # worker name -> when to thaw it
        self.next_kill = start + rng.uniform(*cfg.kill_every)
        self.next_freeze = start + rng.uniform(*cfg.freeze_every)
        self.next_trap = start + cfg.broadcast_kill_every if cfg.broadcast_kill_every else float("inf")
        self.next_challenger_kill = start + cfg.challenger_kill_every if cfg.challenger_kill_every else float("inf")
        self.challenger_back_at: float | None = None
        self.next_solvency = start + cfg.solvency_every


class SoakDriver:
    def __init__(self, config: SoakConfig) -> None:
        self.cfg = config
        self.rng = random.Random(config.seed)
        self.t0 = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    # ------------------------------------------------------------------ inputs
    def _exact_input(self) -> bytes:
        base = self.rng.choice(DIGITS_SAMPLES)
        return bytes(min(16, max(0, b + self.rng.randint(-3, 3))) for b in base)

    def _attested_input(self) -> bytes:
        pixels = self._exact_input()
        return struct.pack(">64f", *(float(p) for p in pixels))

    # ------------------------------------------------------------------ the run
    def run(self) -> SoakRun:
        cfg = self.cfg
        with ExitStack() as stack:
            if cfg.workdir is not None:
                workdir = cfg.workdir.resolve()
                if workdir.exists() and any(workdir.iterdir()):
                    if not (workdir / "challenger").is_dir():
                        raise ValueError(f"{workdir} is not empty and not a previous soak's workdir; pick another")
                    shutil.rmtree(workdir)
                workdir.mkdir(parents=True, exist_ok=True)
            else:
                workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="oracle-soak-")))
            devnet = stack.enter_context(Devnet())
            chain = deploy_soak_chain(devnet.url, cfg.window, cfg.request_timeout,
                                      (workdir / "ghost-model-never-written.onnx").as_uri())
            run = SoakRun(cfg, chain)
            run.phases["setup"] = self.elapsed()
            proxy = stack.enter_context(SoakFaultProxy(devnet.url, rate=cfg.rpc_fault_rate, seed=cfg.seed))
            ch_url = devnet.url
            ch_proxy: SoakFaultProxy | None = None
            if cfg.challenger_fault_rate > 0:
                ch_proxy = stack.enter_context(SoakFaultProxy(devnet.url, rate=cfg.challenger_fault_rate,
                                                              seed=cfg.seed + 1))
                ch_url = ch_proxy.url
            workers = [
                WorkerProc("honest-a", chain.honest[0], chain.operator_keys[chain.honest[0]], chain, proxy.url,
                           workdir, poll_interval=cfg.honest_poll, block_range=cfg.worker_block_range),
                WorkerProc("honest-b", chain.honest[1], chain.operator_keys[chain.honest[1]], chain, proxy.url,
                           workdir, poll_interval=cfg.honest_poll, block_range=cfg.worker_block_range),
                WorkerProc("dishonest", chain.dishonest, chain.operator_keys[chain.dishonest], chain, proxy.url,
                           workdir, corrupt_rate=cfg.corrupt_rate, corrupt_seed=cfg.seed,
                           poll_interval=cfg.dishonest_poll, block_range=cfg.worker_block_range),
            ]
            for w in workers:
                stack.callback(w.reap)
                w.start()
            challenger = ChallengerProc(chain, ch_url, workdir)
            stack.callback(challenger.reap)
            challenger.start()
            batch = BatchRpc(devnet.url)
            try:
                t = self.elapsed()
                self._wait_ready(workers, challenger)
                run.phases["ready"] = self.elapsed() - t
                self._drive(run, workers, challenger, batch, proxy)
                self._settle(run, workers, challenger, batch)
            except Exception as exc:
                tails = "\n".join(f"--- {getattr(p, 'name', 'challenger')} log tail ---\n{p.log_tail()}"
                                  for p in (*workers, challenger))
                timeline = "\n".join(f"{t:7.2f} s {wall} {event}" for t, wall, event in run.timeline)
                raise AssertionError(f"{exc}\n--- timeline ---\n{timeline}\n{tails}") from exc
            finally:
                run.faults = dict(proxy.faults)
                run.proxy_errors = list(proxy.handler_errors)
                run.proxied_requests = proxy.requests_seen
                if ch_proxy is not None:
                    run.challenger_faults = dict(ch_proxy.faults)
            from .audit import audit  # noqa: PLC0415 - the audit reads the chain before it is torn down

            audit(run, batch)
            self._withdraw_everything(run, batch)
            run.phases["total"] = self.elapsed()
            return run

    def _wait_ready(self, workers: list[WorkerProc], challenger: ChallengerProc, timeout: float = 90.0) -> None:
        """Traffic starts once every daemon has finished its setup (a cold start on a busy CPU takes seconds)."""
        deadline = time.monotonic() + timeout
        while not (all(w.ready for w in workers)
                   and challenger.log_count("challenger_started") >= challenger.starts):
            dead = [w.name for w in workers if not w.alive] + ([] if challenger.alive else ["challenger"])
            if dead or time.monotonic() > deadline:
                tails = "\n".join(f"--- {w.name}\n{w.log_tail()}" for w in workers)
                raise AssertionError(f"soak: workers not ready (dead: {dead})\n{tails}")
            time.sleep(0.1)

    def mark(self, run: SoakRun, event: str) -> None:
        run.timeline.append((round(self.elapsed(), 2), time.strftime("%H:%M:%S"), event))

    # ------------------------------------------------------------------ phase 1: traffic, kills, restarts
    def _drive(self, run: SoakRun, workers: list[WorkerProc], challenger: ChallengerProc, batch: BatchRpc,
               proxy: SoakFaultProxy) -> None:
        cfg = self.cfg
        start = self.elapsed()
        chaos = _Chaos(workers, challenger, start, cfg, self.rng)

        def kill_at_broadcast(sender: str) -> None:  # runs on the proxy's thread
            with chaos.lock:
                w = chaos.by_operator.get(sender)
                if w is None or not w.started or w.name in chaos.down:  # sending: its loop runs (lanes may boot)
                    return
                now = self.elapsed()
                rec = w.kill9(now)
                rec.at_broadcast = True
                run.kills.append(rec)
                chaos.down[w.name] = now + self.rng.uniform(*cfg.restart_after)
                self.mark(run, f"kill -9 {w.name} at broadcast ({rec.txs_pending} tx pending)")

        for i in range(cfg.requests):
            due = start + i / cfg.rate
            while self.elapsed() < due:
                time.sleep(min(0.02, max(0.0, due - self.elapsed())))
            with chaos.lock:
                self._chaos_tick(run, chaos, batch)
            if self.elapsed() >= chaos.next_trap:
                proxy.arm_broadcast_trap(kill_at_broadcast)
                chaos.next_trap = self.elapsed() + cfg.broadcast_kill_every
            self._send_one(run)
            if not challenger.alive and chaos.challenger_back_at is None:
                raise AssertionError(f"the challenger daemon died on its own:\n{challenger.log_tail()}")
        proxy.arm_broadcast_trap(None)
        with chaos.lock:
            if chaos.challenger_back_at is not None:
                challenger.start()
            for w in workers:
                w.thaw()
            for name in list(chaos.down):
                chaos.by_name[name].start()
                run.restarts[name] += 1
        run.phases["traffic"] = self.elapsed() - start

    def _chaos_tick(self, run: SoakRun, chaos: _Chaos, batch: BatchRpc) -> None:
        """Restarts and thaws what is due, then maybe a pause, a kill, a challenger kill, a solvency check."""
        cfg, rng = self.cfg, self.rng
        now = self.elapsed()
        for name, when in list(chaos.down.items()):
            if now >= when:
                chaos.by_name[name].start()
                run.restarts[name] += 1
                del chaos.down[name]
                self.mark(run, f"restart {name}")
        for name, when in list(chaos.frozen.items()):
            if now >= when or not chaos.by_name[name].frozen:
                chaos.by_name[name].thaw()
                del chaos.frozen[name]
        if now >= chaos.next_freeze:
            running = [w for w in chaos.workers if w.ready and not w.frozen]
            if running:
                victim = self._pick(run, running)
                victim.freeze()
                pause = rng.uniform(*cfg.freeze_for)
                chaos.frozen[victim.name] = now + pause
                run.freezes.append((victim.name, round(pause, 2)))
                self.mark(run, f"SIGSTOP {victim.name} for {pause:.1f} s")
            chaos.next_freeze = now + rng.uniform(*cfg.freeze_every)
        if now >= chaos.next_kill:
            alive = [w for w in chaos.workers if w.ready and w.name not in chaos.down]
            if alive:
                victim = self._pick(run, alive)
                run.kills.append(victim.kill9(now))
                self.mark(run, f"kill -9 {victim.name}")
                chaos.down[victim.name] = now + rng.uniform(*cfg.restart_after)
            chaos.next_kill = now + rng.uniform(*cfg.kill_every)
        challenger = chaos.challenger
        if chaos.challenger_back_at is not None and now >= chaos.challenger_back_at:
            challenger.start()
            chaos.challenger_back_at = None
            self.mark(run, "restart challenger")
        if now >= chaos.next_challenger_kill and challenger.ready:
            challenger.kill9()
            run.challenger_kills += 1
            chaos.challenger_back_at = now + rng.uniform(*cfg.challenger_down_for)
            self.mark(run, "kill -9 challenger")
            chaos.next_challenger_kill = now + cfg.challenger_kill_every
        if now >= chaos.next_solvency:
            self._check_solvency(run, batch)
            chaos.next_solvency = now + cfg.solvency_every

    def _pick(self, run: SoakRun, candidates: list[WorkerProc]) -> WorkerProc:
        """A fault's victim: usually the worker that won the latest race (faults hit the busiest node, and the
        race for requests changes hands), otherwise any."""
        chain = run.chain
        if self.rng.random() < self.cfg.target_leader:
            head = chain.w3.eth.block_number
            logs = chain.client.contract.events.ResultSubmitted().get_logs(
                from_block=max(chain.deployment.block, head - 30), to_block=head)
            if logs:
                leader = str(logs[-1]["args"]["operator"])
                for w in candidates:
                    if w.operator == leader:
                        return w
        return self.rng.choice(candidates)

    def _send_one(self, run: SoakRun) -> None:
        chain, rng, cfg = run.chain, self.rng, self.cfg
        draw = rng.random()
        if draw < cfg.ghost_share:
            kind, model_id, data = "ghost", chain.ghost_id, self._exact_input()
        elif draw < cfg.ghost_share + cfg.attested_share:
            kind, model_id, data = "attested", chain.attested_id, self._attested_input()
        else:
            kind, model_id, data = "exact", chain.exact_id, self._exact_input()
        requester = rng.choice(chain.requesters)
        rid, receipt = chain.client.request(requester, model_id, data, fee=10**15)
        run.sent.append(SentRequest(rid, kind, model_id, data, int(receipt["blockNumber"]), requester))

    def _check_solvency(self, run: SoakRun, batch: BatchRpc) -> None:
        """Invariant 1 at one pinned block: balance == Σ(staked + pending) + Σ credits + escrowed fees."""
        chain = run.chain
        block = int(batch.call("eth_blockNumber", []), 16)
        tag = hex(block)
        c = chain.client.contract
        oracle = chain.oracle
        accounts = [*chain.operators, chain.challenger, *chain.requesters]
        rids = [s.request_id for s in run.sent if s.block <= block]

        def call(fn: Any) -> tuple[str, list[Any]]:
            return ("eth_call", [{"to": oracle, "data": fn._encode_transaction_data()}, tag])  # noqa: SLF001

        calls: list[tuple[str, list[Any]]] = [("eth_getBalance", [oracle, tag])]
        calls += [call(c.functions.stakeOf(a)) for a in chain.operators]
        calls += [call(c.functions.creditsOf(a)) for a in accounts]
        calls += [call(c.functions.statusOf(r)) for r in rids]
        out = batch.batch(calls)
        balance = int(out[0], 16)
        k = 1 + len(chain.operators)
        stakes = [decode_words(x, 4) for x in out[1:k]]
        credits = [decode_words(x, 1)[0] for x in out[k:k + len(accounts)]]
        statuses = [Status(decode_words(x, 1)[0]) for x in out[k + len(accounts):]]
        escrowed = {Status.PENDING, Status.EXPIRED, Status.SUBMITTED, Status.FINALIZABLE}
        escrow = 10**15 * sum(1 for s in statuses if s in escrowed)
        owed = sum(s[0] + s[2] for s in stakes) + sum(credits) + escrow
        run.solvency_checks.append((block, balance, owed))

    # ------------------------------------------------------------------ phase 2: settle
    def _wait(self, what: str, cond: Any, timeout: float, chain: SoakChain, mine_every: float = 0.5) -> None:
        """Waits for ``cond()``, mining an empty block now and then so the workers see time pass."""
        deadline = time.monotonic() + timeout
        last_mine = 0.0
        while True:
            if cond():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"soak: timed out after {timeout:.0f} s waiting for {what}")
            if time.monotonic() - last_mine >= mine_every:
                chain.mine()
                last_mine = time.monotonic()
            time.sleep(0.1)

    def _statuses(self, run: SoakRun, batch: BatchRpc, rids: list[int]) -> list[Status]:
        c = run.chain.client.contract
        calls = [("eth_call", [{"to": run.chain.oracle, "data": c.functions.statusOf(r)._encode_transaction_data()},  # noqa: SLF001
                               "latest"]) for r in rids]
        return [Status(decode_words(x, 1)[0]) for x in batch.batch(calls)]

    def _settle(self, run: SoakRun, workers: list[WorkerProc], challenger: ChallengerProc, batch: BatchRpc) -> None:
        chain, cfg = run.chain, self.cfg
        t = self.elapsed()
        serviceable = [s.request_id for s in run.sent if s.kind != "ghost"]
        ghosts = [s.request_id for s in run.sent if s.kind == "ghost"]

        def answered() -> bool:
            return all(st not in (Status.PENDING, Status.EXPIRED) for st in self._statuses(run, batch, serviceable))

        self.mark(run, "traffic done")
        self._wait("every serviceable request to be answered", answered, cfg.answer_timeout, chain)
        run.phases["answer"] = self.elapsed() - t
        t = self.elapsed()
        submitted = chain.client.contract.events.ResultSubmitted()

        def challenger_done() -> bool:
            head = chain.w3.eth.block_number
            n_claims = len(submitted.get_logs(from_block=chain.deployment.block, to_block=head))
            counts, cursor = challenger.snapshot()
            open_claims = sum(counts.get(s, 0) for s in ChallengerProc.open_states())
            return cursor is not None and cursor >= head and sum(counts.values()) >= n_claims and open_claims == 0

        self._wait("the challenger to re-execute every claim", challenger_done, max(60.0, cfg.requests / 20), chain,
                   mine_every=5.0)
        run.phases["challenger_drain"] = self.elapsed() - t
        t = self.elapsed()
        # Every claim has been judged: jump past the last window so the workers finalize without waiting.
        chain.warp(cfg.window)
        self.mark(run, f"warped {cfg.window} s past the last window")
        final = {Status.FINALIZED, Status.FRAUD_PROVEN}
        try:
            self._wait("the workers to finalize every result",
                       lambda: all(st in final for st in self._statuses(run, batch, serviceable)),
                       cfg.settle_timeout, chain)
        except AssertionError as exc:
            run.notes.append(str(exc))
            self._finalize_leftovers(run, batch, serviceable)
        run.phases["finalize"] = self.elapsed() - t
        self.mark(run, "all finalized")
        t = self.elapsed()
        # Past every request deadline: what nobody answered is refunded, exactly once.
        chain.warp(cfg.request_timeout)
        for rid, st in zip(ghosts, self._statuses(run, batch, ghosts), strict=True):
            if st is Status.EXPIRED:
                chain.client.refund(chain.requesters[0], rid)
                run.refunded_by_driver += 1
        for w in workers:
            code = w.stop()
            run.worker_exit_codes[w.name] = list(w.exit_codes)
            if code != 0:
                run.notes.append(f"{w.name} exited {code} on SIGTERM\n{w.log_tail()}")
        code = challenger.stop()
        run.challenger_exit_codes = list(challenger.exit_codes)
        if code != 0:
            run.notes.append(f"challenger exited {code} on SIGTERM\n{challenger.log_tail()}")
        run.challenger_claims = challenger.claims()
        run.challenger_log = {k: challenger.log_count(k) for k in (
            "challenger_started", "fraud_found", "challenge_sent", "fraud_proven", "challenger_iteration_failed",
            "local_reexecution_disagrees_with_chain", "claim_failed")}
        for w in workers:
            # faults the node saw: retried in place by the RPC layer, or surfacing as a failed step
            run.worker_rpc_errors[w.name] = w.log_count("rpc_error") + w.log_count("rpc_retry")
            run.worker_restarted_lines[w.name] = w.log_count("node_started")
            run.worker_jobs[w.name] = w.job_counts()
            run.worker_error_sites.update(w.error_sites())
        run.phases["refund_and_stop"] = self.elapsed() - t

    def _finalize_leftovers(self, run: SoakRun, batch: BatchRpc, rids: list[int]) -> None:
        """Fallback (reported, and a failure): finalize what the workers left behind."""
        chain = run.chain
        outputs = {int(e["args"]["requestId"]): bytes(e["args"]["output"]) for e in
                   chain.client.contract.events.ResultSubmitted().get_logs(from_block=chain.deployment.block)}
        for rid, st in zip(rids, self._statuses(run, batch, rids), strict=True):
            if st is Status.FINALIZABLE:
                chain.client.finalize(chain.deployer, rid, outputs[rid])
                run.driver_finalized += 1

    # ------------------------------------------------------------------ phase 3: empty the contract
    def _withdraw_everything(self, run: SoakRun, batch: BatchRpc) -> None:
        """Invariant 1, the strong form: after everything settles and is withdrawn the balance is zero."""
        chain = run.chain
        t = self.elapsed()
        for op in chain.operators:
            st = chain.client.stake_of(op)
            if st.staked:
                chain.client.request_unstake(op, st.staked)
        chain.warp(chain.deployment.params.unbonding_period + 1)
        for op in chain.operators:
            if chain.client.stake_of(op).pending:
                chain.client.withdraw_stake(op, op)
        for a in [*chain.operators, chain.challenger, *chain.requesters]:
            credits = chain.client.credits_of(a)
            if credits:
                chain.client.withdraw(a, a)
                run.withdrawn[a] = credits
        run.final_balance = int(chain.w3.eth.get_balance(Web3.to_checksum_address(chain.oracle)))
        if run.final_balance != 0:
            run.violations.append(f"SOLVENCY after withdrawing everything: {run.final_balance} wei left")
        run.phases["withdraw"] = self.elapsed() - t


def run_soak(config: SoakConfig | None = None) -> SoakRun:
    return SoakDriver(config or SoakConfig.from_env()).run()


def config_dict(cfg: SoakConfig) -> dict[str, Any]:
    d = asdict(cfg)
    d["workdir"] = str(cfg.workdir) if cfg.workdir else None
    return d
