"""The one retry helper (oracle.chain.retry): what is retried, what is raised, and that a stop ends the waiting."""

from __future__ import annotations

import threading
import time

import pytest

from oracle.chain.retry import Backoff, retry, retry_until_stopped


class Flaky:
    """Fails ``failures`` times with ``error``, then returns how many calls it took."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return self.calls


def test_backoff_doubles_up_to_its_cap_with_jitter_and_resets() -> None:
    b = Backoff(0.1, 0.8)
    waits = [b.next() for _ in range(6)]
    assert b.delay == 0.8
    assert 0.05 <= waits[0] <= 0.15 and all(0.4 <= w <= 1.2 for w in waits[3:])
    b.reset()
    assert b.next() <= 0.15


def test_retry_gives_up_after_its_retries_and_never_retries_what_it_must_not() -> None:
    seen: list[BaseException] = []
    ok = Flaky(2, ConnectionError("reset"))
    assert retry(ok, retries=2, factor=0.001, should_retry=lambda e: isinstance(e, ConnectionError),
                 on_retry=seen.append) == 3
    assert len(seen) == 2
    too_flaky = Flaky(3, ConnectionError("reset"))
    with pytest.raises(ConnectionError):
        retry(too_flaky, retries=2, factor=0.001, should_retry=lambda e: True)
    assert too_flaky.calls == 3
    bug = Flaky(1, ValueError("a bug"))
    with pytest.raises(ValueError):
        retry(bug, retries=5, factor=0.001, should_retry=lambda e: isinstance(e, ConnectionError))
    assert bug.calls == 1


def test_retry_until_stopped_waits_out_transient_failures() -> None:
    delays: list[float] = []
    fn = Flaky(4, ConnectionError("not up yet"))
    result = retry_until_stopped(fn, threading.Event(), Backoff(0.001, 0.004), lambda e: True,
                                 lambda _e, d: delays.append(d))
    assert result == 5 and len(delays) == 4 and max(delays) <= 0.006


def test_retry_until_stopped_raises_a_refused_failure_at_once() -> None:
    fn = Flaky(10, ValueError("a bug"))
    with pytest.raises(ValueError):
        retry_until_stopped(fn, threading.Event(), Backoff(0.001), lambda e: isinstance(e, ConnectionError))
    assert fn.calls == 1


def test_a_stop_during_the_wait_ends_it_without_another_attempt() -> None:
    """A daemon stopping while its setup waits for the chain must not sit out a 30 s backoff, nor set up again."""
    stop = threading.Event()
    fn = Flaky(10**6, ConnectionError("node down"))
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    with pytest.raises(ConnectionError):
        retry_until_stopped(fn, stop, Backoff(30.0, 30.0), lambda e: True)
    assert time.monotonic() - started < 5.0
    assert fn.calls == 1
