"""The challenger daemon: watch attested results, re-execute them, prove the wrong ones, never stall.

Lifecycle like every daemon here: ``setup`` (load state), ``run`` (loop until stopped), ``stop``, ``cleanup``.
Each iteration:

1. **poll**: one range of confirmed blocks through :class:`oracle.chain.follower.Follower`; on a reorg, roll
   back to the fork point found by block hash, keeping every verdict the reorg does not invalidate;
2. **process**: track challenges in flight (never waiting on a receipt), re-check proven claims on-chain,
   re-execute pending claims in batches per model in a limited child (:mod:`oracle.challenger.verify`), and
   simulate and send a challenge for every wrong one (:mod:`oracle.challenger.prover`), or, when its model's
   one-transaction proof does not fit, open and play a dispute game for it (:mod:`oracle.challenger.games`).

A model whose program cannot be re-executed within the limits is quarantined (its claims get the
``quarantined`` state and an alarm) and never blocks other models. In the background, each model's ONNX file
is checked against its committed program in a second limited child (``models`` table, aspect ``onnx``).
State lives in SQLite (:mod:`oracle.challenger.store`), so a restart resumes mid-window.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from functools import partial

import structlog
from web3 import Web3

from oracle.chain.client import OracleClient
from oracle.chain.follower import Follower, Fork, Range
from oracle.chain.retry import Backoff, retry_until_stopped
from oracle.chain.tx import Signer
from oracle.chain.txmanager import AccountMismatch, FeePolicy
from oracle.chain.types import Mode, Model
from oracle.challenger.games import GamePlayer, GamePolicy
from oracle.challenger.metrics import ChallengerMetrics
from oracle.challenger.prover import Prover
from oracle.challenger.store import Claim, ClaimState, Store
from oracle.challenger.txs import ChallengeTxs
from oracle.challenger.verify import ClaimVerifier, NoVerdict
from oracle.errors import OracleError
from oracle.runtime.sandbox import SandboxFailure

log = structlog.get_logger("oracle.challenger")

#: longest wait after failing iterations (the first waits the poll interval, then it doubles)
MAX_LOOP_BACKOFF = 30.0


@dataclass(frozen=True)
class ChallengerConfig:
    confirmations: int = 0
    block_range: int = 1000
    poll_interval: float = 1.0
    start_block: int = 0
    challenge_gas: int | None = None  # None: the simulation's estimate (+25 %)
    max_tx_gas: int = 16_777_216  # EIP-7825: a proof over this raises an alarm
    workers: int = 4  # challenge simulations in parallel
    batch_size: int = 256  # claims of one model re-executed per sandbox call
    recheck_interval: float = 3.0  # seconds between on-chain re-checks of proven claims
    retry_unprovable: float = 30.0  # seconds between new attempts at an unprovable wrong result
    quarantine_seconds: float = 3600.0  # a quarantined program is tried again after this long
    audit_models: bool = True  # check every model's ONNX file against its program in the background
    #: fees and replacement of our transactions (a challenge pooled ``stuck_after`` seconds is re-priced)
    fees: FeePolicy = field(default_factory=partial(FeePolicy, stuck_after=12.0))
    play_games: bool = True  # prove wrong results of game-provable models in the dispute game
    games: GamePolicy = field(default_factory=GamePolicy)


class Challenger:
    def __init__(self, client: OracleClient, store: Store, verifier: ClaimVerifier, signer: Signer,
                 config: ChallengerConfig | None = None, metrics: ChallengerMetrics | None = None) -> None:
        self.client = client
        self.w3: Web3 = client.w3
        self.store = store
        self.verifier = verifier
        self.config = config or ChallengerConfig()
        self.metrics = metrics or ChallengerMetrics()
        #: the one owner of our nonce: challenges, game opens and moves, withdrawals
        self.txs = ChallengeTxs(self.w3, store, signer, self.metrics, self.config.fees)
        self.address = self.txs.address
        self.follower = Follower(self.w3, store, confirmations=self.config.confirmations,
                                 block_range=self.config.block_range, start_block=self.config.start_block)
        self.prover = Prover(client, store, self.txs, self.metrics, self._input, workers=self.config.workers,
                             max_tx_gas=self.config.max_tx_gas, challenge_gas=self.config.challenge_gas,
                             recheck_interval=self.config.recheck_interval,
                             retry_unprovable=self.config.retry_unprovable)
        self.txs.settle = self.prover.settle_all
        self._stop = threading.Event()
        self._models: dict[int, Model] = {}
        self._window = 0
        self._reorged = False
        self._auditor: threading.Thread | None = None
        self.games: GamePlayer | None = None

    # ------------------------------------------------------------------ lifecycle
    def setup(self) -> None:
        self._window = self.client.parameters()["challenge_window"]
        self.txs.setup()  # re-broadcasts what is stored in flight, repairs a reorg meanwhile, syncs the nonce
        if self.config.play_games and self.games is None:
            self.games = GamePlayer(self.client, self.store, self.txs, self._input, self.config.games, self.metrics)
        self.warm_up()
        log.info("challenger_started", address=self.address, oracle=self.client.address,
                 cursor=self.store.last_block(), window=self._window, quarantined=self._quarantined())

    def warm_up(self) -> None:
        """Reads and loads every registered EXACT program before the first claim arrives. A program that
        fails is quarantined; nothing here can stop the daemon."""
        quarantined = self._quarantined(self._now())
        self._count_quarantined()
        for model_id in range(1, self.client.model_count() + 1):
            model = self._model(model_id)
            if model.mode is not Mode.EXACT or model.retired or model_id in quarantined:
                continue
            try:
                self.verifier.warm(model)
            except (SandboxFailure, OracleError) as exc:
                self._quarantine(model_id, str(exc))
            except Exception as exc:  # noqa: BLE001 - an RPC fault: the program is loaded at its first claim
                log.warning("warm_up_failed", model_id=model_id, error=str(exc))

    def run(self) -> None:
        try:  # e.g. the RPC endpoint is not up yet: never exit on it
            retry_until_stopped(self.setup, self._stop, Backoff(self.config.poll_interval, MAX_LOOP_BACKOFF),
                                lambda exc: not isinstance(exc, AccountMismatch), lambda exc, delay: log.warning(
                                    "challenger_setup_failed", error=str(exc), retry_in=round(delay, 2)))
        except AccountMismatch:
            self.cleanup()
            raise  # the state file belongs to another key: no retry fixes that
        except Exception:  # noqa: BLE001 - raised only once stopped
            self.cleanup()
            return
        if self._stop.is_set():
            self.cleanup()
            return
        if self.config.audit_models:
            self._auditor = threading.Thread(target=self._audit_loop, name="challenger-audit", daemon=True)
            self._auditor.start()
        backoff = Backoff(self.config.poll_interval, MAX_LOOP_BACKOFF)
        while not self._stop.is_set():
            try:
                caught_up = self.poll()
                self.process()
                backoff.reset()
                if caught_up:
                    self._stop.wait(self.config.poll_interval)
            except Exception as exc:  # noqa: BLE001 - the daemon must survive RPC faults and bad data
                self.metrics.errors.labels(kind=type(exc).__name__).inc()
                delay = backoff.next()
                log.warning("challenger_iteration_failed", error=str(exc), retry_in=round(delay, 2))
                self._stop.wait(delay)
        self.cleanup()

    def stop(self) -> None:
        self._stop.set()

    def cleanup(self) -> None:
        self.close()  # kills an audit in progress instead of waiting for it
        if self._auditor is not None:
            self._auditor.join(timeout=5)
        log.info("challenger_stopped", counts=self.store.counts())

    def close(self) -> None:
        self.prover.close()
        self.verifier.close()

    # ------------------------------------------------------------------ polling
    def poll(self) -> bool:
        """Reads one bounded range of confirmed blocks; returns True when caught up with the head."""
        step = self.follower.step(self._events)
        if step is None:
            return True
        if isinstance(step, Fork):
            undone = self.store.rollback_to(step.number, step.hash)
            self.metrics.reorgs.inc()
            self.txs.resync_nonce()  # our transactions in dropped blocks are re-sent on their nonces
            self._reorged = True
            log.warning("reorg_detected", fork_block=step.number, depth=step.depth, **undone)
            return False
        self._ingest(step)
        self.txs.verify_mined(step.first, step.last)  # ours mined in the range: still there?
        return False

    def _events(self, first: int, last: int) -> list:  # type: ignore[type-arg]
        return [*self.client.requested_events(first, last), *self.client.submitted_events(first, last)]

    def _ingest(self, rng: Range) -> None:
        requests, claims = [], []
        for e in rng.events:
            if hasattr(e, "input"):
                requests.append((e.request_id, e.model_id, e.input, e.block_number))
        known = {r[0]: r[1] for r in requests}
        for e in rng.events:
            if hasattr(e, "output"):
                ts = rng.timestamps[e.block_number]
                model_id = known.get(e.request_id) or self._model_of(e.request_id)
                claims.append((e.request_id, model_id, e.operator, e.output, e.block_number, ts, ts + self._window))
        self.store.advance(requests, claims, rng.cursor, rng.blocks)
        self.metrics.claims_seen.inc(len(claims))
        self.metrics.cursor.set(rng.last)

    def _model_of(self, request_id: int) -> int:
        known = self.store.input_of(request_id)
        if known is not None:
            return known[0]
        return self.client.get_request(request_id).model_id

    def _model(self, model_id: int) -> Model:
        if model_id not in self._models:
            self._models[model_id] = self.client.get_model(model_id)
        return self._models[model_id]

    def _input(self, claim: Claim) -> bytes:
        known = self.store.input_of(claim.request_id)
        if known is not None:
            return known[1]
        # The request predates our start block: look it up by its indexed id.
        logs = self.client.contract.events.InferenceRequested().get_logs(
            from_block=0, to_block=claim.block_number, argument_filters={"requestId": claim.request_id})
        if not logs:
            raise OracleError(f"request {claim.request_id:#x} has no InferenceRequested event")
        data = bytes(logs[0]["args"]["input"])
        self.store.add_request(claim.request_id, claim.model_id, data, logs[0]["blockNumber"])
        return data

    def _now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    # ------------------------------------------------------------------ processing
    def process(self) -> None:
        latest = self.w3.eth.get_block("latest")
        now = int(latest["timestamp"])
        self.prover.track(now, int(latest["number"]))
        self.prover.recheck(now, force=self._reorged)
        self._reorged = False
        self.verify_pending(now)
        if self.games is not None:
            self.games.adopt()
            self.games.step()
        if self.prover.challenge(now):
            self.prover.track(now)  # what mined at once (automining devnets) is settled in this round

    def verify_pending(self, now: int) -> None:
        quarantined = self._quarantined(now)
        by_model: dict[int, list[Claim]] = defaultdict(list)
        for claim in self.store.claims([ClaimState.PENDING]):
            by_model[claim.model_id].append(claim)
        for model_id, claims in by_model.items():
            if self._stop.is_set():
                return
            model = self._model(model_id)
            if model.mode is not Mode.EXACT:
                for c in claims:
                    self.store.set_state(c.request_id, ClaimState.NOT_EXACT)
                continue
            if model_id in quarantined:
                for c in claims:
                    self.prover.alarm(c, "quarantined", f"model {model_id} is quarantined: {quarantined[model_id]}",
                                      ClaimState.QUARANTINED)
                continue
            for k in range(0, len(claims), self.config.batch_size):
                if not self._verify_batch(model, claims[k:k + self.config.batch_size]):
                    break

    def _verify_batch(self, model: Model, claims: list[Claim]) -> bool:
        items, ready = [], []
        for c in claims:
            try:
                items.append((self._input(c), c.output))
                ready.append(c)
            except OracleError as exc:
                self.store.set_state(c.request_id, ClaimState.FAILED, error=str(exc))
        if not ready:
            return True
        started = time.perf_counter()
        try:
            verdicts = self.verifier.verify_many(model, items)
        except (SandboxFailure, OracleError) as exc:
            self._quarantine(model.model_id, str(exc))
            for c in ready:
                self.prover.alarm(c, "quarantined", f"model {model.model_id} quarantined: {exc}",
                                  ClaimState.QUARANTINED)
            return False
        self.metrics.verify_seconds.observe(time.perf_counter() - started)
        for c, v in zip(ready, verdicts, strict=True):
            if isinstance(v, NoVerdict):
                self.prover.alarm(c, "unprovable", f"the reference cannot execute this input: {v.reason}")
            elif v.correct:
                self.metrics.verified_correct.inc()
                self.store.set_state(c.request_id, ClaimState.CORRECT, expected=v.expected)
            else:
                self.metrics.frauds_found.inc()
                log.info("fraud_found", request_id=hex(c.request_id), operator=c.operator,
                         claimed=c.output.hex(), expected=v.expected.hex(), via=v.via)
                self.store.set_state(c.request_id, ClaimState.WRONG, expected=v.expected)
        return True

    # ------------------------------------------------------------------ models
    def _quarantined(self, now: int | None = None) -> dict[int, str]:
        """Models whose program is in quarantine. With ``now`` (chain time), a quarantine older than
        ``quarantine_seconds`` ends: the model's claims still in their window are verified again."""
        out = {}
        for model_id, (since, reason) in self.store.quarantined_since().items():
            if now is not None and time.time() - since >= self.config.quarantine_seconds:
                again = self.store.release(model_id, now)
                log.warning("model_quarantine_ended", model_id=model_id, claims_to_verify=again)
                continue
            out[model_id] = reason or ""
        return out

    def _quarantine(self, model_id: int, reason: str) -> None:
        self.store.set_model(model_id, "program", "quarantined", reason)
        self._count_quarantined()
        log.error("model_quarantined", model_id=model_id, aspect="program", reason=reason)

    def _count_quarantined(self) -> None:
        self.metrics.quarantined_models.set(len({m for (m, _), (status, _) in self.store.models().items()
                                                 if status == "quarantined"}))

    def _audit_loop(self) -> None:
        """Checks each EXACT model's ONNX file against its committed program, in the audit child."""
        while not self._stop.is_set():
            done = self.store.models()
            try:
                count = self.client.model_count()
                for model_id in range(1, count + 1):
                    if self._stop.is_set() or (model_id, "onnx") in done:
                        continue
                    model = self._model(model_id)
                    if model.mode is Mode.EXACT and not model.retired:
                        self._audit(model)
            except Exception as exc:  # noqa: BLE001 - an RPC fault: try again next round
                log.warning("model_audit_failed", error=str(exc))
            self._stop.wait(5.0)

    def _audit(self, model: Model) -> None:
        try:
            status, reason = self.verifier.bind(model), None
        except SandboxFailure as exc:
            status = "quarantined" if exc.kind in ("memory", "timeout", "crash") else "unbound"
            reason = str(exc)
        except OracleError as exc:
            status, reason = "unbound", str(exc)
        if self._stop.is_set():
            return  # stopping (the child may have been killed under the audit): not a verdict on the file
        self.store.set_model(model.model_id, "onnx", status, reason)
        if status != "bound":
            self.metrics.alarms.labels(kind=f"onnx_{status}").inc()
            self._count_quarantined()
            log.error("model_quarantined" if status == "quarantined" else "model_unbound", model_id=model.model_id,
                      aspect="onnx", reason=reason)
