"""The dashboard's read model: one oracle's events folded into requests, operators, disputes and models.

How it reads the chain:

- through the project's one :class:`oracle.chain.follower.Follower`: one ``eth_getLogs`` per confirmed
  block range (all of the oracle's events at once, decoded by topic), from ``start_block`` to the head minus
  ``confirmations``, continuing where the last refresh stopped, each range checked against its blocks' hashes;
- on a fork point below the cursor (a reorg, or a devnet snapshot revert) the in-memory index is dropped
  and rebuilt from ``start_block`` (its rollback: the fold is cheap to redo, and nothing is persisted);
- status is derived by :func:`oracle.lifecycle.derive_status`, the mirror of ``InferenceOracle.statusOf``
  (flags from events, timestamps from the events' blocks, evaluated at the indexed block's timestamp), so no
  call is needed per request;
- stakes and credits are read at the indexed block, only when new events arrived.
- a fee token's symbol and decimals (ERC-20 metadata, optional: the address and 0 stand in) are read once
  per token, when a model of that token is first indexed; fees are shown in their model's asset;
- a model registered before ``start_block`` has no ``ModelRegistered`` to fold, and a request made before it
  no ``InferenceRequested``: before a range is folded, ``getModel`` (and ``getRequest``, for a settlement of
  such a request) are read for the models its events need, once each, so every fee has its asset.

Refreshes are rate-limited (``min_interval``) and serialized by a lock; readers get an immutable
:class:`Snapshot`. Records are frozen dataclasses replaced on change, so a snapshot is a set of references.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import structlog
from hexbytes import HexBytes
from web3 import Web3

from oracle.api.dashboard.records import (
    DisputeRecord,
    ModelRecord,
    OperatorRecord,
    Parameters,
    RequestRecord,
    Snapshot,
)
from oracle.chain import erc20
from oracle.chain.client import OracleClient
from oracle.chain.erc20 import TokenMeta
from oracle.chain.follower import Follower, Fork
from oracle.chain.types import Mode

log = structlog.get_logger("oracle.api.dashboard")

ZERO32 = b"\x00" * 32


class ChainUnavailable(RuntimeError):
    """The chain could not be read and there is no earlier snapshot to fall back on."""


@dataclass
class _Index:
    """Mutable fold state; only touched under the indexer's lock."""

    cursor: int | None = None  # last indexed block
    cursor_hash: str = ""
    cursor_time: int = 0
    requests: dict[int, RequestRecord] = field(default_factory=dict)
    requests_seen: int = 0
    operators: dict[str, OperatorRecord] = field(default_factory=dict)
    disputes: list[DisputeRecord] = field(default_factory=list)
    models: dict[int, ModelRecord] = field(default_factory=dict)
    slashed_by_request: dict[int, int] = field(default_factory=dict)
    accounts_stale: bool = False  # events arrived since stakes and credits were last read

    # the follower's BlockLog: a fork below the cursor rebuilds the whole index, so only the cursor is kept
    def last_block(self) -> tuple[int, str] | None:
        return None if self.cursor is None else (self.cursor, self.cursor_hash)

    def recent_blocks(self) -> list[tuple[int, str]]:
        return [] if self.cursor is None else [(self.cursor, self.cursor_hash)]


@dataclass(frozen=True)
class _Log:
    """A raw log as the follower sees it (block number and hash), the raw entry kept for decoding."""

    block_number: int
    block_hash: bytes
    raw: Any


class _IndexLog:
    """The indexer's current fold as the follower's BlockLog (the fold object is replaced on a reindex)."""

    def __init__(self, indexer: DashboardIndexer) -> None:
        self.indexer = indexer

    def last_block(self) -> tuple[int, str] | None:
        return self.indexer._index.last_block()

    def recent_blocks(self) -> list[tuple[int, str]]:
        return self.indexer._index.recent_blocks()


