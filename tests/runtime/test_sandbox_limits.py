"""The one sandbox (oracle.runtime.sandbox) contains whatever its job does: hangs, deaths, allocations, errors,
a jobs module that cannot load; a stream hands over every item that finished before the failure."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from oracle.runtime.sandbox import Sandbox, SandboxFailure, SandboxLimits

JOBS = "tests.runtime.sandbox_jobs"


@pytest.fixture
def box() -> Iterator[Sandbox]:
    sandbox = Sandbox(JOBS, SandboxLimits(timeout=20.0, memory_bytes=1 << 30), name="test-sandbox")
    yield sandbox
    sandbox.close()


def test_a_call_keeps_the_childs_state_and_an_error_does_not_restart_it(box: Sandbox) -> None:
    assert box.call("echo", {"a": [1, b"x"]}) == {"a": [1, b"x"]}
    pid = box.pid
    with pytest.raises(SandboxFailure) as err:
        box.call("fail", "bad input")
    assert err.value.kind == "error" and "ValueError: bad input" in str(err.value)
    assert box.pid == pid and box.restarts == 0 and box.call("calls") == 1


def test_each_stream_item_has_its_own_limit_and_the_finished_ones_are_handed_over(box: Sandbox) -> None:
    got: list[int] = []
    box.stream("items", 5, 2, 0.3, each=got.append, timeout=1.0)  # 0.3 s for one item: under its limit
    assert got == [0, 1, 2, 3, 4]
    got.clear()
    pid = box.pid
    t0 = time.monotonic()
    with pytest.raises(SandboxFailure) as err:
        box.stream("items", 5, 3, 60.0, each=got.append, timeout=1.0)
    assert err.value.kind == "timeout" and "wall-time" in str(err.value)
    assert got == [0, 1, 2] and time.monotonic() - t0 < 10
    assert box.restarts == 1 and box.pid is None  # killed; the next call starts a fresh child
    assert box.call("calls") == 0 and box.pid != pid


def test_a_stream_of_known_length_ends_at_its_last_item_and_the_pipe_stays_in_step(box: Sandbox) -> None:
    got: list[int] = []
    box.stream("items", 5, each=got.append, items=3)  # the child marks item 3 as the last and sends no more
    assert got == [0, 1, 2]
    got.clear()
    box.stream("items", 2, each=got.append, items=4)  # fewer than announced: the generator's end closes it
    assert got == [0, 1]
    assert box.call("echo", "next") == "next" and box.restarts == 0


def test_a_child_that_dies_mid_stream_fails_that_call_only(box: Sandbox) -> None:
    got: list[int] = []
    generation = box.generation
    with pytest.raises(SandboxFailure) as err:
        box.stream("die_at", 5, 2, each=got.append)
    assert err.value.kind == "crash" and got == [0, 1] and box.last_exit_code == 3
    assert box.call("echo", 7) == 7 and box.generation == generation + 2  # started, died, started again
    with pytest.raises(SandboxFailure) as err:
        box.call("die", 9)
    assert err.value.kind == "crash" and "exit code 9" in str(err.value)


def test_an_allocation_over_the_limit_is_a_memory_failure_and_a_fresh_heap(box: Sandbox) -> None:
    box.call("echo", 1)
    pid = box.pid
    with pytest.raises(SandboxFailure) as err:
        box.call("allocate", 4 << 30)  # 4 GiB under a 1 GiB address-space limit
    assert err.value.kind == "memory" and box.restarts == 1
    assert box.call("allocate", 1 << 20) == 1 << 20 and box.pid != pid


def test_a_jobs_module_that_cannot_load_is_refused_at_start() -> None:
    sandbox = Sandbox("tests.runtime.no_such_jobs", SandboxLimits(timeout=5.0), name="test-missing")
    try:
        with pytest.raises(SandboxFailure) as err:
            sandbox.call("echo", 1)
        assert err.value.kind == "crash" and "cannot import tests.runtime.no_such_jobs" in str(err.value)
        assert sandbox.pid is None
    finally:
        sandbox.close()


def test_ctrl_c_to_the_process_group_does_not_kill_the_child(box: Sandbox) -> None:
    box.call("echo", 1)
    assert box.pid is not None
    os.kill(box.pid, signal.SIGINT)
    assert box.call("calls") == 1 and box.restarts == 0


def test_close_kills_a_child_busy_in_another_thread(box: Sandbox) -> None:
    import threading

    failures: list[SandboxFailure] = []

    def busy() -> None:
        try:
            box.stream("items", 2, 0, 60.0, each=lambda _i: None, timeout=120.0)
        except SandboxFailure as exc:
            failures.append(exc)

    t = threading.Thread(target=busy)
    t.start()
    time.sleep(1.0)
    t0 = time.monotonic()
    box.close()
    t.join(timeout=10)
    assert not t.is_alive() and time.monotonic() - t0 < 10
    assert [f.kind for f in failures] == ["crash"] and box.pid is None
    with pytest.raises(SandboxFailure, match="closed"):  # a call that races close() starts no new child
        box.call("echo", 1)
    assert box.pid is None
