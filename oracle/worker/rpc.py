"""RPC access shared by the worker's components: the current endpoint, failover, transient-error detection.

Components hold an :class:`Rpc` and read ``rpc.w3`` / ``rpc.client`` at call time, so when the node rotates to
a fallback endpoint every component follows. :func:`is_transient` says whether a failure is worth retrying
with backoff (5xx, resets, timeouts, a lagging or unreachable node) rather than a bug or a revert.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import requests
import structlog
from web3 import Web3
from web3.exceptions import BlockNotFound, TimeExhausted, Web3RPCError

from oracle.chain.client import OracleClient
from oracle.worker.errors import TransientRpcError

log = structlog.get_logger("oracle.worker.rpc")


@dataclass(frozen=True)
class Head:
    """The latest block as seen at the start of a loop iteration."""

    number: int
    hash: str
    timestamp: int
    base_fee: int


class Rpc:
    """The worker's view of the chain, with failover across ``urls``."""

    def __init__(self, urls: Sequence[str], oracle_address: str, timeout: float = 10.0) -> None:
        if not urls:
            raise ValueError("at least one RPC url is needed")
        self.urls = list(urls)
        self.oracle_address = oracle_address
        self.timeout = timeout
        self._index = 0
        self.w3, self.client = self._connect(self.urls[0])

    def _connect(self, url: str) -> tuple[Web3, OracleClient]:
        w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": self.timeout}))
        return w3, OracleClient(w3, self.oracle_address)

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


def is_transient(exc: BaseException) -> bool:
    """True for failures of the transport or the node that a retry may fix."""
    if isinstance(exc, (TransientRpcError, requests.RequestException, ConnectionError, TimeoutError,
                        TimeExhausted, BlockNotFound)):
        return True
    if isinstance(exc, OSError):
        return True
    if isinstance(exc, Web3RPCError):
        msg = str(exc).lower()
        return any(s in msg for s in ("header not found", "timeout", "busy", "try again", "rate limit",
                                      "unavailable", "internal"))
    # web3 wraps non-JSON bodies (an HTML 502 page) in ValueError / JSONDecodeError
    return isinstance(exc, ValueError) and any(s in str(exc).lower() for s in ("json", "decode", "502", "503"))
