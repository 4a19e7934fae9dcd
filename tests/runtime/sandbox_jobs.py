"""Jobs for the sandbox's own tests: each one misbehaves in one way a model or a program can."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

_calls: list[int] = []  # proves the child keeps state between calls


def echo(value: object) -> object:
    _calls.append(1)
    return value


def calls() -> int:
    return len(_calls)


def items(n: int, slow_at: int = -1, seconds: float = 0.0) -> Iterator[int]:
    """Yields 0..n-1; item ``slow_at`` takes ``seconds`` first."""
    for i in range(n):
        if i == slow_at:
            time.sleep(seconds)
        yield i


def die(code: int) -> None:
    os._exit(code)  # what a segfault in native code looks like from the parent


def die_at(n: int, at: int) -> Iterator[int]:
    for i in range(n):
        if i == at:
            os._exit(3)
        yield i


def allocate(nbytes: int) -> int:
    return len(bytearray(nbytes))


def fail(message: str) -> None:
    raise ValueError(message)
