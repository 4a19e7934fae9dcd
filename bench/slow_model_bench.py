"""A slow model beside a fast one (issue 12, item 3), on a local anvil with one worker at its default lanes.

An ATTESTED model that really takes ~10 s per input (1024x1024 MatMul chain, ``tests.worker.
test_worker_slow_model.slow_model``) gets three requests with a 3 s per-input budget; then digits-like
requests (the tiny EXACT int model) are made one at a time while the slow model is being tried and parked.

- ``worker.latency_ms_p50_beside_slow_model`` / ``..._max_...``: request mined -> attestation mined for the
  fast model while the slow one holds a lane (before lanes the issue measured 45 s).
- ``worker.slow_model_parked_s``: first slow request mined -> the model parked (3 budgets + child restarts).

Run: ``.venv/bin/python bench/slow_model_bench.py``
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

N_FAST = 15
BUDGET = 3.0


def run() -> dict[str, float]:
    import logging

    import numpy as np
    import structlog
    from eth_utils import keccak
    from web3 import Web3

    from oracle.chain.client import OracleClient
    from oracle.chain.deploy import DeployParams, deploy_system
    from oracle.chain.devnet import Devnet
    from oracle.chain.types import Mode, ModelSpec
    from oracle.settings import NodeSettings
    from oracle.worker.node import Node
    from tests.worker.conftest import compiled_program, dev_account, int_input, int_model
    from tests.worker.test_worker_slow_model import slow_model

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    with Devnet() as dev, tempfile.TemporaryDirectory() as tmpd:
        tmp = Path(tmpd)
        w3 = Web3(Web3.HTTPProvider(dev.url, request_kwargs={"timeout": 60}))
        acc = w3.eth.accounts
        dep = deploy_system(w3, acc[0], DeployParams(challenge_window=600, request_timeout=3600,
                                                     unbonding_period=3 * 24 * 3600))
        client = OracleClient(w3, dep.oracle)
        fast_data = int_model().SerializeToString()
        (tmp / "fast.onnx").write_bytes(fast_data)
        program = compiled_program(fast_data, 8, 16)
        assert program is not None
        fast = client.register_model(acc[0], ModelSpec(keccak(fast_data), 10**15, 4 * 10**15, 8, 16, Mode.EXACT,
                                                       (tmp / "fast.onnx").as_uri(), keccak(program)), program)
        slow_data = slow_model()
        (tmp / "slow.onnx").write_bytes(slow_data)
        slow = client.register_model(acc[0], ModelSpec(keccak(slow_data), 10**15, 4 * 10**15, 4, 4, Mode.ATTESTED,
                                                       (tmp / "slow.onnx").as_uri(), b"\x00" * 32))
        client.stake(acc[5], 10**21)
        settings = NodeSettings.load(None, rpc_urls=[dev.url], oracle_address=dep.oracle, db_path=tmp / "n.db",
                                     model_dir=tmp / "cache", poll_interval=0.05, api_port=0,
                                     start_block=w3.eth.block_number + 1, private_key=dev_account(5).key.hex(),
                                     model_timeouts={slow: BUDGET})
        node = Node.from_settings(settings)
        node.setup()
        loop = threading.Thread(target=node.run, daemon=True)
        loop.start()

        def answer(model_id: int, data: bytes) -> float:
            rid, _ = client.request(acc[3], model_id, data)
            t0 = time.perf_counter()
            while (j := node.db.job(rid)) is None or j.state.value != "submitted":
                time.sleep(0.005)
            return (time.perf_counter() - t0) * 1000

        try:
            answer(fast, int_input([1, 2, 3, 4]))  # warm-up: lanes started, the EXACT model bound
            t_slow = time.perf_counter()
            for i in range(3):
                client.request(acc[3], slow, np.array([float(i)], dtype=">f4").tobytes())
            latencies = [answer(fast, int_input([i, 2, 3, 4])) for i in range(N_FAST)]
            while slow not in node.db.parked_models():
                time.sleep(0.05)
            parked_s = time.perf_counter() - t_slow
        finally:
            node.stop()
            loop.join(timeout=30)
            node.cleanup()
    return {
        "worker.latency_ms_p50_beside_slow_model": round(statistics.median(latencies), 2),
        "worker.latency_ms_max_beside_slow_model": round(max(latencies), 2),
        "worker.slow_model_parked_s": round(parked_s, 2),
    }


if __name__ == "__main__":
    for k, v in run().items():
        print(f"{k:45s} {v}")
