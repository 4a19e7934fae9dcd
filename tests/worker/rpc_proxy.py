"""A fault-injecting JSON-RPC proxy for tests: 5xx, connection resets (before and after forwarding), timeouts."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests


class FaultProxy:
    """Forwards POSTs to ``upstream``; request number n gets a fault by a fixed, seedless schedule."""

    def __init__(self, upstream: str, timeout_sleep: float = 1.5) -> None:
        self.upstream = upstream
        self.timeout_sleep = timeout_sleep
        self.faults: Counter[str] = Counter()
        self.enabled = True
        #: HTTP requests and JSON-RPC calls (a batch counts each of its calls) seen, by method
        self.http_requests = 0
        self.calls: Counter[str] = Counter()
        self.bodies: list[Any] = []  # the calls themselves, when ``keep_bodies``
        self.keep_bodies = False
        #: optional targeted fault: called with each request body, returns a fault kind or None
        self.rule: Callable[[bytes], str | None] | None = None
        self._n = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _reset(self) -> None:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                proxy._count(body)
                fault = proxy.rule(body) if proxy.rule is not None else None
                if fault:
                    with proxy._lock:
                        proxy.faults[fault] += 1
                fault = fault or proxy._next_fault()
                if fault == "http_502":
                    self.send_response(502)
                    self.send_header("content-type", "text/html")
                    self.send_header("content-length", "11")
                    self.end_headers()
                    self.wfile.write(b"bad gateway")
                    return
                if fault == "reset_before":
                    self._reset()
                    return
                if fault == "timeout":
                    time.sleep(proxy.timeout_sleep)
                    self._reset()
                    return
                resp = requests.post(proxy.upstream, data=body, headers={"content-type": "application/json"},
                                     timeout=30)
                if fault == "reset_after":  # the node did the work, the client never hears of it
                    self._reset()
                    return
                self.send_response(resp.status_code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(resp.content)))
                self.end_headers()
                self.wfile.write(resp.content)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _count(self, body: bytes) -> None:
        try:
            msg = json.loads(body)
        except ValueError:
            return
        with self._lock:
            self.http_requests += 1
            for m in msg if isinstance(msg, list) else [msg]:
                if isinstance(m, dict):
                    self.calls[str(m.get("method"))] += 1
                    if self.keep_bodies:
                        self.bodies.append(m)

    def _next_fault(self) -> str | None:
        with self._lock:
            self._n += 1
            n = self._n
            if not self.enabled:
                return None
            fault = None
            if n % 17 == 3:
                fault = "http_502"
            elif n % 23 == 5:
                fault = "reset_before"
            elif n % 29 == 7:
                fault = "reset_after"
            elif n % 41 == 9:
                fault = "timeout"
            if fault:
                self.faults[fault] += 1
            return fault

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
