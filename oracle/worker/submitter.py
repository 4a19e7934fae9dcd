"""Submitter: the single owner of the operator account's nonce; every transaction of the node goes through it.

Rules that make ``kill -9`` at any point safe:

- One transaction in flight at a time (one nonce); results and finalizations are batched
  (``submitResults`` / ``finalizeBatch``) so one at a time is still fast.
- A transaction is simulated (``eth_call``) and gas-estimated, signed, then **stored with its jobs' new state
  before it is broadcast**. After a crash the stored bytes are re-broadcast (same hash, same nonce), never
  re-signed with a new nonce, so a request is never submitted twice.
- A transaction without a receipt after ``stuck_after`` seconds is replaced on the same nonce with fees
  bumped by ``fee_bump_percent`` (and at least what the current base fee needs), up to the fee cap.
- "nonce too low" (the nonce was consumed) and "replacement underpriced" (someone else holds the nonce in the
  mempool) re-sync the nonce from the chain; jobs of a dropped transaction go back to be re-checked.
- Requests with fewer than ``min_time_left`` seconds before their deadline are skipped, not sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from eth_account.typed_transactions import TypedTransaction
from hexbytes import HexBytes
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError

from oracle.chain.reverts import from_web3_error
from oracle.chain.tx import replay_revert
from oracle.chain.types import Status
from oracle.worker.db import Database, Job, JobState, TxRecord, TxState
from oracle.worker.metrics import Metrics
from oracle.worker.rpc import Head, Rpc, is_transient

log = structlog.get_logger("oracle.worker.submitter")

GWEI = 10**9


@dataclass(frozen=True)
class FeePolicy:
    max_fee: int = 500 * GWEI  # cap on maxFeePerGas
    priority_fee: int = 1 * GWEI
    bump_percent: int = 25


@dataclass(frozen=True)
class SubmitPolicy:
    batch_size: int = 50
    stuck_after: float = 30.0
    min_time_left: int = 30
    request_timeout: int = 3600
    challenge_window: int = 3600
    max_attempts: int = 3


class Submitter:
    def __init__(self, rpc: Rpc, db: Database, account: Any, metrics: Metrics, *, fees: FeePolicy,
                 policy: SubmitPolicy, clock: Callable[[], float] = time.time) -> None:
        self.rpc = rpc
        self.db = db
        self.account = account
        self.address: str = account.address
        self.metrics = metrics
        self.fees = fees
        self.policy = policy
        self.clock = clock
        self.next_nonce = 0
        self._chain_id: int | None = None
        #: called with every broadcast (tests use it to observe "between broadcast and receipt")
        self.on_broadcast: Callable[[TxRecord], None] | None = None

    # ------------------------------------------------------------------ lifecycle
    def setup(self) -> None:
        """Re-broadcasts stored in-flight transactions and syncs the nonce from the chain."""
        self._chain_id = int(self.rpc.w3.eth.chain_id)
        stored = self.db.get_meta("account")
        if stored is not None and stored.lower() != self.address.lower():
            from oracle.worker.errors import WorkerError

            raise WorkerError(f"database {self.db.path} belongs to account {stored}, not {self.address}; use a "
                              "separate db_path per operator key")
        self.db.set_meta("account", self.address)
        for rec in self._latest_per_nonce():
            self._broadcast(rec, quiet=True)
        self.resync_nonce()

    def resync_nonce(self) -> None:
        pending = self.db.pending_txs()
        chain = int(self.rpc.w3.eth.get_transaction_count(self.address, "pending"))
        floor = max((r.nonce + 1 for r in pending), default=0)
        self.next_nonce = max(chain, floor) if pending else chain
        self.db.set_meta("next_nonce", str(self.next_nonce))
        log.info("nonce_synced", nonce=self.next_nonce)

    def verify_mined(self, first: int, last: int) -> None:
        """Re-checks our transactions mined in ``[first, last]`` as the listener confirms that range; one whose
        receipt vanished or moved was reorganised away: its jobs are re-checked on-chain (and resubmitted)."""
        orphaned = False
        for rec in self.db.mined_txs_between(first, last):
            receipt = self._receipt(rec.tx_hash)
            if receipt is not None and int(receipt["blockNumber"]) == rec.block_number:
                continue
            orphaned = True
            self.db.set_tx_state([rec.tx_hash], TxState.ORPHANED, rec.block_number)
            log.warning("tx_orphaned", tx_hash=rec.tx_hash, nonce=rec.nonce, block=rec.block_number)
            for rid in rec.request_ids:
                job = self.db.job(rid)
                if job is not None and job.tx_hash == rec.tx_hash:
                    self._resolve(job)
        if orphaned:
            self.metrics.reorgs.inc()
            self.resync_nonce()

    @property
    def busy(self) -> bool:
        return bool(self.db.pending_txs())

    # ------------------------------------------------------------------ the loop's entry points
    def tick(self, head: Head) -> bool:
        """Advances the in-flight transaction; returns True while one is still in flight."""
        pending = self._latest_per_nonce()
        if not pending:
            self.sweep_orphan_jobs()
            return False
        for rec in pending:
            self._advance(rec, head)
        return self.busy

    def submit_ready(self, head: Head) -> int:
        """Sends one batch of executed results (if nothing is in flight); returns how many were sent."""
        if self.busy:
            return 0
        jobs = self.db.jobs(JobState.EXECUTED, limit=self.policy.batch_size)
        if not jobs:
            return 0
        fresh: list[Job] = []
        for j in jobs:
            left = j.requested_at + self.policy.request_timeout - head.timestamp
            if left < self.policy.min_time_left:
                self.db.set_state([j.request_id], JobState.SKIPPED,
                                  error=f"too little time left before the deadline ({left} s)")
                self.metrics.requests_skipped.labels(reason="deadline").inc()
                log.info("request_skipped", request_id=hex(j.request_id), reason="deadline", seconds_left=left)
            elif j.attempts > self.policy.max_attempts + 3:
                self.db.set_state([j.request_id], JobState.FAILED, error="submission kept failing")
                self.metrics.requests_failed.labels(reason="submission").inc()
            else:
                fresh.append(j)
        if not fresh:
            return 0
        ids = [j.request_id for j in fresh]
        outs = [j.output or b"" for j in fresh]
        fn = self.rpc.client.submit_batch_fn(ids, outs)
        accepted = self._simulate(fn)
        if accepted is None:  # the batch would revert: the reason is logged, try again later
            self.db.bump_attempts(ids)
            return 0
        if accepted < len(ids):
            keep = self._sort_out_unsubmittable(fresh)
            if not keep:
                return 0
            ids = [j.request_id for j in keep]
            outs = [j.output or b"" for j in keep]
            fn = self.rpc.client.submit_batch_fn(ids, outs)
        return len(ids) if self.send("submit", fn, ids, JobState.SENT, head) else 0

    def send(self, kind: str, fn: ContractFunction, request_ids: Sequence[int], job_state: JobState | None,
             head: Head) -> bool:
        """Estimates, signs, stores, broadcasts one transaction; True when it was stored (and maybe sent)."""
        try:
            gas = int(fn.estimate_gas({"from": self.address}) * 1.2) + 30_000
        except ContractLogicError as exc:
            log.warning("tx_simulation_reverted", kind=kind, error=str(from_web3_error(exc)))
            return False
        priority = self.fees.priority_fee
        max_fee = min(self.fees.max_fee, 2 * head.base_fee + priority)
        priority = min(priority, max_fee)
        rec = self._sign(kind, fn, request_ids, self.next_nonce, gas, max_fee, priority)
        self.db.store_tx(rec, job_state, self.next_nonce + 1)
        self.next_nonce += 1
        self.metrics.txs_sent.labels(kind=kind).inc()
        log.info("tx_stored", kind=kind, tx_hash=rec.tx_hash, nonce=rec.nonce, count=len(request_ids))
        if self._broadcast(rec) == "fee_too_low":
            self._replace(rec, head)
        self._advance(rec, head, fresh=True)
        return True

    # ------------------------------------------------------------------ internals
    def _simulate(self, fn: ContractFunction) -> int | None:
        try:
            return int(fn.call({"from": self.address}))
        except ContractLogicError as exc:
            log.warning("tx_simulation_reverted", kind="submit", error=str(from_web3_error(exc)))
            return None

    def _sort_out_unsubmittable(self, jobs: Sequence[Job]) -> list[Job]:
        """Per-request status check after a simulation accepted fewer than all: keeps only pending ones."""
        keep: list[Job] = []
        for j in jobs:
            if self._resolve(j) is JobState.EXECUTED:
                keep.append(j)
        return keep

    def _resolve(self, job: Job) -> JobState:
        """Decides a job's state from the chain (after a lost race, a drop or a reorg)."""
        rv = self.rpc.client.get_request(job.request_id)
        st = rv.status
        ours = rv.operator.lower() == self.address.lower()
        if st is Status.PENDING:
            state = JobState.EXECUTED
            self.db.set_state([job.request_id], state, tx_hash=None, nonce=None)
        elif st in (Status.SUBMITTED, Status.FINALIZABLE) and ours:
            state = JobState.SUBMITTED
            self.db.set_state([job.request_id], state, challenge_deadline=rv.submitted_at
                              + self.policy.challenge_window)
        elif st is Status.FINALIZED and ours:
            state = JobState.FINALIZED
            self.db.set_state([job.request_id], state)
        elif st is Status.FRAUD_PROVEN and ours:
            state = JobState.FAILED
            self.db.set_state([job.request_id], state, error="our result was proven wrong (slashed)")
        elif st in (Status.EXPIRED, Status.REFUNDED):
            state = JobState.EXPIRED
            self.db.set_state([job.request_id], state, error="deadline passed before our submission")
        elif st is Status.NONE:
            state = JobState.ORPHANED
            self.db.set_state([job.request_id], state, error="request unknown on-chain (reorg?)")
        else:
            state = JobState.LOST
            self.db.set_state([job.request_id], state, error=f"answered by {rv.operator}")
            self.metrics.requests_lost.inc()
        return state

    def _sign(self, kind: str, fn: ContractFunction | None, request_ids: Sequence[int], nonce: int, gas: int,
              max_fee: int, priority: int, base: dict[str, Any] | None = None) -> TxRecord:
        if base is None:
            assert fn is not None
            tx = fn.build_transaction({"from": self.address, "nonce": nonce, "gas": gas, "maxFeePerGas": max_fee,
                                       "maxPriorityFeePerGas": priority, "chainId": self._chain_id or 0,
                                       "type": 2, "value": 0})
        else:
            tx = {**base, "maxFeePerGas": max_fee, "maxPriorityFeePerGas": priority}
        signed = self.account.sign_transaction(tx)
        return TxRecord(signed.hash.to_0x_hex(), nonce, kind, tuple(request_ids), bytes(signed.raw_transaction),
                        max_fee, priority, TxState.PENDING, None, self.clock())

    def _broadcast(self, rec: TxRecord, quiet: bool = False) -> str:
        """Sends the stored bytes; returns "ok", "fee_too_low" (replace with higher fees), "nonce_used" or
        "refused" (the nonce was given up). Transient failures raise unless ``quiet``: the tx stays stored and
        is re-broadcast or found by its receipt later, so a lost response never causes a second submission."""
        try:
            self.rpc.w3.eth.send_raw_transaction(rec.raw)
        except Web3RPCError as exc:
            msg = str(exc).lower()
            if "already known" in msg or "already imported" in msg or "known transaction" in msg:
                pass
            elif "nonce too low" in msg or "nonce is too low" in msg:
                log.info("tx_nonce_consumed", tx_hash=rec.tx_hash, nonce=rec.nonce)  # resolved by _advance
                return "nonce_used"
            elif "underpriced" in msg or "base fee" in msg or "fee cap" in msg or "feecap" in msg:
                log.warning("tx_fee_too_low", tx_hash=rec.tx_hash, nonce=rec.nonce, error=str(exc)[:200])
                return "fee_too_low"
            elif is_transient(exc):
                if not quiet:
                    raise
                return "ok"
            else:
                log.error("tx_broadcast_refused", tx_hash=rec.tx_hash, nonce=rec.nonce, error=str(exc)[:300])
                self._drop_nonce(rec.nonce, f"broadcast refused: {str(exc)[:200]}")
                return "refused"
        except Exception as exc:
            if not quiet or not is_transient(exc):
                raise
            return "ok"
        if self.on_broadcast is not None:
            self.on_broadcast(rec)
        return "ok"

    def _latest_per_nonce(self) -> list[TxRecord]:
        latest: dict[int, TxRecord] = {}
        for rec in self.db.pending_txs():
            if rec.nonce not in latest or rec.sent_at >= latest[rec.nonce].sent_at:
                latest[rec.nonce] = rec
        return [latest[n] for n in sorted(latest)]

    def _receipt(self, tx_hash: str) -> Any:
        try:
            return self.rpc.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
        except TransactionNotFound:
            return None

    def _advance(self, rec: TxRecord, head: Head, fresh: bool = False) -> None:
        siblings = self.db.txs_for_nonce(rec.nonce)
        for sib in sorted(siblings, key=lambda r: -r.sent_at):
            if sib.state is not TxState.PENDING:
                continue
            receipt = self._receipt(sib.tx_hash)
            if receipt is not None:
                self._on_mined(sib, receipt, [s for s in siblings if s.tx_hash != sib.tx_hash])
                return
        if fresh:
            return
        mined_nonce = int(self.rpc.w3.eth.get_transaction_count(self.address, "latest"))
        if mined_nonce > rec.nonce:
            # The nonce is used but none of our hashes has a receipt: check once more, then give it up.
            for sib in siblings:
                receipt = self._receipt(sib.tx_hash)
                if receipt is not None:
                    self._on_mined(sib, receipt, [s for s in siblings if s.tx_hash != sib.tx_hash])
                    return
            self._drop_nonce(rec.nonce, "nonce consumed by another transaction")
            return
        if self.clock() - rec.sent_at >= self.policy.stuck_after:
            self._replace(rec, head)
        elif self._unknown_to_node(rec):
            if self._broadcast(rec, quiet=True) == "fee_too_low":  # evicted for its fee: bump now
                self._replace(rec, head)

    def _unknown_to_node(self, rec: TxRecord) -> bool:
        try:
            self.rpc.w3.eth.get_transaction(HexBytes(rec.tx_hash))
            return False
        except TransactionNotFound:
            return True

    def _replace(self, rec: TxRecord, head: Head) -> None:
        bump = 100 + self.fees.bump_percent
        priority = max(rec.priority_fee * bump // 100 + 1, self.fees.priority_fee)
        max_fee = max(rec.max_fee * bump // 100 + 1, 2 * head.base_fee + priority)
        if max_fee > self.fees.max_fee:
            max_fee = self.fees.max_fee
            if max_fee * 100 < rec.max_fee * (100 + 10):
                log.warning("tx_fee_cap_reached", tx_hash=rec.tx_hash, nonce=rec.nonce, max_fee=self.fees.max_fee)
                return
        priority = min(priority, max_fee)
        base = dict(TypedTransaction.from_bytes(HexBytes(rec.raw)).as_dict())
        for k in ("v", "r", "s", "yParity"):
            base.pop(k, None)
        base.setdefault("type", 2)
        new = self._sign(rec.kind, None, rec.request_ids, rec.nonce, 0, max_fee, priority, base=base)
        self.db.store_tx(new, JobState.SENT if rec.kind == "submit" else
                         (JobState.FINALIZING if rec.kind == "finalize" else None), self.next_nonce)
        self.metrics.txs_replaced.inc()
        log.warning("tx_replaced", old_tx_hash=rec.tx_hash, tx_hash=new.tx_hash, nonce=rec.nonce,
                    max_fee=max_fee, priority_fee=priority)
        self._broadcast(new, quiet=True)

    def _drop_nonce(self, nonce: int, reason: str) -> None:
        siblings = self.db.txs_for_nonce(nonce)
        self.db.set_tx_state([s.tx_hash for s in siblings if s.state is TxState.PENDING], TxState.DROPPED)
        rids = sorted({r for s in siblings for r in s.request_ids})
        log.warning("tx_dropped", nonce=nonce, reason=reason, count=len(rids))
        for rid in rids:
            job = self.db.job(rid)
            if job is not None and job.state in (JobState.SENT, JobState.FINALIZING):
                self._resolve(job)
        self.resync_nonce()

    def _on_mined(self, rec: TxRecord, receipt: Any, siblings: Sequence[TxRecord]) -> None:
        """Applies a receipt. All reads happen first and all writes in one SQLite transaction, so an RPC
        failure half-way leaves the tx pending (re-checked next tick), never a mined tx with stale jobs."""
        block = int(receipt["blockNumber"])
        elapsed = max(0.0, self.clock() - min([rec.sent_at] + [s.sent_at for s in siblings]))
        client = self.rpc.client
        updates: list[tuple[int, JobState, dict[str, Any]]] = []
        recheck: list[int] = []
        if receipt["status"] != 1:
            err = replay_revert(self.rpc.w3, HexBytes(rec.tx_hash), receipt)
            log.error("tx_reverted", kind=rec.kind, tx_hash=rec.tx_hash, error=str(err))
            recheck = list(rec.request_ids)
        elif rec.kind == "submit":
            ours = {int(e["requestId"]): e for e in client.events_in(receipt, "ResultSubmitted")
                    if str(e["operator"]).lower() == self.address.lower()}
            window_end = 0
            if ours:  # the window ends at the submission block's timestamp + CHALLENGE_WINDOW
                window_end = int(self.rpc.w3.eth.get_block(block)["timestamp"]) + self.policy.challenge_window
            for rid, e in ours.items():
                updates.append((rid, JobState.SUBMITTED, {"tx_hash": rec.tx_hash, "submit_block": block,
                                                          "challenge_deadline": int(e.get("challengeDeadline",
                                                                                          window_end))}))
            recheck = [r for r in rec.request_ids if r not in ours]
        elif rec.kind == "finalize":
            done = {int(e["requestId"]) for e in client.events_in(receipt, "RequestFinalized")}
            updates = [(rid, JobState.FINALIZED, {}) for rid in sorted(done)]
            recheck = [r for r in rec.request_ids if r not in done]
        with self.db.tx() as c:
            self.db.set_tx_state([rec.tx_hash], TxState.MINED, block, conn=c)
            self.db.set_tx_state([s.tx_hash for s in siblings if s.state is TxState.PENDING], TxState.REPLACED,
                                 conn=c)
            for rid, state, fields in updates:
                self.db.set_state([rid], state, conn=c, **fields)
            if receipt["status"] != 1:
                c.executemany("UPDATE jobs SET attempts=attempts+1 WHERE request_id=?",
                              [(f"0x{r:064x}",) for r in recheck])
        self.metrics.submission_seconds.observe(elapsed)
        log.info("tx_mined", kind=rec.kind, tx_hash=rec.tx_hash, nonce=rec.nonce, block=block,
                 status=int(receipt["status"]))
        if rec.kind == "submit":
            self.metrics.requests_submitted.inc(len(updates))
        elif rec.kind == "finalize":
            self.metrics.requests_finalized.inc(len(updates))
        self.sweep_orphan_jobs(recheck)

    def sweep_orphan_jobs(self, request_ids: Sequence[int] | None = None) -> None:
        """Jobs left in SENT / FINALIZING without a pending transaction are re-checked on-chain (also the
        recovery path if a previous run died between two writes)."""
        if request_ids is None:
            if self.db.pending_txs():
                return
            jobs = self.db.jobs(JobState.SENT, 500) + self.db.jobs(JobState.FINALIZING, 500)
        else:
            jobs = [j for j in (self.db.job(r) for r in request_ids) if j is not None]
        for job in jobs:
            if job.state in (JobState.SENT, JobState.FINALIZING, JobState.EXECUTED, JobState.SUBMITTED):
                self._resolve(job)
