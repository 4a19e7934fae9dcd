"""Transaction manager: the single owner of a daemon account's nonce (sign, store, broadcast, replace, receipts,
reorg recovery), shared by every daemon. Subclasses say what the transactions mean: the worker's
:class:`~oracle.worker.submitter.Submitter` (submits, finalizes, withdrawals, dispute moves: jobs) and the
challenger's :class:`~oracle.challenger.txs.ChallengeTxs` (challenges, game opens and moves, withdrawals:
claims). The signed bytes live in the daemon's SQLite file (:class:`~oracle.chain.txstore.TxStore`).

Rules that make ``kill -9`` at any point safe:

- A transaction is gas-estimated (once: a caller that already simulated passes the gas), signed (a local key,
  or the node for an unlocked devnet account), then **stored with its subjects' new state before it is
  broadcast**.
  After a crash the stored bytes are re-broadcast (same hash, same nonce), never re-signed with a new nonce,
  so a request is never submitted twice.
- A transaction without a receipt after ``stuck_after`` seconds is replaced on the same nonce with fees bumped
  by ``bump_percent`` (and at least what the current base fee needs), up to the fee cap. Only the lowest
  unmined nonce is ever replaced: a later one cannot mine before it, so bumping it would only burn fees.
- "nonce too low" (the nonce was consumed) and "replacement underpriced" (someone else holds the nonce in the
  mempool) re-sync the nonce from the chain; the subjects of a dropped transaction go back to be re-checked.

Reorgs (the "nonce wedge"): see :mod:`oracle.chain.txreorg`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol, cast

import structlog
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from hexbytes import HexBytes
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError
from web3.types import RPCEndpoint, TxParams

from oracle.chain.faults import is_transient
from oracle.chain.gas import gas_limit
from oracle.chain.reverts import from_web3_error
from oracle.chain.tx import Signer, address_of
from oracle.chain.txreorg import ReorgRecovery
from oracle.chain.txstore import TxRecord, TxState, TxStore
from oracle.chain.types import Head
from oracle.errors import ChainError

log = structlog.get_logger("oracle.chain.txmanager")

GWEI = 10**9

#: a subject's update when its transaction mined: (request id, new state, columns to set)
Update = tuple[int, Enum, dict[str, Any]]


@dataclass(frozen=True)
class FeePolicy:
    max_fee: int = 500 * GWEI  # cap on maxFeePerGas
    priority_fee: int = 1 * GWEI
    bump_percent: int = 25  # a replacement pays at least this much more (nodes want >= 10 %)
    stuck_after: float = 30.0  # seconds without a receipt before a transaction is replaced on its nonce


class Chain(Protocol):
    """Where the manager reads and sends: the current ``w3`` (it may rotate) and the head."""

    @property
    def w3(self) -> Web3: ...

    def head(self) -> Head: ...


class TxMetrics(Protocol):
    """The counters the manager moves (each daemon names them in its own registry)."""

    txs_sent: Any  # labelled by kind
    txs_replaced: Any
    txs_resent: Any
    reorgs: Any
    submission_seconds: Any


class TxManager(ReorgRecovery):
    #: the state a transaction kind puts its subjects in while in flight, and the states it takes them from when
    #: a dropped transaction is re-sent (kinds absent here move nothing)
    in_flight: dict[str, Enum] = {}
    revive_from: dict[str, tuple[Enum, ...]] = {}

    def __init__(self, rpc: Chain, db: TxStore, signer: Signer, metrics: TxMetrics, *, fees: FeePolicy,
                 clock: Callable[[], float] = time.time) -> None:
        self.rpc = rpc
        self.db = db
        self.signer = signer
        self.address: str = address_of(signer)
        self.metrics = metrics
        self.fees = fees
        self.clock = clock
        self.next_nonce = 0
        self._chain_id: int | None = None
        #: called with every broadcast (tests use it to observe "between broadcast and receipt")
        self.on_broadcast: Callable[[TxRecord], None] | None = None
        #: why the node refused a broadcast, by transaction hash (the challenger alarms on a proof too big)
        self.refusals: dict[str, str] = {}

    # ------------------------------------------------------------------ what the subclass says about subjects
    def _apply_receipt(self, rec: TxRecord, receipt: Any) -> tuple[list[Update], list[int]]:
        """(subject updates, request ids to re-check) for a mined transaction; reads only, no writes."""
        return [], list(rec.request_ids)

    def _record_mined(self, c: sqlite3.Connection, rec: TxRecord, updates: Sequence[Update],
                      recheck: Sequence[int]) -> None:
        """Writes ``updates`` (inside the write that marks ``rec`` mined)."""

    def _mined(self, rec: TxRecord, receipt: Any, updates: Sequence[Update]) -> None:
        """Counts and logs what a mined transaction did (after the write)."""

    def _resent(self, rec: TxRecord, reason: str) -> None:
        """``rec`` went out again: "dropped" (gone from the pool), "stuck" (replaced with higher fees) or
        "reorg" (its block was reorganised away), "gap" (a no-op transfer closed a nonce nothing else fills)."""

    def _recheck(self, request_ids: Sequence[int]) -> None:
        """Re-reads the on-chain state of these subjects (after a drop, a revert or a reorg)."""

    # ------------------------------------------------------------------ lifecycle
    def setup(self) -> None:
        """Re-broadcasts stored in-flight transactions, repairs what a reorg did meanwhile, syncs the nonce."""
        self._chain_id = int(self.rpc.w3.eth.chain_id)
        stored = self.db.get_meta("account")
        if stored is not None and stored.lower() != self.address.lower():
            raise AccountMismatch(f"database {self.db.path} belongs to account {stored}, not {self.address}; use a "
                                  "separate state file per key")
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

    def record(self, tx_hash: str) -> TxRecord | None:
        """Our stored transaction ``tx_hash``, if any."""
        return self.db.tx_record(tx_hash)

    def receipt(self, tx_hash: str) -> Any:
        """Its receipt on the chain we see now, or None."""
        return self._receipt(tx_hash)

    def _recheck_stale(self) -> None:
        """Hook: jobs left in flight without a pending transaction (see the Submitter)."""

    # ------------------------------------------------------------------ sending
    def send(self, kind: str, fn: ContractFunction, request_ids: Sequence[int], state: Enum | None, head: Head,
             extra_gas: int = 0, *, gas: int | None = None, value: int = 0) -> TxRecord | None:
        """Estimates, signs, stores, broadcasts one transaction paying ``value`` wei; returns it once stored
        (and maybe sent), None when the simulation reverted. ``gas``: the limit, when the caller simulated
        already (nothing is simulated twice). ``extra_gas`` is added to the estimate: gas the estimate cannot
        see (``finalizeBatch`` skips an item whose callback it cannot afford instead of reverting, so estimation
        would price the batch without it)."""
        if gas is None:
            try:
                gas = gas_limit(fn.estimate_gas(cast(TxParams, {"from": self.address, "value": value}))) + extra_gas
            except ContractLogicError as exc:
                log.warning("tx_simulation_reverted", kind=kind, error=str(from_web3_error(exc)))
                return None
        priority = self.fees.priority_fee
        max_fee = min(self.fees.max_fee, 2 * head.base_fee + priority)
        priority = min(priority, max_fee)
        rec = self._sign(kind, fn, request_ids, self.next_nonce, gas, max_fee, priority, value=value)
        self.db.store_tx(rec, state, self.next_nonce + 1)
        self.next_nonce += 1
        self.metrics.txs_sent.labels(kind=kind).inc()
        log.info("tx_stored", kind=kind, tx_hash=rec.tx_hash, nonce=rec.nonce, count=len(request_ids))
        if self._broadcast(rec) == "fee_too_low":
            self._replace(rec, head)
        self._advance(rec, head, None, fresh=True)
        return rec

    def _sign(self, kind: str, fn: ContractFunction | None, request_ids: Sequence[int], nonce: int, gas: int,
              max_fee: int, priority: int, base: dict[str, Any] | None = None, value: int = 0) -> TxRecord:
        if base is None:
            assert fn is not None
            tx = fn.build_transaction(cast(TxParams, {
                "from": self.address, "nonce": nonce, "gas": gas, "maxFeePerGas": max_fee,
                "maxPriorityFeePerGas": priority, "chainId": self._chain_id or 0, "type": 2, "value": value}))
        else:
            tx = cast(TxParams, {**base, "maxFeePerGas": max_fee, "maxPriorityFeePerGas": priority})
        if isinstance(self.signer, str):  # an account the node unlocks (devnets): the node signs, we store
            raw = self._node_signs({**tx, "from": self.address})
            tx_hash: str = Web3.to_hex(Web3.keccak(raw))
        else:
            tx.pop("from", None)
            signed = self.signer.sign_transaction(cast(dict[str, Any], tx))
            raw, tx_hash = bytes(signed.raw_transaction), signed.hash.to_0x_hex()
        return TxRecord(tx_hash, nonce, kind, tuple(request_ids), raw, max_fee, priority, TxState.PENDING, None,
                        self.clock())

    def _node_signs(self, tx: dict[str, Any]) -> bytes:
        """``eth_signTransaction`` by the node (anvil answers the raw bytes, geth ``{raw, tx}``)."""
        def wire(v: Any) -> Any:
            if isinstance(v, bool) or not isinstance(v, (int, bytes)):
                return v
            return hex(v) if isinstance(v, int) else Web3.to_hex(v)

        params = [{k: wire(v) for k, v in tx.items()}]
        res = self.rpc.w3.manager.request_blocking(RPCEndpoint("eth_signTransaction"), params)
        return bytes(HexBytes(res["raw"] if isinstance(res, dict) or hasattr(res, "keys") else res))

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
                self.refusals[rec.tx_hash] = str(exc)[:300]
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
            if self._unknown_to_node(rec) and self._broadcast(rec, quiet=True) == "ok":
                self._resent(rec, "dropped")
            return
        if self.clock() - rec.sent_at >= self.fees.stuck_after:
            self._replace(rec, head)
        elif self._unknown_to_node(rec):
            outcome = self._broadcast(rec, quiet=True)
            if outcome == "fee_too_low":  # evicted for its fee: bump now
                self._replace(rec, head)
            elif outcome == "ok":
                self._resent(rec, "dropped")

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
        self.db.store_tx(new, self.in_flight.get(rec.kind), self.next_nonce)
        self.metrics.txs_replaced.inc()
        log.warning("tx_replaced", old_tx_hash=rec.tx_hash, tx_hash=new.tx_hash, nonce=rec.nonce,
                    max_fee=max_fee, priority_fee=priority)
        self._broadcast(new, quiet=True)
        self._resent(new, "stuck")

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
            self._record_mined(c, rec, updates, recheck)
        self.metrics.submission_seconds.observe(elapsed)
        log.info("tx_mined", kind=rec.kind, tx_hash=rec.tx_hash, nonce=rec.nonce, block=block,
                 status=int(receipt["status"]))
        self._mined(rec, receipt, updates)
        if recheck:
            self._recheck(recheck)


class AccountMismatch(ChainError):
    """The state file was written for another account: one file per key."""
