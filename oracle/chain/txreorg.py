"""Reorg recovery of the transaction manager (a mixin of :class:`oracle.chain.txmanager.TxManager`).

Reorgs (the "nonce wedge"): a reorg can drop transactions of ours that were mined while a later one is still in
flight; the later one can then never mine. :meth:`TxManager.reconcile` runs whenever the chain's mined nonce is
below a nonce we hold without a pending transaction for it (checked on every tick with one RPC), and after every
reorg the listener detects. It recognises transactions the new branch re-included (their receipt is back: they
are applied again, never left ``orphaned``), and re-sends the dropped ones, lowest nonce first, with the same
signed bytes (fees bumped by the usual replacement if the base fee rose), so no nonce is ever left as a gap; a
nonce none of our stored transactions can fill gets a zero-value self-transfer. Their subjects follow them again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any

import structlog
from web3 import Web3

from oracle.chain.txstore import TxRecord, TxState, TxStore

if TYPE_CHECKING:
    from oracle.chain.txmanager import Chain, FeePolicy, TxMetrics

log = structlog.get_logger("oracle.chain.txmanager")


class ReorgRecovery:
    if TYPE_CHECKING:
        rpc: Chain
        db: TxStore
        metrics: TxMetrics
        fees: FeePolicy
        address: str
        next_nonce: int
        _chain_id: int | None
        clock: Callable[[], float]
        in_flight: dict[str, Enum]
        revive_from: dict[str, tuple[Enum, ...]]

        def resync_nonce(self) -> None: ...
        def _receipt(self, tx_hash: str) -> Any: ...
        def _on_mined(self, rec: TxRecord, receipt: Any, siblings: Sequence[TxRecord]) -> None: ...
        def _recheck(self, request_ids: Sequence[int]) -> None: ...
        def _resent(self, rec: TxRecord, reason: str) -> None: ...
        def _broadcast(self, rec: TxRecord, quiet: bool = False) -> str: ...
        def _sign(self, kind: str, fn: Any, request_ids: Sequence[int], nonce: int, gas: int, max_fee: int,
                  priority: int, base: dict[str, Any] | None = None, value: int = 0) -> TxRecord: ...


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
                ids = self.db.revive_tx(rec, self.in_flight.get(rec.kind),
                                      self.revive_from.get(rec.kind, ()), self.clock())
                log.warning("tx_resent_after_reorg", tx_hash=rec.tx_hash, nonce=n, kind=rec.kind, jobs=len(ids))
                self._broadcast(rec, quiet=True)
                self._resent(rec, "reorg")
            else:
                rec = self._filler(n)
                log.warning("nonce_gap_filled", nonce=n, tx_hash=rec.tx_hash)
                self._resent(rec, "gap")
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
        base = {"from": self.address, "to": self.address, "value": 0, "gas": 21_000, "nonce": nonce,
                "chainId": self._chain_id or 0, "type": 2, "data": b""}
        rec = self._sign("filler", None, [], nonce, 21_000, max_fee, min(priority, max_fee), base=base)
        self.db.store_tx(rec, None, max(self.next_nonce, nonce + 1))
        self._broadcast(rec, quiet=True)
        return rec
