"""Worker figures on a local anvil with a tiny integer model (one worker, batching on).

- ``worker.throughput_rps``: results attested on-chain per second: N requests pre-loaded, then the node
  started; time from start of processing to the last ResultSubmitted mined.
- ``worker.overhead_ms``: worker CPU ms per request (process CPU time of the node loop, which includes decode,
  SQLite, signing, RPC client work) minus the model's own inference time reported by the inference child.
- ``worker.latency_ms_p50``: request mined -> attestation mined, automine, depth 0, one request at a time.
- ``worker.throughput_rps_2_workers`` / ``_3_workers``: the throughput figure with two and three staked
  nodes (equal stakes) under exclusive assignment, each running its loop in a thread: each answers what is
  assigned to it; ``worker.race_reverts`` counts their submissions that reverted or were skipped (0 expected).

Run: ``.venv/bin/python bench/worker_bench.py``
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

N_THROUGHPUT = 300
N_LATENCY = 30
N_MULTI = 300


def run() -> dict[str, float]:
    import logging

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

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    with Devnet() as dev, tempfile.TemporaryDirectory() as tmpd:
        tmp = Path(tmpd)
        w3 = Web3(Web3.HTTPProvider(dev.url, request_kwargs={"timeout": 60}))
        acc = w3.eth.accounts
        dep = deploy_system(w3, acc[0], DeployParams(challenge_window=600, request_timeout=3600,
                                                     unbonding_period=3 * 24 * 3600))
        client = OracleClient(w3, dep.oracle)
        data = int_model().SerializeToString()
        (tmp / "m.onnx").write_bytes(data)
        program = compiled_program(data, 8, 16)
        assert program is not None
        mid = client.register_model(acc[0], ModelSpec(keccak(data), 10**15, 4 * 10**15, 8, 16, Mode.EXACT,
                                                      (tmp / "m.onnx").as_uri(), keccak(program)), program)
        op = dev_account(5)
        client.stake(acc[5], 10**21)
        start = w3.eth.block_number + 1
        # pre-load requests in few blocks (automine off), fee paid by an unlocked dev account
        w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
        fn_fee = 10**15
        for i in range(N_THROUGHPUT):
            client.request_fn(mid, int_input([i % 100, 1, 2, 3]), 0).transact(
                {"from": acc[3], "value": fn_fee, "gas": 300_000})
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
        settings = NodeSettings.load(None, rpc_urls=[dev.url], oracle_address=dep.oracle, db_path=tmp / "n.db",
                                     model_dir=tmp / "cache", poll_interval=0.005, api_port=0, start_block=start,
                                     private_key=op.key.hex(), batch_size=100, block_range=10_000)
        node = Node.from_settings(settings)
        inference_s = [0.0]

        node.setup()
        node.processor.on_inference = lambda _s, _n, ort_s: inference_s.__setitem__(0, inference_s[0] + ort_s)
        cpu0, t0 = time.process_time(), time.perf_counter()
        while node.db.counts().get("submitted", 0) < N_THROUGHPUT:
            if not node.step():
                node.idle(0.005)  # as the node's loop does: inference runs in the lanes meanwhile
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        throughput = N_THROUGHPUT / wall
        overhead_ms = (cpu - inference_s[0]) * 1000 / N_THROUGHPUT

        latencies = []
        for i in range(N_LATENCY):
            rid, rec = client.request(acc[3], mid, int_input([i, 2, 3, 4]))
            t_req = time.perf_counter()
            while (j := node.db.job(rid)) is None or j.state.value != "submitted":
                if not node.step():
                    node.idle(0.005)
            latencies.append((time.perf_counter() - t_req) * 1000)
        node.cleanup()
    multi = {f"worker.throughput_rps_{k}_workers": multi_worker_throughput(k) for k in (2, 3)}
    return {
        "worker.overhead_ms": round(overhead_ms, 3),
        "worker.throughput_rps": round(throughput, 1),
        "worker.latency_ms_p50": round(statistics.median(latencies), 2),
        **{k: v[0] for k, v in multi.items()},
        "worker.race_reverts": float(sum(v[1] for v in multi.values())),
    }


def multi_worker_throughput(workers: int) -> tuple[float, int]:
    """(results per second reaching the chain, submissions that reverted or skipped an item) for ``workers``
    nodes with equal stakes under exclusive assignment (30 s period), N_MULTI requests pre-loaded."""
    import logging

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

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    with Devnet() as dev, tempfile.TemporaryDirectory() as tmpd:
        tmp = Path(tmpd)
        w3 = Web3(Web3.HTTPProvider(dev.url, request_kwargs={"timeout": 60}))
        acc = w3.eth.accounts
        dep = deploy_system(w3, acc[0], DeployParams(challenge_window=600, request_timeout=3600,
                                                     unbonding_period=3 * 24 * 3600, exclusive_period=30))
        client = OracleClient(w3, dep.oracle)
        data = int_model().SerializeToString()
        (tmp / "m.onnx").write_bytes(data)
        program = compiled_program(data, 8, 16)
        assert program is not None
        mid = client.register_model(acc[0], ModelSpec(keccak(data), 10**15, 4 * 10**15, 8, 16, Mode.EXACT,
                                                      (tmp / "m.onnx").as_uri(), keccak(program)), program)
        for i in range(workers):
            client.stake(acc[5 + i], 10**21)
        start = w3.eth.block_number + 1
        w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
        for i in range(N_MULTI):
            client.request_fn(mid, int_input([i % 100, 1, 2, 3]), 0).transact(
                {"from": acc[3], "value": 10**15, "gas": 300_000})
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
        nodes = [Node.from_settings(NodeSettings.load(
            None, rpc_urls=[dev.url], oracle_address=dep.oracle, db_path=tmp / f"n{i}.db",
            model_dir=tmp / f"cache{i}", poll_interval=0.005, api_port=0, start_block=start,
            private_key=dev_account(5 + i).key.hex(), batch_size=100, block_range=10_000)) for i in range(workers)]
        for n in nodes:
            n.setup()
        threads = [threading.Thread(target=n.run, daemon=True) for n in nodes]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        while sum(n.db.counts().get("submitted", 0) for n in nodes) < N_MULTI:
            time.sleep(0.005)
        wall = time.perf_counter() - t0
        for n, t in zip(nodes, threads, strict=True):
            n.stop()
            t.join(timeout=20)
        # Every submission transaction of the nodes: reverted, or accepting fewer items than it carried.
        wasted = 0
        for n in nodes:
            for rec in (r for r in n.db.all_txs() if r.kind == "submit" and r.state.value == "mined"):
                receipt = w3.eth.get_transaction_receipt(rec.tx_hash)
                got = len(client.events_in(receipt, "ResultSubmitted"))
                wasted += int(receipt["status"] != 1 or got < len(rec.request_ids))
            n.cleanup()
    return round(N_MULTI / wall, 1), wasted


if __name__ == "__main__":
    for k, v in run().items():
        print(f"{k} {v}")
