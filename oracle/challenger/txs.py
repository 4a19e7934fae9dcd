"""The challenger's transactions through the shared manager (:class:`oracle.chain.txmanager.TxManager`):
challenges, dispute-game opens and moves, withdrawals of won bonds, all on one nonce sequence.

A challenge is stored with its claim moved to ``challenging`` (tx hash and nonce) before it is broadcast, so a
``kill -9`` never sends it twice. From then on the manager owns it: re-broadcast when the pool dropped it,
replaced on its nonce with higher fees when stuck, re-sent with the same bytes when a reorg took its block
away (the claim follows: ``challenging`` again), the nonce gap filled when nothing of ours can. When it mines,
the claim becomes ``proven``; when it reverted or its nonce went to another transaction, the prover settles the
claim from the chain (:meth:`oracle.challenger.prover.Prover.settle_by_status`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any

import structlog
from web3 import Web3

from oracle.chain.tx import Signer
from oracle.chain.txmanager import FeePolicy, TxManager, Update
from oracle.chain.txstore import TxRecord
from oracle.chain.types import Head
from oracle.challenger.metrics import ChallengerMetrics
from oracle.challenger.store import ClaimState, Store

log = structlog.get_logger("oracle.challenger")

CHALLENGE = "challenge"


class ChainHead:
    """The challenger's view of the chain for the manager: its ``w3`` and the latest block."""

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3

    def head(self) -> Head:
        b = self.w3.eth.get_block("latest")
        return Head(int(b["number"]), Web3.to_hex(b["hash"]), int(b["timestamp"]), int(b.get("baseFeePerGas", 0)))


class ChallengeTxs(TxManager):
    in_flight: dict[str, Enum] = {CHALLENGE: ClaimState.CHALLENGING}
    #: a reorg that drops a mined proof re-sends it and takes its claim back to ``challenging`` from wherever
    #: the daemon filed it meanwhile (``proven``, or ``wrong`` once the chain said the request is open again)
    revive_from: dict[str, tuple[Enum, ...]] = {
        CHALLENGE: (ClaimState.CHALLENGING, ClaimState.PROVEN, ClaimState.WRONG)}
    db: Store
    metrics: ChallengerMetrics

    def __init__(self, w3: Web3, store: Store, signer: Signer, metrics: ChallengerMetrics, fees: FeePolicy) -> None:
        super().__init__(ChainHead(w3), store, signer, metrics, fees=fees)
        #: settles claims whose challenge reverted or lost its nonce (the daemon plugs in the prover's)
        self.settle: Callable[[Sequence[int], str], None] = lambda _ids, _why: None

    def _apply_receipt(self, rec: TxRecord, receipt: Any) -> tuple[list[Update], list[int]]:
        if rec.kind != CHALLENGE:
            return [], []  # game moves and withdrawals: the game is read from the chain every round
        if int(receipt["status"]) == 1:
            return [(r, ClaimState.PROVEN, {"tx_block": int(receipt["blockNumber"])}) for r in rec.request_ids], []
        return [], list(rec.request_ids)

    def _record_mined(self, c: sqlite3.Connection, rec: TxRecord, updates: Sequence[Update],
                      recheck: Sequence[int]) -> None:
        for r, state, fields in updates:
            self.db.set_state(r, ClaimState(state), tx_hash=rec.tx_hash, conn=c, **fields)

    def _mined(self, rec: TxRecord, receipt: Any, updates: Sequence[Update]) -> None:
        for r, _, _ in updates:
            self.metrics.challenges_won.inc()
            log.info("fraud_proven", request_id=hex(r), tx=rec.tx_hash, block=int(receipt["blockNumber"]))

    def _recheck(self, request_ids: Sequence[int]) -> None:
        if request_ids:
            self.settle(request_ids, "challenge reverted on-chain or its nonce used by another transaction")

    def _resent(self, rec: TxRecord, reason: str) -> None:
        if reason == "gap":
            self.metrics.nonce_gaps_filled.inc()
        elif rec.kind == CHALLENGE:
            self.metrics.challenges_resent.labels(reason=reason).inc()
            log.warning("challenge_resent", request_ids=[hex(r) for r in rec.request_ids], reason=reason,
                        tx=rec.tx_hash, nonce=rec.nonce)
