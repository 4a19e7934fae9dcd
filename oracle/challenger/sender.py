"""Challenge transactions: one nonce owner, sends that never wait, receipts looked up without blocking.

:meth:`ChallengeSender.send` signs (a local key) or asks the node to sign (an unlocked devnet account) with an
explicit nonce and EIP-1559 fees and returns at once. :meth:`ChallengeSender.check` says what became of a
transaction: ``mined`` (with its receipt), ``pending`` (still in the node's pool), ``dropped`` (unknown to the
node and its nonce still free: re-send on the same nonce) or ``consumed`` (its nonce was used by another
transaction: send anew). :meth:`ChallengeSender.replace` re-sends on the same nonce with fees bumped over the
pooled transaction (a stuck, underpriced one) or at today's price (a dropped one).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import structlog
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import TransactionNotFound

from oracle.chain.tx import Signer, address_of

log = structlog.get_logger("oracle.challenger.sender")

GWEI = 10**9


@dataclass(frozen=True)
class FeePolicy:
    priority_fee: int = 1 * GWEI
    max_fee: int = 500 * GWEI  # cap on maxFeePerGas
    bump_percent: int = 25  # a replacement pays at least this much more (nodes want >= 10 %)
    stuck_after: float = 12.0  # seconds in the pool before a transaction is replaced


@dataclass(frozen=True)
class Sent:
    tx_hash: str
    nonce: int


class SendError(Exception):
    pass


def _message(exc: Exception) -> str:
    return str(getattr(exc, "message", None) or exc).lower()


class ChallengeSender:
    def __init__(self, w3: Web3, signer: Signer, fees: FeePolicy | None = None) -> None:
        self.w3 = w3
        self.signer = signer
        self.address = address_of(signer)
        self.fees = fees or FeePolicy()
        self.next_nonce: int | None = None
        self._sent_at: dict[str, float] = {}
        self._lock = threading.Lock()
        self._chain_id: int | None = None
        self._base = (-1e9, 0)

    def _pending_count(self) -> int:
        """The node's next nonce for us: mined transactions plus the pooled ones without a gap before them."""
        return int(self.w3.eth.get_transaction_count(Web3.to_checksum_address(self.address), "pending"))

    def sync(self, floor: int = 0) -> None:
        """Takes the nonce from the node (at start-up); ``floor``: one past the highest nonce still ours in
        flight, so a gap in the pool never hands out a nonce a pooled challenge holds."""
        self.next_nonce = max(self._pending_count(), floor)

    def fill_gap(self, held: set[int]) -> int | None:
        """Our later transactions cannot mine while a nonce before them is missing from the pool. If no
        challenge in flight holds that nonce (its claim was settled after its transaction was dropped), a
        no-op transfer to ourselves fills it; returns the nonce filled."""
        if self.next_nonce is None:
            return None
        gap = self._pending_count()
        if gap >= self.next_nonce or gap in held:
            return None  # no gap, or the challenge holding it is re-sent by its tracker
        params: dict[str, Any] = {"from": self.address, "to": self.address, "value": 0, "gas": 21_000,
                                  "nonce": gap}
        max_fee, priority = self._fees()
        params.update(maxFeePerGas=max_fee, maxPriorityFeePerGas=priority)
        with self._lock:
            try:
                if isinstance(self.signer, LocalAccount):
                    if self._chain_id is None:
                        self._chain_id = int(self.w3.eth.chain_id)
                    signed = self.signer.sign_transaction({**params, "chainId": self._chain_id, "type": 2})
                    self.w3.eth.send_raw_transaction(signed.raw_transaction)
                else:
                    self.w3.eth.send_transaction(params)  # type: ignore[arg-type]
            except Exception as exc:  # noqa: BLE001 - e.g. the node's pool view was stale: try next round
                log.warning("nonce_gap_fill_failed", nonce=gap, error=_message(exc))
                return None
        log.warning("nonce_gap_filled", nonce=gap, next_nonce=self.next_nonce)
        return gap

    def _base_fee(self) -> int:
        """The next block's base fee, read at most once a second (a burst of challenges shares one read;
        a send refused for its fee forgets it)."""
        now = time.monotonic()
        if now - self._base[0] > 1.0:
            self._base = (now, int(self.w3.eth.get_block("pending").get("baseFeePerGas", 0) or 0))
        return self._base[1]

    def _fees(self, floor: tuple[int, int] | None = None) -> tuple[int, int]:
        base = self._base_fee()
        priority = self.fees.priority_fee
        max_fee = 2 * base + priority
        if floor is not None:
            bump = 100 + self.fees.bump_percent
            max_fee = max(max_fee, floor[0] * bump // 100 + 1)
            priority = max(priority, floor[1] * bump // 100 + 1)
        max_fee = min(max_fee, self.fees.max_fee)
        return max_fee, min(priority, max_fee)

    def _broadcast(self, fn: ContractFunction, gas: int, nonce: int, fees: tuple[int, int], value: int = 0) -> str:
        params: dict[str, Any] = {"from": self.address, "gas": gas, "nonce": nonce, "maxFeePerGas": fees[0],
                                  "maxPriorityFeePerGas": fees[1], "value": value}
        if isinstance(self.signer, LocalAccount):
            if self._chain_id is None:
                self._chain_id = int(self.w3.eth.chain_id)
            tx = fn.build_transaction({**params, "chainId": self._chain_id, "type": 2})  # type: ignore[arg-type]
            signed = self.signer.sign_transaction(tx)  # type: ignore[arg-type]
            try:
                self.w3.eth.send_raw_transaction(signed.raw_transaction)
            except Exception as exc:  # noqa: BLE001 - a re-broadcast of the same bytes is fine
                if "fee" in _message(exc):
                    self._base = (-1e9, 0)
                if "already" not in _message(exc):
                    raise
            tx_hash = signed.hash.to_0x_hex()
        else:
            try:
                tx_hash = Web3.to_hex(fn.transact(params))  # type: ignore[arg-type]
            except Exception as exc:
                if "fee" in _message(exc):
                    self._base = (-1e9, 0)  # priced on a stale base fee: read it again next time
                raise
        self._sent_at[tx_hash] = time.monotonic()
        return tx_hash

    def send(self, fn: ContractFunction, gas: int, value: int = 0) -> Sent:
        """A new transaction on the next nonce (re-synced once if the node says the nonce was used), paying
        ``value`` wei (a dispute game's bond)."""
        with self._lock:
            if self.next_nonce is None:
                self.sync()
            for attempt in range(3):
                nonce = self.next_nonce
                assert nonce is not None
                try:
                    tx_hash = self._broadcast(fn, gas, nonce, self._fees(), value)
                except Exception as exc:  # noqa: BLE001 - classified below
                    msg = _message(exc)
                    if attempt < 2 and ("nonce too low" in msg or "underpriced" in msg or "already" in msg):
                        self.next_nonce = max(self._pending_count(), nonce + 1)  # never back below ours
                        continue
                    raise SendError(msg) from exc
                self.next_nonce = nonce + 1
                return Sent(tx_hash, nonce)
        raise SendError("no usable nonce")

    def replace(self, fn: ContractFunction, gas: int, nonce: int, old_hash: str | None, value: int = 0) -> Sent:
        """The same nonce again: fees bumped over the pooled transaction, or today's fees if it was dropped."""
        floor = None
        if old_hash:
            try:
                old = self.w3.eth.get_transaction(old_hash)  # type: ignore[arg-type]
                floor = (int(old.get("maxFeePerGas") or old.get("gasPrice") or 0),
                         int(old.get("maxPriorityFeePerGas") or 0))
            except TransactionNotFound:
                floor = None
        with self._lock:
            try:
                return Sent(self._broadcast(fn, gas, nonce, self._fees(floor), value), nonce)
            except Exception as exc:  # noqa: BLE001
                raise SendError(_message(exc)) from exc

    def check(self, tx_hash: str, nonce: int | None) -> tuple[str, Any]:
        try:
            return "mined", self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            pass
        try:
            if self.w3.eth.get_transaction(tx_hash) is not None:  # type: ignore[arg-type]
                self._sent_at.setdefault(tx_hash, time.monotonic())
                return "pending", None
        except TransactionNotFound:
            pass
        mined = int(self.w3.eth.get_transaction_count(Web3.to_checksum_address(self.address), "latest"))
        return ("consumed" if nonce is None or nonce < mined else "dropped"), None

    def stuck(self, tx_hash: str) -> bool:
        return time.monotonic() - self._sent_at.setdefault(tx_hash, time.monotonic()) > self.fees.stuck_after
