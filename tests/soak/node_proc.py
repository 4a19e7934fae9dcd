"""An operator node run as its own process for the soak (settings from ``ORACLE_*`` variables).

The soak kills it with ``SIGKILL`` and restarts it on the same database. A *dishonest* node is the same
process with ``SOAK_CORRUPT_RATE`` > 0: its executor alters that fraction of its ``EXACT`` outputs (chosen by a
keyed hash of the input, so the choice survives restarts and the driver can predict it). ``ATTESTED`` outputs
are never altered: nothing could prove them wrong, so the soak would only be measuring the trust assumption.

Test-only knobs (environment, never in the node's settings): ``SOAK_CORRUPT_RATE`` (0..1) and
``SOAK_CORRUPT_SEED`` (an integer).
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

import structlog
from eth_utils import keccak

from oracle.app import serve_node
from oracle.chain.types import Mode
from oracle.runtime.executor import ExecutorLimits, ProcessExecutor, Result
from oracle.runtime.model_checks import ModelInfo
from oracle.settings import NodeSettings
from oracle.worker.node import Node


def should_corrupt(seed: int, data: bytes, rate: float) -> bool:
    """Whether the dishonest node lies about ``data`` (deterministic in ``seed`` and the input bytes)."""
    if rate <= 0:
        return False
    draw = int.from_bytes(keccak(seed.to_bytes(8, "big") + data)[:8], "big") / 2**64
    return draw < rate


def corrupt(output: bytes) -> bytes:
    """A different output of the same length (the last byte moves by one)."""
    return output[:-1] + bytes([(output[-1] + 1) % 256])


class CorruptingExecutor(ProcessExecutor):
    """Runs the model honestly, then lies about a fraction of the ``EXACT`` outputs."""

    def __init__(self, limits: ExecutorLimits, rate: float, seed: int) -> None:
        super().__init__(limits)
        self.rate = rate
        self.seed = seed

    def run(self, model: ModelInfo, inputs: Sequence[bytes]) -> list[Result]:
        results = super().run(model, inputs)
        if model.mode is not Mode.EXACT:
            return results
        return [corrupt(r) if isinstance(r, bytes) and should_corrupt(self.seed, data, self.rate) else r
                for data, r in zip(inputs, results, strict=True)]


def error_site(exc: BaseException, depth: int = 5) -> str:
    """The innermost ``oracle`` frames an exception passed through (outermost first), e.g.
    ``worker/node.py:166:step>worker/listener.py:98:poll>worker/listener.py:55:_header``."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/oracle/" in f.filename][-depth:]
    if not frames:
        return "?"
    return ">".join(f"{f.filename.rsplit('/oracle/', 1)[-1]}:{f.lineno}:{f.name}" for f in frames)


def trace_errors(node: Node) -> None:
    """Logs where each error of the loop came from (``soak_error_site``): the soak reports the histogram."""
    log = structlog.get_logger("tests.soak.node_proc")
    note = node._note_error  # noqa: SLF001 - test-only instrumentation of the node's error hook

    def traced(exc: BaseException, where: str) -> None:
        log.warning("soak_error_site", where=where, site=error_site(exc), error=type(exc).__name__)
        note(exc, where)

    node._note_error = traced  # type: ignore[method-assign]  # noqa: SLF001


def main() -> None:
    settings = NodeSettings.load(None)
    rate = float(os.environ.get("SOAK_CORRUPT_RATE", "0"))
    seed = int(os.environ.get("SOAK_CORRUPT_SEED", "0"))

    def lane(limits: ExecutorLimits) -> CorruptingExecutor:  # every inference lane lies at the same rate
        return CorruptingExecutor(limits, rate, seed)

    node: Any = Node.from_settings(settings, executor_factory=lane)
    trace_errors(node)
    serve_node(node, install_signals=True)


if __name__ == "__main__":
    sys.exit(main())
