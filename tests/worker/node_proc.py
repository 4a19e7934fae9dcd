"""Runs an operator node as its own process for the kill -9 tests (settings from ORACLE_* variables).

Test-only knobs (environment, never in the node's settings): ``WORKER_TEST_SLOW`` seconds to sleep inside
each inference call and ``WORKER_TEST_MARKER`` a file created when an inference call starts, so a test can
kill the process exactly mid-inference. ``WORKER_TEST_GAME_LIE`` (an op index) makes the node defend a
tampered trace in dispute games (:func:`oracle.profile.trace.perturb_at`): a lying operator.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from oracle.app import serve_node
from oracle.profile.trace import perturb_at
from oracle.runtime.executor import ProcessExecutor, Result
from oracle.runtime.model_checks import ModelInfo
from oracle.settings import NodeSettings
from oracle.worker.node import Node


class SlowExecutor(ProcessExecutor):
    def run(self, model: ModelInfo, inputs: Sequence[bytes]) -> list[Result]:
        marker = os.environ.get("WORKER_TEST_MARKER")
        if marker:
            Path(marker).write_text(str(os.getpid()))
        time.sleep(float(os.environ.get("WORKER_TEST_SLOW", "0")))
        return super().run(model, inputs)


def main() -> None:
    node = Node.from_settings(NodeSettings.load(None), executor_factory=SlowExecutor)
    lie = os.environ.get("WORKER_TEST_GAME_LIE")
    if lie:
        node.game_tamper = perturb_at(int(lie))
    serve_node(node, install_signals=True)


if __name__ == "__main__":
    sys.exit(main())