class DashboardIndexer:
    """Incremental, cached, thread-safe index of one oracle deployment (see the module docstring)."""

    def __init__(
        self,
        client: OracleClient,
        *,
        start_block: int = 0,
        confirmations: int = 0,
        min_interval: float = 0.5,
        block_range: int = 2000,
        max_requests: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.w3: Web3 = client.w3
        self.start_block = start_block
        self.confirmations = confirmations
        self.min_interval = min_interval
        self.block_range = block_range
        self.max_requests = max_requests
        self._clock = clock
        self._lock = threading.Lock()
        self._index = _Index()
        self._snapshot: Snapshot | None = None
        self._refreshed_at: float | None = None
        self._params: Parameters | None = None
        self._tokens: dict[str, TokenMeta] = {}  # fee token metadata, read once per token
        # Read by `_prefetch` for events older than start_block allows; immutable, so kept across reindexes.
        self._early_models: dict[int, ModelRecord] = {}  # registered before start_block
        self._early_requests: dict[int, int] = {}  # request id -> model id, requested before start_block
        self._chain_id: int | None = None
        events = [
            getattr(client.contract.events, e["name"])() for e in client.contract.abi if e["type"] == "event"
        ]
        self._events: dict[bytes, Any] = {bytes(HexBytes(ev.topic)): ev for ev in events}
        self._follower = Follower(self.w3, _IndexLog(self), confirmations=confirmations, block_range=block_range,
                                  start_block=start_block)

    def _logs(self, first: int, last: int) -> list[_Log]:
        logs = self.w3.eth.get_logs({"address": self.client.address, "fromBlock": first, "toBlock": last})
        return [_Log(int(x["blockNumber"]), bytes(x["blockHash"]), x) for x in logs]

    # ------------------------------------------------------------------ public
    def snapshot(self, force: bool = False) -> Snapshot:
        """The current snapshot, refreshed first if it is older than ``min_interval`` (or ``force``).

        While another thread refreshes, readers get the previous snapshot at once instead of queueing behind
        a slow RPC (they share the API's thread pool with /health); only the first read and ``force`` wait.
        """
        current = self._snapshot
        if current is not None and not force and not self._due():
            return current
        if not self._lock.acquire(blocking=force or current is None):
            assert current is not None
            return current
        try:
            if self._snapshot is not None and not force and not self._due():
                return self._snapshot  # refreshed while we waited for the lock
            self._refreshed_at = self._clock()
            try:
                self._snapshot = self._refresh()
            except Exception as exc:  # noqa: BLE001 - serve the last good snapshot, flagged stale
                reason = f"{type(exc).__name__}: {str(exc)[:200]}"
                log.warning("dashboard_refresh_failed", error=reason)
                if self._snapshot is None:
                    raise ChainUnavailable(
                        f"cannot read the oracle at {self.client.address} ({reason}); "
                        "check that the RPC endpoint is up"
                    ) from exc
                self._snapshot = replace(self._snapshot, error=reason)
            return self._snapshot
        finally:
            self._lock.release()

    def _due(self) -> bool:
        return self._refreshed_at is None or self._clock() - self._refreshed_at >= self.min_interval

    # ------------------------------------------------------------------ refresh
    def _refresh(self) -> Snapshot:
        if self._params is None:
            p = self.client.parameters()
            self._params = Parameters(
                p["challenge_window"],
                p["request_timeout"],
                p["unbonding_period"],
                p["min_bond_ratio"],
                p["max_callback_gas"],
            )
            self._chain_id = int(self.w3.eth.chain_id)
        head = int(self.w3.eth.block_number)
        idx = self._index
        if idx.cursor is not None and idx.cursor > head - self.confirmations:
            # a shorter chain (a devnet snapshot revert): the follower would wait for it to pass the cursor
            log.info("dashboard_reindex", cursor=idx.cursor, head=head)
            idx = self._index = _Index()
        while True:
            step = self._follower.step(self._logs, head)
            if step is None:
                break
            if isinstance(step, Fork):
                # The fold is in memory and cheap to redo: roll back to the start and re-read the new branch.
                log.info("dashboard_reindex", cursor=idx.cursor, fork=step.number)
                idx = self._index = _Index()
                continue
            if idx.cursor is None:
                idx.accounts_stale = True
            # Everything a range needs is fetched before it is folded, and the cursor moves with the fold:
            # a failed RPC never leaves a half-counted range behind to be counted again.
            events = [ev for ev in (self._decode(e.raw) for e in step.events) if ev is not None]
            self._prefetch(idx, events, step.last)
            self._fold(idx, events, step.timestamps)
            idx.cursor, idx.cursor_hash, idx.cursor_time = step.last, step.last_hash, step.timestamps[step.last]
            idx.accounts_stale = idx.accounts_stale or bool(step.events)
            if step.caught_up:
                break
        if idx.cursor is None:  # nothing confirmed since start_block yet
            block = max(0, min(head - self.confirmations, self.start_block - 1))
            at = int(self.w3.eth.get_block(block)["timestamp"])
        else:
            block, at = idx.cursor, idx.cursor_time
        if idx.accounts_stale:
            self._read_accounts(idx, block)
            idx.accounts_stale = False
            self._evict(idx, at)
        for m in idx.models.values():
            if m.fee_token is not None and m.fee_token not in self._tokens:
                self._tokens[m.fee_token] = erc20.metadata(self.w3, m.fee_token)
        assert self._params is not None and self._chain_id is not None
        return Snapshot(
            chain_id=self._chain_id,
            oracle=self.client.address,
            start_block=self.start_block,
            block=block,
            chain_time=at,
            indexed_at=time.time(),
            params=self._params,
            requests=tuple(idx.requests.values()),
            requests_by_id=dict(idx.requests),
            requests_seen=idx.requests_seen,
            operators=tuple(idx.operators.values()),
            disputes=tuple(idx.disputes),
            models=tuple(idx.models.values()),
            tokens=dict(self._tokens),
        )

    def _read_accounts(self, idx: _Index, block: int) -> None:
        fns = self.client.contract.functions
        for addr, op in list(idx.operators.items()):
            s = fns.stakeOf(addr).call(block_identifier=block)
            credits = fns.creditsOf(addr).call(block_identifier=block)
            idx.operators[addr] = replace(
                op,
                staked=int(s[0]),
                locked=int(s[1]),
                pending=int(s[2]),
                withdrawable_at=int(s[3]),
                credits=int(credits),
            )

    def _evict(self, idx: _Index, now: int) -> None:
        """Keeps memory bounded on a long-lived node: drops the oldest settled requests over the cap."""
        excess = len(idx.requests) - self.max_requests
        if excess <= 0:
            return
        assert self._params is not None
        p = self._params
        for rid in [
            rid
            for rid, r in idx.requests.items()
            if r.status(now, p.challenge_window, p.request_timeout).is_final
        ][:excess]:
            del idx.requests[rid]

    # ------------------------------------------------------------------ fold
    def _decode(self, raw: Any) -> Any | None:
        topics = raw["topics"]
        event = self._events.get(bytes(topics[0])) if topics else None
        return None if event is None else event.process_log(raw)

    def _prefetch(self, idx: _Index, events: list[Any], block: int) -> None:
        """Reads, before the fold, the models this range's events need that no event of it or before it
        registered (those registered before ``start_block``), and the model of a settled request made before
        ``start_block``: so the fold needs no RPC, and a token fee is never counted as wei."""
        registered = {int(ev["args"]["modelId"]) for ev in events if ev["event"] == "ModelRegistered"}
        requested = {int(ev["args"]["requestId"]): int(ev["args"]["modelId"])
                     for ev in events if ev["event"] == "InferenceRequested"}
        needed = set(requested.values())
        for ev in events:
            rid = int(ev["args"]["requestId"]) if ev["event"] == "RequestFinalized" else None
            if rid is not None and rid not in idx.requests and rid not in requested:
                if rid not in self._early_requests:
                    self._early_requests[rid] = self.client.get_request(rid, block).model_id
                needed.add(self._early_requests[rid])
        for mid in sorted(needed - registered - idx.models.keys()):
            if mid not in self._early_models:
                m = self.client.get_model(mid)  # immutable but for `retired`, which events then update
                self._early_models[mid] = ModelRecord(
                    model_id=mid, owner=m.owner, mode=m.mode, fee=m.fee, bond=m.bond, input_length=m.input_length,
                    output_length=m.output_length, onnx_hash=m.onnx_hash, program_commitment=m.program_commitment,
                    uri=m.uri, registered_block=None, retired=m.retired,
                    fee_token=Web3.to_checksum_address(m.fee_token) if m.fee_in_token else None,
                )
            idx.models[mid] = self._early_models[mid]

    def _fold(self, idx: _Index, events: Iterable[Any], times: dict[int, int]) -> None:
        """Applies decoded events in chain order (no RPC: ``times`` holds the blocks' timestamps)."""
        for ev in events:
            handler = getattr(self, f"_on_{ev['event']}", None)  # e.g. _on_ResultSubmitted; others ignored
            if handler is not None:
                block = int(ev["blockNumber"])
                handler(idx, ev["args"], block, "0x" + bytes(ev["transactionHash"]).hex(), times[block])

    @staticmethod
    def _op(idx: _Index, address: str) -> OperatorRecord:
        addr = Web3.to_checksum_address(address)
        if addr not in idx.operators:
            idx.operators[addr] = OperatorRecord(addr)
        return idx.operators[addr]

    def _on_InferenceRequested(self, idx: _Index, a: Any, block: int, tx: str, at: int) -> None:
        rid = int(a["requestId"])
        model_id = int(a["modelId"])
        idx.requests[rid] = RequestRecord(
            request_id=rid,
            model_id=model_id,
            requester=a["requester"],
            fee=int(a["fee"]),
            callback_gas_limit=int(a["callbackGasLimit"]),
            input=bytes(a["input"]),
            requested_at=at,
            requested_block=block,
            request_tx=tx,
        )
        idx.requests_seen += 1
        if model_id in idx.models:
            m = idx.models[model_id]
            idx.models[model_id] = replace(m, requests=m.requests + 1)

    def _on_ResultSubmitted(self, idx: _Index, a: Any, block: int, tx: str, at: int) -> None:
        op = self._op(idx, a["operator"])
        idx.operators[op.address] = replace(op, results_submitted=op.results_submitted + 1)
        r = idx.requests.get(int(a["requestId"]))
        if r is not None:
            idx.requests[r.request_id] = replace(
                r, operator=op.address, output=bytes(a["output"]), submitted_at=at, submit_tx=tx
            )

    def _on_RequestFinalized(self, idx: _Index, a: Any, block: int, tx: str, at: int) -> None:
        op = self._op(idx, a["operator"])
        rid = int(a["requestId"])
        r = idx.requests.get(rid)
        model_id = r.model_id if r is not None else self._early_requests.get(rid)
        model = idx.models.get(model_id) if model_id is not None else None
        eth_fee = 0 if model is not None and model.fee_token is not None else int(a["fee"])  # fees_earned: wei
        idx.operators[op.address] = replace(
            op, results_finalized=op.results_finalized + 1, fees_earned=op.fees_earned + eth_fee
        )
        if r is not None:
            idx.requests[r.request_id] = replace(
                r,
                finalized=True,
                callback_succeeded=bool(a["callbackSucceeded"]),
                settled_at=at,
                settle_tx=tx,
            )

    def _on_Slashed(self, idx: _Index, a: Any, block: int, tx: str, at: int) -> None:
        op = self._op(idx, a["operator"])
        amount = int(a["amount"])
        idx.operators[op.address] = replace(op, slashes=op.slashes + 1, slashed=op.slashed + amount)
        rid = int(a["requestId"])
        if idx.disputes and idx.disputes[-1].request_id == rid:  # emitted after FraudProven
            idx.disputes[-1] = replace(idx.disputes[-1], slashed=idx.disputes[-1].slashed + amount)
        else:
            idx.slashed_by_request[rid] = idx.slashed_by_request.get(rid, 0) + amount

    def _on_FraudProven(self, idx: _Index, a: Any, block: int, tx: str, at: int) -> None:
        rid = int(a["requestId"])
        r = idx.requests.get(rid)
        correct = bytes(a["correctOutput"])
        if r is not None:
            idx.requests[rid] = replace(
                r,
                fraud=True,
                correct_output=correct,
                challenger=a["challenger"],
                callback_succeeded=bool(a["callbackSucceeded"]),
                settled_at=at,
                settle_tx=tx,
            )
        reward, burned = int(a["reward"]), int(a["burned"])
        idx.disputes.append(
            DisputeRecord(
                request_id=rid,
                model_id=r.model_id if r else None,
                operator=Web3.to_checksum_address(a["operator"]),
                challenger=a["challenger"],
                claimed_output=r.output if r else None,
                correct_output=correct,
                reward=reward,
                burned=burned,
                slashed=idx.slashed_by_request.pop(rid, 0),
                callback_succeeded=bool(a["callbackSucceeded"]),
                block=block,
                time=at,
                tx=tx,
            )
        )

    def _on_RequestRefunded(self, idx: _Index, a: Any, block: int, tx: str, at: int) -> None:
        r = idx.requests.get(int(a["requestId"]))
        if r is not None:
            idx.requests[r.request_id] = replace(r, refunded=True, settled_at=at, settle_tx=tx)

    def _on_ModelRegistered(self, idx: _Index, a: Any, block: int, tx: str, at: int) -> None:
        mid = int(a["modelId"])
        idx.models[mid] = ModelRecord(
            model_id=mid,
            owner=a["owner"],
            mode=Mode(int(a["mode"])),
            fee=int(a["fee"]),
            bond=int(a["bond"]),
            input_length=int(a["inputLength"]),
            output_length=int(a["outputLength"]),
            onnx_hash=bytes(a["onnxHash"]),
            program_commitment=bytes(a["programCommitment"]),
            uri=str(a["uri"]),
            registered_block=block,
            fee_token=None if int(a["feeToken"], 16) == 0 else Web3.to_checksum_address(a["feeToken"]),
        )

    def _on_ModelRetired(self, idx: _Index, a: Any, block: int, tx: str, at: int) -> None:
        m = idx.models.get(int(a["modelId"]))
        if m is not None:
            idx.models[m.model_id] = replace(m, retired=True)

    def _on_Staked(self, idx: _Index, a: Any, block: int, tx: str, at: int) -> None:
        self._op(idx, a["operator"])

    _on_UnstakeRequested = _on_Staked
    _on_StakeWithdrawn = _on_Staked
