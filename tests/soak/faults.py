"""The soak's RPC fault injector: ``tests/worker/rpc_proxy.FaultProxy`` with a seeded random schedule.

The base proxy picks faults by a fixed request-number pattern; the soak needs a rate it can turn up for a
deeper run, so this subclass draws each request's fault from a seeded RNG (the schedule is still not exactly
reproducible: the workers' threads interleave as they like). Faults, each counted in ``faults`` when injected:

- ``http_502``: an HTML 502 page instead of JSON;
- ``reset_before``: the connection is reset before the request reaches the node;
- ``reset_after``: the node executed the request (e.g. broadcast a transaction), the client never hears of it;
- ``timeout``: no answer until the client gives up (then a reset);
- ``slow``: forwarded after a delay shorter than the client's timeout (latency, not an error);
- ``stale_head``: a "latest block" query (``eth_blockNumber`` / ``eth_getBlockByNumber("latest")``) answered
  with an older head, as a lagging load-balanced endpoint does.

It also serves the driver's *kill at broadcast*: when armed, the next ``eth_sendRawTransaction`` is forwarded
to the node and then, before any answer goes back, ``on_broadcast(sender)`` is called (the driver SIGKILLs
that worker): the transaction is in the chain, the worker's database says "sent, no receipt".
"""

from __future__ import annotations

import io
import json
import random
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import requests
from eth_account import Account

from tests.worker.rpc_proxy import FaultProxy

ERROR_KINDS = ("http_502", "reset_before", "reset_after", "timeout", "slow")
ALL_KINDS = (*ERROR_KINDS, "stale_head")


def _is_head_query(msg: Any) -> bool:
    if not isinstance(msg, dict):
        return False
    method = msg.get("method")
    if method == "eth_blockNumber":
        return True
    params = msg.get("params") or []
    return method == "eth_getBlockByNumber" and bool(params) and params[0] == "latest"


class SoakFaultProxy(FaultProxy):
    """Forwards JSON-RPC to ``upstream``; each request gets a fault with probability ``rate``."""

    def __init__(self, upstream: str, *, rate: float, seed: int, stale_rate: float | None = None,
                 timeout_sleep: float = 1.5, slow_sleep: float = 0.3) -> None:
        super().__init__(upstream, timeout_sleep=timeout_sleep)
        self.rate = rate
        self.stale_rate = rate if stale_rate is None else stale_rate
        self.slow_sleep = slow_sleep
        self._rng = random.Random(seed)
        self._decided = threading.local()
        self._heads: deque[tuple[int, dict[str, Any]]] = deque(maxlen=8)  # (block number, result) per method
        self._session = requests.Session()
        self._session_lock = threading.Lock()
        self._trap: Callable[[str], None] | None = None
        proxy = self
        base: Any = self.server.RequestHandlerClass

        class Handler(base):  # type: ignore[misc, valid-type]
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                try:
                    msg = json.loads(body)
                except ValueError:
                    msg = None
                stale = proxy._stale_answer(msg)
                if stale is not None:
                    payload = json.dumps(stale).encode()
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if isinstance(msg, dict) and msg.get("method") == "eth_sendRawTransaction" \
                        and proxy._take_broadcast_trap():
                    proxy._spring_broadcast_trap(msg, body)
                    self._reset()
                    return
                if _is_head_query(msg):
                    proxy._remember_head(msg, body)
                original = self.rfile
                self.rfile = io.BytesIO(body)  # the base handler reads the body again
                try:
                    super().do_POST()
                finally:
                    self.rfile = original

        self.server.RequestHandlerClass = Handler
        self.handler_errors: list[str] = []
        server_handle_error = self.server.handle_error

        def handle_error(request: Any, client_address: Any) -> None:
            exc = sys.exc_info()[1]
            if isinstance(exc, (BrokenPipeError, ConnectionResetError)):
                return  # the client gave up first (its own timeout): expected under the "timeout" fault
            self.handler_errors.append(repr(exc))
            server_handle_error(request, client_address)

        self.server.handle_error = handle_error  # type: ignore[method-assign]

    # ---------------------------------------------------------------- kill at broadcast
    def arm_broadcast_trap(self, on_broadcast: Callable[[str], None] | None) -> None:
        with self._lock:
            self._trap = on_broadcast

    def _take_broadcast_trap(self) -> bool:
        with self._lock:
            return self._trap is not None

    def _spring_broadcast_trap(self, msg: dict[str, Any], body: bytes) -> None:
        with self._lock:
            trap, self._trap = self._trap, None
        requests.post(self.upstream, data=body, headers={"content-type": "application/json"}, timeout=30)
        if trap is not None:
            trap(Account.recover_transaction(msg["params"][0]))

    @property
    def requests_seen(self) -> int:
        return self._n

    def _next_fault(self) -> str | None:
        with self._lock:
            self._n += 1
            if not self.enabled or self._rng.random() >= self.rate:
                return None
            fault = self._rng.choice(ERROR_KINDS)
            self.faults[fault] += 1
        if fault == "slow":
            time.sleep(self.slow_sleep)
            return None
        return fault

    # ---------------------------------------------------------------- lagging head
    def _remember_head(self, msg: dict[str, Any], body: bytes) -> None:
        """Keeps a few recent heads (fetched on the side, so the client's own request is untouched)."""
        if len(self._heads) and self._rng.random() < 0.7:  # sample: a head every few queries is plenty
            return
        try:
            with self._session_lock:
                resp = self._session.post(self.upstream, data=body, headers={"content-type": "application/json"},
                                          timeout=10).json()
        except (requests.RequestException, ValueError):
            return
        result = resp.get("result")
        if result is None:
            return
        number = int(result, 16) if isinstance(result, str) else int(result["number"], 16)
        with self._lock:
            self._heads.append((number, {"method": msg["method"], "result": result}))

    def _stale_answer(self, msg: Any) -> dict[str, Any] | None:
        if not _is_head_query(msg):
            return None
        with self._lock:
            if not self.enabled or self._rng.random() >= self.stale_rate:
                return None
            candidates = [(n, r) for n, r in self._heads if r["method"] == msg["method"]]
            if not candidates or min(n for n, _ in candidates) == max(n for n, _ in candidates):
                return None  # nothing older than the newest known head to serve
            _, older = min(candidates, key=lambda c: c[0])  # several blocks behind under load
            self._n += 1
            self.faults["stale_head"] += 1
        return {"jsonrpc": "2.0", "id": msg.get("id"), "result": older["result"]}
