"""From a wrong result to fraud proven on-chain, without ever waiting on one transaction.

- :meth:`Prover.challenge` simulates every ``wrong`` claim once (``eth_estimateGas``, several at a time), sends
  the ones the chain accepts and returns: the estimate is the gas limit, nothing is simulated twice;
- :meth:`Prover.track` advances every challenge in flight without blocking, through the shared transaction
  manager (:class:`oracle.challenger.txs.ChallengeTxs`): mined → ``proven`` (or settled from the request's
  on-chain status); still pooled too long → replaced on its nonce with higher fees; dropped from the pool or
  by a reorg → re-sent on its nonce; nonce used by something else → settled, and sent anew if still open;
- :meth:`Prover.recheck` asks the chain (``statusOf``) about every ``proven`` claim until its window is
  over: a proof that a reorg dropped sends the claim back to be tracked and re-sent while the window is open.

A refused simulation is classified: ``ResultIsCorrect`` (the chain disagrees with our re-execution: alarm,
never sent), window closed (``missed``), already resolved by someone else (``lost_race``), anything else while
the result is still challengeable, or a proof that needs more gas than fits (``unprovable``: alarm, log, metric; retried
while the window is open in case the cause goes away).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog
from web3.exceptions import ContractLogicError

from oracle.chain.client import OracleClient
from oracle.chain.gas import gas_limit
from oracle.chain.reverts import from_web3_error
from oracle.chain.txstore import TxState
from oracle.challenger.metrics import ChallengerMetrics
from oracle.challenger.store import Claim, ClaimState, Store, claim_state_for
from oracle.challenger.txs import CHALLENGE, ChallengeTxs
from oracle.errors import ContractRevert, OracleError
from oracle.lifecycle import Status, is_challengeable

log = structlog.get_logger("oracle.challenger")


class ProofTooBig(OracleError):
    """The node will not run the proof: it needs more gas than a block (or a transaction) may use."""


class Prover:
    def __init__(self, client: OracleClient, store: Store, txs: ChallengeTxs, metrics: ChallengerMetrics,
                 input_of: Callable[[Claim], bytes], *, workers: int = 4, max_tx_gas: int = 16_777_216,
                 challenge_gas: int | None = None, recheck_interval: float = 3.0,
                 retry_unprovable: float = 30.0) -> None:
        self.client = client
        self.store = store
        self.txs = txs
        self.metrics = metrics
        self.input_of = input_of
        self.max_tx_gas = max_tx_gas
        self.challenge_gas = challenge_gas
        self.recheck_interval = recheck_interval
        self.retry_unprovable = retry_unprovable
        self._bounds: dict[int, int] = {}
        self._last_retry = 0.0
        self._tracked = (-1, 0.0)  # (head, when) of the last look at challenges in flight
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="challenge-sim")
        self._last_recheck = 0.0

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ sending
    def _simulate(self, fn: Any) -> int | Exception:
        try:
            return int(fn.estimate_gas({"from": self.txs.address}))
        except ContractLogicError as exc:
            return from_web3_error(exc)
        except Exception as exc:  # noqa: BLE001 - RPC trouble (retried next round) or a proof that cannot fit
            if any(m in str(exc).lower() for m in ("gas required exceeds", "out of gas")):
                return ProofTooBig(f"the proof does not fit: {exc}")
            return exc

    def challenge(self, now: int) -> int:
        """Simulates and sends a challenge for every ``wrong`` claim, and every ``retry_unprovable`` seconds for
        the unprovable ones whose window is open (the alarm stays raised); returns how many were sent."""
        due = self.store.claims([ClaimState.WRONG])
        if time.monotonic() - self._last_retry >= self.retry_unprovable:
            self._last_retry = time.monotonic()
            due += [c for c in self.store.claims([ClaimState.UNPROVABLE]) if c.deadline > now]
        jobs = []
        for claim in due:
            try:
                jobs.append((claim, self.client.challenge_fn(claim.request_id, self.input_of(claim))))
            except OracleError as exc:
                self.store.set_state(claim.request_id, ClaimState.FAILED, error=str(exc))
        if not jobs:
            return 0
        block_gas = int(self.client.w3.eth.get_block("latest")["gasLimit"])
        sent = 0
        for (claim, fn), est in zip(jobs, self._pool.map(self._simulate, [fn for _, fn in jobs]), strict=True):
            if isinstance(est, ContractRevert) and est.name == "EmptyRevert":
                # Out of gas inside the verifier's call reverts without data: read the registered bound.
                bound = self._proof_bound(claim.model_id)
                if bound > block_gas:
                    est = ProofTooBig(f"the proof does not fit: it may need {bound} gas, over the block gas limit "
                                      f"{block_gas}")
            if isinstance(est, ContractRevert):
                self.refused(claim, est)
            elif isinstance(est, ProofTooBig):
                self.alarm(claim, "unprovable", str(est))
            elif isinstance(est, Exception):
                self.metrics.errors.labels(kind=type(est).__name__).inc()
                log.warning("challenge_simulation_failed", request_id=hex(claim.request_id), error=str(est))
            elif self._send(claim, fn, est, block_gas, now):
                sent += 1
        return sent

    def _proof_bound(self, model_id: int) -> int:
        """The registry's bound on a challenge of ``model_id`` (registrations are immutable: cached)."""
        bound = self._bounds.get(model_id)
        if bound is None:
            bound = self._bounds[model_id] = self.client.proof_gas_bound(model_id)[0]
        return bound

    def _gas_limit(self, estimate: int) -> int:
        """Gas limit of a proof: the estimate with margin, but never over the per-transaction cap (EIP-7825
        refuses the transaction outright) unless the estimate itself is over it (then only a chain without the
        cap can take it, and an alarm has been raised)."""
        wanted = self.challenge_gas or gas_limit(estimate)
        return min(wanted, max(self.max_tx_gas, estimate))

    def _send(self, claim: Claim, fn: Any, estimate: int, block_gas: int, now: int) -> bool:
        if estimate > block_gas:
            self.alarm(claim, "unprovable", f"the proof needs {estimate} gas, over the block gas limit {block_gas}")
            return False
        if estimate > self.max_tx_gas:
            self.metrics.alarms.labels(kind="proof_over_tx_cap").inc()
            log.error("alarm", kind="proof_over_tx_cap", request_id=hex(claim.request_id), gas=estimate,
                      cap=self.max_tx_gas)
        gas = min(self._gas_limit(estimate), block_gas)
        try:  # stored with the claim ``challenging`` before it is broadcast
            tx = self.txs.send(CHALLENGE, fn, [claim.request_id], ClaimState.CHALLENGING, self.txs.rpc.head(),
                               gas=gas)
        except Exception as exc:  # noqa: BLE001 - stored already: re-broadcast or settled by the manager
            self.metrics.errors.labels(kind="send").inc()
            log.warning("challenge_send_failed", request_id=hex(claim.request_id), error=str(exc))
            return False
        assert tx is not None  # the gas is given: nothing was simulated, so nothing was refused
        refused = self.txs.refusals.pop(tx.tx_hash, None)
        if refused is not None:
            if "gas" in refused.lower() and ("cap" in refused.lower() or "exceed" in refused.lower()):
                self.alarm(self.store.claim(claim.request_id) or claim, "unprovable",
                           f"the node refused the proof transaction: {refused}")
            return False
        margin = claim.deadline - now
        self.metrics.margin_seconds.observe(max(margin, 0))
        self.metrics.challenges_sent.inc()
        log.info("challenge_sent", request_id=hex(claim.request_id), tx=tx.tx_hash, nonce=tx.nonce,
                 margin_seconds=margin)
        return True

    def alarm(self, claim: Claim, kind: str, reason: str, state: ClaimState = ClaimState.UNPROVABLE) -> None:
        """Moves a claim to an alarming state; raised (metric, error log) once per claim and state."""
        if claim.state is not state:
            self.metrics.alarms.labels(kind=kind).inc()
            log.error("alarm", kind=kind, request_id=hex(claim.request_id), model_id=claim.model_id,
                      operator=claim.operator, deadline=claim.deadline, reason=reason)
        self.store.set_state(claim.request_id, state, expected=claim.expected, error=reason)

    def refused(self, claim: Claim, err: ContractRevert) -> None:
        """The chain would revert our challenge: why, and what that means for the claim."""
        if err.name == "ResultIsCorrect":
            log.error("local_reexecution_disagrees_with_chain", request_id=hex(claim.request_id))
            self.alarm(claim, "chain_disagrees", "the chain's re-execution agrees with the claim; not challenged",
                       ClaimState.CORRECT)
            return
        if err.name == "ChallengeWindowClosed":
            self.metrics.missed.inc()
            self.store.set_state(claim.request_id, ClaimState.MISSED, error=err.name)
            return
        self.settle_by_status(claim, f"challenge refused: {err.name or err}", refused=True)

    def settle_by_status(self, claim: Claim, why: str, refused: bool = False) -> None:
        status = self.client.status_of(claim.request_id)
        block = self._proven_by_us(claim) if status is Status.FRAUD_PROVEN else None
        state = claim_state_for(status, proven_by_us=block is not None, refused=refused)
        if state is ClaimState.PROVEN:
            self.store.set_state(claim.request_id, state, tx_block=block)
        elif state is ClaimState.LOST_RACE:
            self.store.set_state(claim.request_id, state, error="proven by another challenger")
        elif state is ClaimState.UNPROVABLE:
            self.alarm(claim, "unprovable", f"{why} while the result is still challengeable")
        elif state is ClaimState.MISSED:
            self.metrics.missed.inc()
            self.store.set_state(claim.request_id, state, error=f"{why}; on-chain status {status.name}")
        elif is_challengeable(status):
            self.store.set_state(claim.request_id, state, error=why)  # send again
        else:  # the submission is not on the chain we see (a reorg under way): decide on a later round
            self.store.set_state(claim.request_id, state, error=f"{why}; on-chain status {status.name}")

    def _proven_by_us(self, claim: Claim) -> int | None:
        logs = self.client.contract.events.FraudProven().get_logs(
            from_block=claim.block_number, argument_filters={"requestId": claim.request_id})
        ours = [e for e in logs if e["args"]["challenger"] == self.txs.address]
        return int(ours[-1]["blockNumber"]) if ours else None

    # ------------------------------------------------------------------ in flight
    def track(self, now: int, head: int | None = None) -> None:
        """Advances our transactions in flight (the manager re-sends, replaces, repairs reorgs) and settles the
        challenges it cannot carry on; with ``head``, only when a block arrived since the last look or a second
        has passed (a pool can drop a transaction between blocks)."""
        if head is not None and head == self._tracked[0] and time.monotonic() - self._tracked[1] < 1.0:
            return
        self._tracked = (head if head is not None else -1, time.monotonic())
        self.txs.tick(self.txs.rpc.head())
        flying = self.store.claims([ClaimState.CHALLENGING], orphaned=True)
        self.metrics.in_flight.set(len(flying))
        for claim in flying:
            try:
                self._track(claim, now)
            except OracleError as exc:
                log.warning("challenge_tracking_failed", request_id=hex(claim.request_id), error=str(exc))

    def _track(self, claim: Claim, now: int) -> None:
        rec = self.txs.record(claim.tx_hash) if claim.tx_hash else None
        if rec is not None and rec.state in (TxState.PENDING, TxState.ORPHANED):
            if now >= claim.deadline:  # else the manager carries it (replaced, re-sent, re-included)
                self.settle_by_status(claim, "window closed with the challenge unmined")
            return
        if rec is not None and rec.state is TxState.MINED:
            receipt = self.txs.receipt(rec.tx_hash)
            if receipt is None:
                return  # its block was reorganised away: the manager re-sends it on its next tick
            if int(receipt["status"]) == 1:
                self.store.set_state(claim.request_id, ClaimState.PROVEN, tx_block=int(receipt["blockNumber"]))
            else:
                self.settle_by_status(claim, "challenge reverted on-chain")
            return
        self.settle_by_status(claim, "challenge nonce used by another transaction")

    def settle_all(self, request_ids: Sequence[int], why: str) -> None:
        """Settles from the chain the claims whose challenge the manager gave up (reverted, nonce taken)."""
        for r in request_ids:
            claim = self.store.claim(r)
            if claim is not None and claim.state is ClaimState.CHALLENGING:
                self.settle_by_status(claim, why)

    # ------------------------------------------------------------------ after proof
    def recheck(self, now: int, force: bool = False) -> int:
        """Re-reads the on-chain status of proven claims whose window is not over; returns how many proofs
        had vanished (each goes back to be tracked and re-sent)."""
        if not force and time.monotonic() - self._last_recheck < self.recheck_interval:
            return 0
        self._last_recheck = time.monotonic()
        vanished = 0
        for claim in self.store.claims([ClaimState.PROVEN], settled=False):
            status = self.client.status_of(claim.request_id)
            if status is Status.FRAUD_PROVEN:
                if now >= claim.deadline:
                    self.store.set_state(claim.request_id, ClaimState.PROVEN, tx_block=claim.tx_block, settled=True)
                continue
            vanished += 1
            self.metrics.challenges_resent.labels(reason="reorg").inc()
            log.warning("proof_vanished", request_id=hex(claim.request_id), status=status.name,
                        seconds_left=claim.deadline - now)
            self.store.set_state(claim.request_id, ClaimState.CHALLENGING, error=f"proof gone; status {status.name}")
        return vanished
