"""The one retry policy of the daemons: exponential backoff with jitter (:class:`Backoff`), a call retried a
bounded number of times (:func:`retry`, for single idempotent RPC calls), and a call retried until it succeeds or
the daemon stops (:func:`retry_until_stopped`, for setup steps that wait for the chain to come up)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

#: longest wait between two attempts of a loop (seconds)
MAX_BACKOFF = 10.0

T = TypeVar("T")


class Backoff:
    """Exponential backoff with jitter, capped; :meth:`reset` when progress is made."""

    def __init__(self, base: float = 0.2, cap: float = MAX_BACKOFF) -> None:
        self.base = base
        self.cap = cap
        self.delay = 0.0

    def next(self) -> float:
        """The next wait (grows after each failure), jittered to 0.5-1.5 times the delay."""
        self.delay = min(self.cap, max(self.base, self.delay * 2))
        return self.delay * (0.5 + random.random())

    def reset(self) -> None:
        self.delay = 0.0


def retry(fn: Callable[[], T], *, retries: int, factor: float, should_retry: Callable[[BaseException], bool],
          on_retry: Callable[[BaseException], None] | None = None) -> T:
    """Calls ``fn``; a failure that ``should_retry`` accepts is retried up to ``retries`` times (waits factor,
    2 factor, ...)."""
    for attempt in range(retries + 1):
        try:
            return fn()
        except Exception as exc:
            if attempt >= retries or not should_retry(exc):
                raise
            if on_retry is not None:
                on_retry(exc)
            time.sleep(factor * 2**attempt)
    raise AssertionError("unreachable")


def retry_until_stopped(fn: Callable[[], T], stop: threading.Event, backoff: Backoff,
                        should_retry: Callable[[BaseException], bool],
                        on_retry: Callable[[BaseException, float], None] | None = None) -> T:
    """Calls ``fn`` until it returns, waiting ``backoff`` between attempts; a failure that ``should_retry``
    refuses, or the last failure once ``stop`` is set (also during the wait), is raised. ``on_retry`` gets the
    failure and the wait."""
    while True:
        try:
            return fn()
        except Exception as exc:
            if not should_retry(exc) or stop.is_set():
                raise
            delay = backoff.next()
            if on_retry is not None:
                on_retry(exc, delay)
            if stop.wait(delay):
                raise
