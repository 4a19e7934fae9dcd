"""The challenger daemon: watch attested results, re-execute, challenge the wrong ones early.

Lifecycle like every daemon here: ``setup`` (load state), ``run`` (loop until stopped), ``stop``,
``cleanup``. Each iteration:

1. **poll** confirmed blocks ``[cursor+1, head-confirmations]`` in bounded ranges; the first block's parent
   must be the stored cursor hash, else a reorg: rewind ``reorg_rewind`` blocks and re-read (idempotent);
2. **process** pending claims, earliest deadline first: skip what is no longer challengeable on-chain,
   re-execute (:mod:`oracle.challenger.verify`), and for a wrong result simulate the challenge with
   ``eth_call`` and send it. A claim whose window is about to close is still tried; the margin is recorded.

State lives in SQLite (:mod:`oracle.challenger.store`), so a restart resumes mid-window.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import structlog
from web3 import Web3
from web3.exceptions import ContractLogicError

from oracle.chain.client import OracleClient
from oracle.chain.reverts import from_web3_error
from oracle.chain.tx import Signer, address_of, send
from oracle.chain.types import Mode, Model, Status
from oracle.challenger.metrics import ChallengerMetrics
from oracle.challenger.store import Claim, ClaimState, Store
from oracle.challenger.verify import ClaimVerifier
from oracle.errors import ContractRevert, OracleError

log = structlog.get_logger("oracle.challenger")


@dataclass(frozen=True)
class ChallengerConfig:
    confirmations: int = 0
    block_range: int = 1000
    poll_interval: float = 1.0
    reorg_rewind: int = 64
    start_block: int = 0
    challenge_gas: int | None = None  # None: estimate (which also simulates)


class Challenger:
    def __init__(self, client: OracleClient, store: Store, verifier: ClaimVerifier, signer: Signer,
                 config: ChallengerConfig | None = None, metrics: ChallengerMetrics | None = None) -> None:
        self.client = client
        self.w3: Web3 = client.w3
        self.store = store
        self.verifier = verifier
        self.signer = signer
        self.address = address_of(signer)
        self.config = config or ChallengerConfig()
        self.metrics = metrics or ChallengerMetrics()
        self._stop = threading.Event()
        self._models: dict[int, Model] = {}
        self._window = 0
        self._timestamps: dict[int, int] = {}

    # ------------------------------------------------------------------ lifecycle
    def setup(self) -> None:
        self._window = self.client.parameters()["challenge_window"]
        self.warm_up()
        log.info("challenger_started", address=self.address, oracle=self.client.address,
                 cursor=self.store.cursor(), window=self._window)

    def warm_up(self) -> None:
        """Loads every registered EXACT model before the first claim arrives: the first challenge must not
        wait for a model download, an onnxruntime start-up and a program read while its window runs."""
        for model_id in range(1, self.client.model_count() + 1):
            model = self._model(model_id)
            if model.mode is not Mode.EXACT or model.retired:
                continue
            try:
                self.verifier.warm(model)
            except OracleError as exc:
                log.warning("warm_up_failed", model_id=model_id, error=str(exc))

    def run(self) -> None:
        self.setup()
        backoff = self.config.poll_interval
        while not self._stop.is_set():
            try:
                caught_up = self.poll()
                self.process()
                backoff = self.config.poll_interval
                if caught_up:
                    self._stop.wait(self.config.poll_interval)
            except Exception as exc:  # noqa: BLE001 - the daemon must survive RPC faults and bad data
                self.metrics.errors.labels(kind=type(exc).__name__).inc()
                log.warning("challenger_iteration_failed", error=str(exc), retry_in=backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
        self.cleanup()

    def stop(self) -> None:
        self._stop.set()

    def cleanup(self) -> None:
        log.info("challenger_stopped", counts=self.store.counts())

    # ------------------------------------------------------------------ polling
    def _block_hash(self, number: int) -> str:
        return Web3.to_hex(self.w3.eth.get_block(number)["hash"])

    def _timestamp(self, number: int) -> int:
        if number not in self._timestamps:
            self._timestamps[number] = int(self.w3.eth.get_block(number)["timestamp"])
        return self._timestamps[number]

    def poll(self) -> bool:
        """Reads one bounded range of confirmed blocks; returns True when caught up with the head."""
        head = self.w3.eth.block_number - self.config.confirmations
        cursor = self.store.cursor()
        if cursor is None:
            start = max(self.config.start_block, 0)
            cursor = (start - 1, self._block_hash(start - 1) if start > 0 else "0x" + "00" * 32)
        number, known_hash = cursor
        if number >= head:
            return True
        first = number + 1
        if number >= 0:
            parent = Web3.to_hex(self.w3.eth.get_block(first)["parentHash"])
            if parent != known_hash:
                back = max(number - self.config.reorg_rewind, self.config.start_block - 1)
                dropped = self.store.rewind(back, self._block_hash(back) if back >= 0 else "0x" + "00" * 32)
                log.warning("reorg_detected", at_block=first, rewound_to=back, dropped_claims=dropped)
                return False
        last = min(head, number + self.config.block_range)
        requests = [(e.request_id, e.model_id, e.input, e.block_number)
                    for e in self.client.requested_events(first, last)]
        claims = []
        for e in self.client.submitted_events(first, last):
            ts = self._timestamp(e.block_number)
            claims.append((e.request_id, self._model_of(e.request_id), e.operator, e.output, e.block_number, ts,
                           ts + self._window))
        last_hash = self._block_hash(last)
        self.store.advance(requests, claims, (last, last_hash))
        self.metrics.claims_seen.inc(len(claims))
        self.metrics.cursor.set(last)
        return last >= head

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

    # ------------------------------------------------------------------ processing
    def process(self) -> None:
        for claim in self.store.claims([ClaimState.CHALLENGING]):
            self._recheck_sent(claim)
        for claim in self.store.claims([ClaimState.PENDING]):
            if self._stop.is_set():
                return
            try:
                self._process(claim)
            except OracleError as exc:
                self.metrics.errors.labels(kind=type(exc).__name__).inc()
                log.warning("claim_failed", request_id=hex(claim.request_id), error=str(exc))
                self.store.set_state(claim.request_id, ClaimState.FAILED, error=str(exc))

    def _now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def _process(self, claim: Claim) -> None:
        model = self._model(claim.model_id)
        if model.mode is not Mode.EXACT:
            self.store.set_state(claim.request_id, ClaimState.NOT_EXACT)
            return
        status = self.client.status_of(claim.request_id)
        if status is Status.FRAUD_PROVEN:
            # Possibly our own challenge, sent just before a crash that lost its record.
            ours = self._proven_by_us(claim.request_id)
            self.store.set_state(claim.request_id, ClaimState.PROVEN if ours else ClaimState.LOST_RACE,
                                 error=None if ours else "proven by another challenger")
            return
        if status is not Status.SUBMITTED:
            self.store.set_state(claim.request_id, ClaimState.MISSED if status in (Status.FINALIZABLE,
                                 Status.FINALIZED) else ClaimState.LOST_RACE, error=f"on-chain status {status.name}")
            return
        data = self._input(claim)
        started = time.perf_counter()
        verdict = self.verifier.verify(model, data, claim.output)
        self.metrics.verify_seconds.observe(time.perf_counter() - started)
        if verdict.correct:
            self.metrics.verified_correct.inc()
            self.store.set_state(claim.request_id, ClaimState.CORRECT, expected=verdict.expected)
            return
        self.metrics.frauds_found.inc()
        log.info("fraud_found", request_id=hex(claim.request_id), operator=claim.operator,
                 claimed=claim.output.hex(), expected=verdict.expected.hex(), via=verdict.via)
        self._challenge(claim, data, verdict.expected)

    def _proven_by_us(self, request_id: int) -> bool:
        logs = self.client.contract.events.FraudProven().get_logs(
            from_block=0, argument_filters={"requestId": request_id})
        return any(entry["args"]["challenger"] == self.address for entry in logs)

    def _challenge(self, claim: Claim, data: bytes, expected: bytes) -> None:
        fn = self.client.challenge_fn(claim.request_id, data)
        try:
            # Simulation: the chain itself re-executes; only a proof that would succeed is ever sent. The
            # estimate is reused as the gas limit, so the proof is not simulated a second time.
            estimate = fn.estimate_gas({"from": self.address})
        except ContractLogicError as exc:
            err = from_web3_error(exc)
            self._settle_refused(claim, err, expected)
            return
        margin = claim.deadline - self._now()
        self.metrics.margin_seconds.observe(max(margin, 0))
        try:
            gas = self.config.challenge_gas or int(estimate * 1.25) + 50_000
            receipt = send(self.w3, fn, self.signer, gas=gas, wait=False)
            tx_hash = Web3.to_hex(receipt["transactionHash"])
            self.store.set_state(claim.request_id, ClaimState.CHALLENGING, expected=expected, tx_hash=tx_hash)
            self.metrics.challenges_sent.inc()
            log.info("challenge_sent", request_id=hex(claim.request_id), tx=tx_hash, margin_seconds=margin)
            mined = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
        except ContractRevert as err:
            self._settle_refused(claim, err, expected)
            return
        self._settle_receipt(claim, mined, expected)

    def _settle_receipt(self, claim: Claim, receipt: Any, expected: bytes) -> None:
        if receipt["status"] == 1:
            self.metrics.challenges_won.inc()
            self.store.set_state(claim.request_id, ClaimState.PROVEN, expected=expected)
            log.info("fraud_proven", request_id=hex(claim.request_id), operator=claim.operator)
            return
        # Failed on-chain (lost a race?): decide from the current status.
        status = self.client.status_of(claim.request_id)
        state = ClaimState.LOST_RACE if status is not Status.SUBMITTED else ClaimState.PENDING
        self.store.set_state(claim.request_id, state, error=f"challenge reverted; status {status.name}")

    def _settle_refused(self, claim: Claim, err: ContractRevert, expected: bytes) -> None:
        if err.name == "ResultIsCorrect":
            # The chain says the claim is right: our local run disagreed. Never challenge it.
            log.error("local_reexecution_disagrees_with_chain", request_id=hex(claim.request_id))
            self.store.set_state(claim.request_id, ClaimState.CORRECT, error="chain re-execution agrees with claim")
        elif err.name == "ChallengeWindowClosed":
            self.metrics.missed.inc()
            self.store.set_state(claim.request_id, ClaimState.MISSED, expected=expected, error=err.name)
        else:
            self.store.set_state(claim.request_id, ClaimState.LOST_RACE, expected=expected, error=err.name)

    def _recheck_sent(self, claim: Claim) -> None:
        """After a restart: did the challenge we sent land?"""
        receipt = None
        if claim.tx_hash:
            try:
                receipt = self.w3.eth.get_transaction_receipt(claim.tx_hash)  # type: ignore[arg-type]
            except Exception:  # noqa: BLE001 - unknown or not yet mined
                receipt = None
        if receipt is not None:
            self._settle_receipt(claim, receipt, claim.expected or b"")
            return
        status = self.client.status_of(claim.request_id)
        if status is Status.SUBMITTED:
            self.store.set_state(claim.request_id, ClaimState.PENDING, error="challenge not mined; retrying")
        else:
            self.store.set_state(claim.request_id, ClaimState.LOST_RACE, error=f"status {status.name}")
