"""The challenger's limited child: timeouts, deaths and job errors are contained, and the next call works."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
from eth_utils import keccak

from oracle.challenger.verify import JOBS
from oracle.profile.models import model_entry, program_bytes
from oracle.profile.program import decode
from oracle.profile.reference import run_bytes
from oracle.runtime.sandbox import Sandbox, SandboxFailure, SandboxLimits

DIGITS = program_bytes("digits")
SAMPLE = bytes.fromhex(model_entry("digits")["samples"][0]["input_hex"][2:])


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox(JOBS, SandboxLimits(timeout=30.0))
    yield box
    box.close()


def test_runs_the_reference_like_in_process(sandbox: Sandbox) -> None:
    assert sandbox.call("load_program", keccak(DIGITS), DIGITS) == (decode(DIGITS).input_width,
                                                                    decode(DIGITS).output_width)
    assert sandbox.call("run_reference", keccak(DIGITS), [SAMPLE]) == [run_bytes(decode(DIGITS), SAMPLE)]


def test_job_error_is_reported_and_the_child_survives(sandbox: Sandbox) -> None:
    sandbox.call("load_program", keccak(DIGITS), DIGITS)
    pid = sandbox.pid
    with pytest.raises(SandboxFailure) as err:
        sandbox.call("load_program", b"\x00" * 32, DIGITS)  # bytes that do not match the commitment
    assert err.value.kind == "error" and "commitment" in str(err.value)
    assert sandbox.pid == pid and sandbox.call("has_program", keccak(DIGITS)) is True


def test_timeout_kills_the_child_and_the_next_call_gets_a_fresh_one(sandbox: Sandbox) -> None:
    sandbox.call("load_program", keccak(DIGITS), DIGITS)
    generation = sandbox.generation
    with pytest.raises(SandboxFailure) as err:
        sandbox.call("run_reference", keccak(DIGITS), [SAMPLE] * 2000, timeout=0.0)
    assert err.value.kind == "timeout" and sandbox.restarts == 1 and sandbox.pid is None
    assert sandbox.call("has_program", keccak(DIGITS)) is False  # a new child: the cache went with the old one
    assert sandbox.generation == generation + 1


def test_a_killed_child_is_replaced(sandbox: Sandbox) -> None:
    sandbox.call("load_program", keccak(DIGITS), DIGITS)
    assert sandbox.pid is not None
    os.kill(sandbox.pid, signal.SIGKILL)
    generation = sandbox.generation
    for _ in range(2):  # the death is noticed either at the call (crash) or before it (fresh child)
        try:
            assert sandbox.call("has_program", keccak(DIGITS)) is False
            break
        except SandboxFailure as exc:
            assert exc.kind == "crash"
    assert sandbox.generation > generation
