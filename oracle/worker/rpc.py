"""RPC access shared by the worker's components: the current endpoint, failover, transient-error detection,
and the one retry policy every RPC of the worker goes through.

Components hold an :class:`Rpc` and read ``rpc.w3`` / ``rpc.client`` at call time, so when the node rotates to
a fallback endpoint every component follows. :func:`is_transient` says whether a failure is worth retrying
with backoff (5xx, resets, timeouts, a lagging or unreachable node) rather than a bug or a revert.

Retries: every call the worker makes is idempotent (reads, ``eth_call``, ``eth_estimateGas`` and re-sending the
same signed bytes), so a transport failure (a reset, a timeout, a 5xx) is retried in place by
:func:`oracle.chain.retry.retry`, :data:`RETRIES` times with exponential backoff: single calls by
:class:`RetryingHTTPProvider` (web3's own retry misses ``requests.ConnectionError``, a reset), JSON-RPC batches
by :meth:`Rpc.batch`. The node loop backs off between steps with :class:`oracle.chain.retry.Backoff`, reset
whenever a step made progress.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import requests
import structlog
from web3 import HTTPProvider, Web3
from web3.exceptions import Web3RPCError

from oracle.chain.client import OracleClient
from oracle.chain.faults import is_transient
from oracle.chain.retry import retry
from oracle.chain.types import Head
from oracle.errors import TransientRpcError

log = structlog.get_logger("oracle.worker.rpc")

#: transport failures retried in place (a reset, a timeout, a 5xx page)
RETRY_ERRORS: tuple[type[BaseException], ...] = (requests.ConnectionError, requests.Timeout, requests.HTTPError)
RETRIES = 3
BACKOFF_FACTOR = 0.1


def _is_transport_error(exc: BaseException) -> bool:
    return isinstance(exc, RETRY_ERRORS)


class RetryingHTTPProvider(HTTPProvider):
    """web3's HTTP provider with :func:`~oracle.chain.retry.retry` around every request: resets included (web3's
    own retry configuration misses ``requests.ConnectionError``), every method (all of the worker's are idempotent)."""

    def __init__(self, url: str, timeout: float, on_retry: Callable[[BaseException], None] | None) -> None:
        super().__init__(url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None)
        self._on_retry = on_retry

    def _make_request(self, method: Any, request_data: bytes) -> bytes:
        def once() -> bytes:
            assert self.endpoint_uri is not None
            return self._request_session_manager.make_post_request(
                self.endpoint_uri, request_data, **self.get_request_kwargs())

        return retry(once, retries=RETRIES, factor=BACKOFF_FACTOR, should_retry=_is_transport_error,
                     on_retry=self._on_retry)


class RpcBatchError(TransientRpcError):
    """A JSON-RPC batch came back without a result for some of its calls."""


class Rpc:
    """The worker's view of the chain, with failover across ``urls``."""

    def __init__(self, urls: Sequence[str], oracle_address: str, timeout: float = 10.0) -> None:
        if not urls:
            raise ValueError("at least one RPC url is needed")
        self.urls = list(urls)
        self.oracle_address = oracle_address
        self.timeout = timeout
        self._index = 0
        self._session = requests.Session()
        #: transport failures retried in place so far, and a hook called on each (the node counts them)
        self.retries = 0
        self.on_retry: Callable[[BaseException], None] | None = None
        self.w3, self.client = self._connect(self.urls[0])

    def _connect(self, url: str) -> tuple[Web3, OracleClient]:
        w3 = Web3(RetryingHTTPProvider(url, self.timeout, self._retried))
        return w3, OracleClient(w3, self.oracle_address)

    def _retried(self, exc: BaseException) -> None:
        self.retries += 1
        log.warning("rpc_retry", error=f"{type(exc).__name__}: {str(exc)[:160]}")
        if self.on_retry is not None:
            self.on_retry(exc)

    @property
    def url(self) -> str:
        return self.urls[self._index]

    def rotate(self) -> None:
        """Switches to the next endpoint (no-op with a single one)."""
        if len(self.urls) == 1:
            return
        self._index = (self._index + 1) % len(self.urls)
        self.w3, self.client = self._connect(self.urls[self._index])
        log.warning("rpc_failover", endpoint_index=self._index)

    def head(self) -> Head:
        b = self.w3.eth.get_block("latest")
        return Head(int(b["number"]), b["hash"].to_0x_hex(), int(b["timestamp"]), int(b.get("baseFeePerGas", 0)))

    def batch(self, calls: Sequence[tuple[str, list[Any]]], errors_ok: bool = False) -> list[Any]:
        """Sends ``calls`` as one JSON-RPC batch (one round trip), retried as a whole on a transient failure;
        returns their results in order. An error answer raises (``Web3RPCError`` for a node error, e.g. a
        revert, :class:`RpcBatchError` for a missing answer); with ``errors_ok`` a non-transient error answer
        (a revert) is returned in its place as a ``Web3RPCError`` instead."""
        if not calls:
            return []

        def once() -> list[Any]:
            body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
            resp = self._session.post(self.url, json=body, timeout=self.timeout)
            resp.raise_for_status()
            data = resp.json()
            if not isinstance(data, list):
                raise RpcBatchError(f"batch answered with {str(data)[:200]}")
            by_id = {d.get("id"): d for d in data}
            out = []
            for i in range(len(calls)):
                d = by_id.get(i)
                if d is None:
                    raise RpcBatchError(f"no answer for call {i} ({calls[i][0]}) in a batch of {len(calls)}")
                if "error" in d:
                    err = Web3RPCError(str(d["error"]), rpc_response=d)
                    if not errors_ok or is_transient(err):
                        raise err
                    out.append(err)
                    continue
                out.append(d["result"])
            return out

        return retry(once, retries=RETRIES, factor=BACKOFF_FACTOR, should_retry=is_transient, on_retry=self._retried)

    def blocks(self, numbers: Sequence[int]) -> dict[int, dict[str, Any] | None]:
        """Headers of ``numbers`` in one batch: ``{n: {"hash", "parentHash", "timestamp"} | None}`` (None: the
        node does not have that block). Hashes are 0x-hex strings."""
        ns = sorted(set(numbers))
        res = self.batch([("eth_getBlockByNumber", [hex(n), False]) for n in ns])
        out: dict[int, dict[str, Any] | None] = {}
        for n, b in zip(ns, res, strict=True):
            out[n] = None if b is None else {"number": int(b["number"], 16), "hash": b["hash"],
                                              "parentHash": b["parentHash"], "timestamp": int(b["timestamp"], 16)}
        return out
