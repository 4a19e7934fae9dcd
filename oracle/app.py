"""The composition root: the one place that knows every part of a running process and wires them.

- :func:`serve_node` runs an operator node (:class:`oracle.worker.node.Node`) with its operator API
  (:mod:`oracle.api`) served by uvicorn on a thread beside it, and the signal handlers that stop both;
- :func:`start_api` serves the API over an already set-up node (the demo and tests use it);
- :func:`run_challenger` runs the challenger daemon (:class:`oracle.challenger.daemon.Challenger`) with its
  Prometheus endpoint and signal handlers.

The worker and the challenger import neither uvicorn nor the API: the API is written against the read ports of
:mod:`oracle.api.ports`, and :class:`NodeControl` is the adapter that gives it a node through them.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog
import uvicorn
from fastapi import APIRouter

from oracle.api.app import create_app
from oracle.challenger.daemon import Challenger
from oracle.runtime.model_store import ModelStore
from oracle.worker.db import Database
from oracle.worker.metrics import Metrics
from oracle.worker.node import Node, NodeStatus

log = structlog.get_logger("oracle.app")


class NodeControl:
    """What the operator API may see and do with a node (a narrow adapter, see :class:`oracle.api.ports.Control`)."""

    def __init__(self, node: Node) -> None:
        self._node = node

    @property
    def db(self) -> Database:
        return self._node.db

    @property
    def store(self) -> ModelStore:
        return self._node.store

    @property
    def metrics(self) -> Metrics:
        return self._node.metrics

    @property
    def admin_key(self) -> str | None:
        k = self._node.settings.admin_key
        return k.get_secret_value() if k is not None else None

    @property
    def max_body_bytes(self) -> int:
        return self._node.settings.max_body_bytes

    def status(self) -> NodeStatus:
        return self._node.status()

    def pause(self) -> None:
        self._node.pause()

    def resume(self) -> None:
        self._node.resume()

    def withdraw(self, to: str | None) -> dict[str, Any]:
        return self._node.withdraw_credits(to)

    def unpark(self, model_id: int) -> bool:
        return self._node.unpark(model_id)


class ApiServer:
    """uvicorn on a background thread (it only installs signal handlers on the main thread, so it installs none)."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        self.config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, name="oracle-api", daemon=True)

    def start(self, timeout: float = 10.0) -> int:
        """Starts serving; returns the bound port (useful with port 0)."""
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        s = self.server
        return int(s.servers[0].sockets[0].getsockname()[1] if s.servers else self.config.port)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


def start_api(node: Node, port: int | None = None, extra_routers: Sequence[APIRouter] = ()) -> int:
    """Serves the operator API (plus e.g. the dashboard routers) over ``node`` until the node's cleanup;
    returns the port."""
    s = node.settings
    server = ApiServer(create_app(control=NodeControl(node), extra_routers=extra_routers), s.api_host,
                       s.api_port if port is None else port)
    bound = server.start()
    node.add_closer(server.stop)
    log.info("api_started", host=s.api_host, port=bound)
    return bound


def _on_signals(stop: Callable[[], None]) -> None:
    def handler(signum: int, _frame: Any) -> None:
        log.info("stopping", signal=signal.Signals(signum).name)
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def serve_node(node: Node, install_signals: bool = True, extra_routers: Sequence[APIRouter] = ()) -> None:
    """setup → the API (when ``api_port`` is set, plus ``extra_routers`` such as the dashboard) → the node's
    loop until SIGTERM / SIGINT → cleanup (the API stops first)."""
    if install_signals:
        _on_signals(node.stop)
    try:
        node.setup()
        if node.settings.api_port:
            start_api(node, extra_routers=extra_routers)
        node.run()
    finally:
        node.cleanup()


def run_challenger(daemon: Challenger, metrics_port: int = 0) -> None:
    """The challenger's loop until SIGTERM / SIGINT, with its /metrics endpoint on ``metrics_port`` (0: off)."""
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr="127.0.0.1", registry=daemon.metrics.registry)
    _on_signals(daemon.stop)
    daemon.run()  # closes its sandbox children on the way out
