"""Transaction manager: the single owner of the operator account's nonce (sign, store, broadcast, replace,
receipts, reorg recovery). :class:`~oracle.worker.submitter.Submitter` adds what the transactions mean for jobs.

Rules that make ``kill -9`` at any point safe:

- A transaction is gas-estimated, signed, then **stored with its jobs' new state before it is broadcast**.
  After a crash the stored bytes are re-broadcast (same hash, same nonce), never re-signed with a new nonce,
  so a request is never submitted twice.
- A transaction without a receipt after ``stuck_after`` seconds is replaced on the same nonce with fees bumped
  by ``bump_percent`` (and at least what the current base fee needs), up to the fee cap. Only the lowest
  unmined nonce is ever replaced: a later one cannot mine before it, so bumping it would only burn fees.
- "nonce too low" (the nonce was consumed) and "replacement underpriced" (someone else holds the nonce in the
  mempool) re-sync the nonce from the chain; jobs of a dropped transaction go back to be re-checked.

Reorgs (the "nonce wedge"): a reorg can drop transactions of ours that were mined while a later one is still in
flight; the later one can then never mine. :meth:`TxManager.reconcile` runs whenever the chain's mined nonce is
below a nonce we hold without a pending transaction for it (checked on every tick with one RPC), and after every
reorg the listener detects. It recognises transactions the new branch re-included (their receipt is back: they
are applied again, never left ``orphaned``), and re-sends the dropped ones, lowest nonce first, with the same
signed bytes (fees bumped by the usual replacement if the base fee rose), so no nonce is ever left as a gap; a
nonce none of our stored transactions can fill gets a zero-value self-transfer. Their jobs follow them again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import structlog
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from hexbytes import HexBytes
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError
from web3.types import TxParams

from oracle.chain.gas import gas_limit
from oracle.chain.reverts import from_web3_error
from oracle.worker.db import Database, JobState, TxRecord, TxState
from oracle.worker.metrics import Metrics
from oracle.worker.rpc import Head, Rpc, is_transient

log = structlog.get_logger("oracle.worker.txmanager")

GWEI = 10**9

#: the job state a transaction kind puts its jobs in while it is in flight, and the states it takes them from
#: when a dropped transaction is re-sent
IN_FLIGHT = {"submit": JobState.SENT, "finalize": JobState.FINALIZING}
REVIVE_FROM = {"submit": (JobState.EXECUTED, JobState.SENT, JobState.SUBMITTED),
               "finalize": (JobState.SUBMITTED, JobState.FINALIZING, JobState.FINALIZED)}


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


class TxManager:
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
        # a transport failure the RPC layer retried in place is still a fault the node saw: count it
        rpc.on_retry = lambda _exc: metrics.rpc_errors.inc()
        #: called with every broadcast (tests use it to observe "between broadcast and receipt")
        self.on_broadcast: Callable[[TxRecord], None] | None = None

    # ------------------------------------------------------------------ what the subclass says about jobs
    def _apply_receipt(self, rec: TxRecord, receipt: Any) -> tuple[list[tuple[int, JobState, dict[str, Any]]],
                                                                   list[int]]:
        """(job updates, request ids to re-check) for a mined transaction; reads only, no writes."""
        return [], list(rec.request_ids)

    def _recheck(self, request_ids: Sequence[int]) -> None:
        """Re-reads the on-chain state of these jobs (after a drop, a revert or a reorg)."""

    # ------------------------------------------------------------------ lifecycle
    def setup(self) -> None:
        """Re-broadcasts stored in-flight transactions, repairs what a reorg did meanwhile, syncs the nonce."""
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
        """Repairs the nonce sequence after a reorg or a drop (:meth:`reconcile`), then syncs the next nonce."""
        self.reconcile()
        pending = self.db.pending_txs()
        chain = int(self.rpc.w3.eth.get_transaction_count(Web3.to_checksum_address(self.address), "pending"))
        floor = max((r.nonce + 1 for r in pending), default=0)
        self.next_nonce = max(chain, floor) if pending else chain
        self.db.set_meta("next_nonce", str(self.next_nonce))
        log.info("nonce_synced", nonce=self.next_nonce)

    def verify_mined(self, first: int, last: int) -> None:
        """Re-checks our transactions mined in ``[first, last]`` as the listener confirms that range; one whose
        receipt vanished or moved was reorganised away (see :meth:`reconcile`)."""
        orphaned = []
        for rec in self.db.mined_txs_between(first, last):
            receipt = self._receipt(rec.tx_hash)
            if receipt is not None and int(receipt["blockNumber"]) == rec.block_number:
                continue
            orphaned.append(rec.tx_hash)
            log.warning("tx_orphaned", tx_hash=rec.tx_hash, nonce=rec.nonce, block=rec.block_number)
        if orphaned:
            self.db.set_tx_state(orphaned, TxState.ORPHANED)
            self.metrics.reorgs.inc()
            self.resync_nonce()

    @property
    def busy(self) -> bool:
        return bool(self.db.pending_txs())

    def tick(self, head: Head) -> bool:
        """Advances the in-flight transactions (and repairs a nonce gap); True while one is still in flight."""
        latest = int(self.rpc.w3.eth.get_transaction_count(Web3.to_checksum_address(self.address), "latest"))
        if self._has_gap(latest) or self.db.txs_in_state(TxState.ORPHANED):  # also after a half-done repair
            self.reconcile(latest)
        pending = self._latest_per_nonce()
        if not pending:
            self._recheck_stale()
            return False
        for rec in pending:
            self._advance(rec, head, latest)
        return self.busy

    def _recheck_stale(self) -> None:
        """Hook: jobs left in flight without a pending transaction (see the Submitter)."""

    # ------------------------------------------------------------------ reorg recovery
    def _has_gap(self, latest: int) -> bool:
        """True when a nonce at or above the mined one was used by us and has no pending transaction."""
        top = self.db.top_nonce()
        if top is None or top < latest:
            return False
        pending = {r.nonce for r in self.db.pending_txs()}
        return any(n not in pending for n in range(latest, top + 1))

    def reconcile(self, latest: int | None = None) -> int:
        """Re-applies transactions a reorg re-included and re-sends, in nonce order, those it dropped; returns
        how many were re-sent. Idempotent, and safe on a lagging endpoint (a stale count only costs receipts)."""
        if latest is None:
            latest = int(self.rpc.w3.eth.get_transaction_count(Web3.to_checksum_address(self.address), "latest"))
        # 1. orphaned records: re-included on the new branch, consumed by a sibling, or to be re-sent below
        for rec in self.db.txs_in_state(TxState.ORPHANED):
            siblings = self.db.txs_for_nonce(rec.nonce)
            for cand in [rec] + [s for s in siblings if s.tx_hash != rec.tx_hash and s.state is TxState.PENDING]:
                receipt = self._receipt(cand.tx_hash)
                if receipt is not None:
                    log.info("tx_reincluded", tx_hash=cand.tx_hash, nonce=cand.nonce, block=receipt["blockNumber"])
                    self._on_mined(cand, receipt, [s for s in siblings if s.tx_hash != cand.tx_hash])
                    break
            else:
                if rec.nonce < latest:  # the nonce went to a transaction we do not know of: re-check its jobs
                    self.db.set_tx_state([rec.tx_hash], TxState.DROPPED)
                    log.warning("tx_dropped", nonce=rec.nonce, reason="orphaned; nonce used by another tx")
                    self._recheck(rec.request_ids)
        # 2. every nonce from the mined one up to the highest we used must have a pending transaction
        top = self.db.top_nonce()
        if top is None or top < latest:
            return 0
        resent = 0
        for n in range(latest, top + 1):
            recs = self.db.txs_for_nonce(n)
            if any(r.state is TxState.PENDING for r in recs):
                continue
            if any(r.state is TxState.MINED for r in recs):
                mined = next(r for r in recs if r.state is TxState.MINED)
                if self._receipt(mined.tx_hash) is not None:
                    continue  # still mined: the count we read lags behind
                self.db.set_tx_state([mined.tx_hash], TxState.ORPHANED)
                log.warning("tx_orphaned", tx_hash=mined.tx_hash, nonce=n, block=mined.block_number)
                recs = self.db.txs_for_nonce(n)
            revive = [r for r in recs if r.state is TxState.ORPHANED]
            if revive:
                rec = max(revive, key=lambda r: r.sent_at)
                ids = self.db.revive_tx(rec, IN_FLIGHT.get(rec.kind), REVIVE_FROM.get(rec.kind, ()), self.clock())
                log.warning("tx_resent_after_reorg", tx_hash=rec.tx_hash, nonce=n, kind=rec.kind, jobs=len(ids))
                self._broadcast(rec, quiet=True)
            else:
                rec = self._filler(n)
                log.warning("nonce_gap_filled", nonce=n, tx_hash=rec.tx_hash)
            resent += 1
        if resent:
            self.metrics.txs_resent.inc(resent)
            self.next_nonce = max(self.next_nonce, top + 1)
        return resent

    def _filler(self, nonce: int) -> TxRecord:
        """A zero-value transfer to ourselves on ``nonce``: closes a gap nothing we stored can fill."""
        head = self.rpc.head()
        priority = self.fees.priority_fee
        max_fee = min(self.fees.max_fee, 2 * head.base_fee + priority)
        base = {"to": self.address, "value": 0, "gas": 21_000, "nonce": nonce, "chainId": self._chain_id or 0,
                "type": 2, "data": b""}
        rec = self._sign("filler", None, [], nonce, 21_000, max_fee, min(priority, max_fee), base=base)
        self.db.store_tx(rec, None, max(self.next_nonce, nonce + 1))
        self._broadcast(rec, quiet=True)
        return rec

    # ------------------------------------------------------------------ sending
    def send(self, kind: str, fn: ContractFunction, request_ids: Sequence[int], job_state: JobState | None,
             head: Head, extra_gas: int = 0) -> bool:
        """Estimates, signs, stores, broadcasts one transaction; True when it was stored (and maybe sent).
        ``extra_gas`` is added to the estimate: gas the estimate cannot see (``finalizeBatch`` skips an item
        whose callback it cannot afford instead of reverting, so estimation would price the batch without it)."""
        try:
            gas = gas_limit(fn.estimate_gas({"from": self.address})) + extra_gas
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
        self._advance(rec, head, None, fresh=True)
        return True

    def _sign(self, kind: str, fn: ContractFunction | None, request_ids: Sequence[int], nonce: int, gas: int,
              max_fee: int, priority: int, base: dict[str, Any] | None = None) -> TxRecord:
        if base is None:
            assert fn is not None
            tx = fn.build_transaction(cast(TxParams, {
                "from": self.address, "nonce": nonce, "gas": gas, "maxFeePerGas": max_fee,
                "maxPriorityFeePerGas": priority, "chainId": self._chain_id or 0, "type": 2, "value": 0}))
        else:
            tx = cast(TxParams, {**base, "maxFeePerGas": max_fee, "maxPriorityFeePerGas": priority})
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

    def _advance(self, rec: TxRecord, head: Head, latest: int | None, fresh: bool = False) -> None:
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
        mined_nonce = latest if latest is not None else int(
            self.rpc.w3.eth.get_transaction_count(Web3.to_checksum_address(self.address), "latest"))
        if mined_nonce > rec.nonce:
            # The nonce is used but none of our hashes has a receipt: check once more, then give it up.
            for sib in siblings:
                receipt = self._receipt(sib.tx_hash)
                if receipt is not None:
                    self._on_mined(sib, receipt, [s for s in siblings if s.tx_hash != sib.tx_hash])
                    return
            self._drop_nonce(rec.nonce, "nonce consumed by another transaction")
            return
        if mined_nonce < rec.nonce:  # waits for a lower nonce: keep it known to the node, never bump it
            if self._unknown_to_node(rec):
                self._broadcast(rec, quiet=True)
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
        self.db.store_tx(new, IN_FLIGHT.get(rec.kind), self.next_nonce)
        self.metrics.txs_replaced.inc()
        log.warning("tx_replaced", old_tx_hash=rec.tx_hash, tx_hash=new.tx_hash, nonce=rec.nonce,
                    max_fee=max_fee, priority_fee=priority)
        self._broadcast(new, quiet=True)

    def _drop_nonce(self, nonce: int, reason: str) -> None:
        siblings = self.db.txs_for_nonce(nonce)
        self.db.set_tx_state([s.tx_hash for s in siblings if s.state is TxState.PENDING], TxState.DROPPED)
        rids = sorted({r for s in siblings for r in s.request_ids})
        log.warning("tx_dropped", nonce=nonce, reason=reason, count=len(rids))
        self._recheck(rids)
        self.resync_nonce()

    def _on_mined(self, rec: TxRecord, receipt: Any, siblings: Sequence[TxRecord]) -> None:
        """Applies a receipt. All reads happen first and all writes in one SQLite transaction, so an RPC
        failure half-way leaves the tx pending (re-checked next tick), never a mined tx with stale jobs."""
        block = int(receipt["blockNumber"])
        elapsed = max(0.0, self.clock() - min([rec.sent_at] + [s.sent_at for s in siblings]))
        updates, recheck = self._apply_receipt(rec, receipt)
        with self.db.tx() as c:
            self.db.set_tx_state([rec.tx_hash], TxState.MINED, block, conn=c)
            self.db.set_tx_state([s.tx_hash for s in siblings if s.state in (TxState.PENDING, TxState.ORPHANED)],
                                 TxState.REPLACED, conn=c)
            for rid, state, fields in updates:
                self.db.set_state([rid], state, conn=c, **fields)
            # an item the transaction did not settle (reverted, or skipped by the contract) used an attempt
            self.db.bump_attempts(recheck, conn=c)
        self.metrics.submission_seconds.observe(elapsed)
        log.info("tx_mined", kind=rec.kind, tx_hash=rec.tx_hash, nonce=rec.nonce, block=block,
                 status=int(receipt["status"]))
        if rec.kind == "submit":
            self.metrics.requests_submitted.inc(len(updates))
        elif rec.kind == "finalize":
            self.metrics.requests_finalized.inc(len(updates))
        if recheck:
            self._recheck(recheck)
