"""Red team, poisoned verifier (issue 9, item 5): one hostile model file next to a wrong digits result.

The attacker registers an EXACT model whose ONNX file passes every check of the model store (known ops, no
external data, each tensor under the 16 MiB cap, the whole file under 64 MiB) but whose two 8 MiB constants
the compiler folds into one 8 TiB tensor. Before, the daemon raised ``MemoryError`` on it, retried that claim
forever in deadline order (a wrong digits result attested in the same block was never examined and
finalized), and a restarted daemon exited at start-up every time. Now the file is only ever compiled in a
limited child, it is quarantined and reported (store, metric, log), and the wrong digits result is proven
in time; a restart starts, does not touch the file again and keeps proving.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from eth_utils import keccak
from onnx import TensorProto, helper, numpy_helper
from web3 import Web3

from oracle.chain.deploy import Deployment
from oracle.chain.types import Mode, ModelSpec
from oracle.challenger.store import ClaimState
from tests.challenger.harness import (
    BOND,
    FEE,
    Daemon,
    Env,
    deploy,
    env_of,
    make_challenger,
    proven_on_chain,
    sample_io,
    state_of,
    wait_for,
)
from tests.worker.conftest import placeholder_program

WINDOW = 120
N = 1 << 20  # 2**20 int64 = 8 MiB per constant; folded [N, 1] + [1, N] is 2**40 int64 = 8 TiB


def poisoned_onnx() -> bytes:
    """y = x + argmax(argmax(A + B)): every node reaches the output, and A + B folds to [N, N] int64."""
    g = helper.make_graph(
        [helper.make_node("Add", ["A", "B"], ["C"]),
         helper.make_node("ArgMax", ["C"], ["D"], axis=0, keepdims=1),
         helper.make_node("ArgMax", ["D"], ["E"], axis=1, keepdims=1),
         helper.make_node("Add", ["x", "E"], ["y"])],
        "bomb",
        [helper.make_tensor_value_info("x", TensorProto.INT64, [1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, [1, 1])],
        [numpy_helper.from_array(np.arange(N, dtype=np.int64).reshape(N, 1), "A"),
         numpy_helper.from_array(np.arange(N, dtype=np.int64).reshape(1, N), "B")],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8).SerializeToString()


@pytest.fixture(scope="module")
def deployed(session_w3: Web3, tmp_path_factory: pytest.TempPathFactory) -> tuple[Deployment, int, int]:
    dep, digits = deploy(session_w3, WINDOW)
    data = poisoned_onnx()
    assert 16 * 2**20 < len(data) < 64 * 2**20
    path = tmp_path_factory.mktemp("attacker") / "bomb.onnx"
    path.write_bytes(data)
    from oracle.chain.client import OracleClient

    poison = OracleClient(session_w3, dep.oracle).register_model(session_w3.eth.accounts[2], ModelSpec(
        onnx_hash=keccak(data), fee=FEE, bond=BOND, input_length=1, output_length=1, mode=Mode.EXACT,
        uri=path.as_uri(), program_commitment=keccak(placeholder_program(1, 1))), placeholder_program(1, 1))
    return dep, digits, poison


@pytest.fixture
def env(deployed: tuple[Deployment, int, int], w3: Web3) -> Iterator[Env]:
    yield env_of(w3, deployed[0], deployed[1], WINDOW)


def test_the_file_passes_the_model_stores_checks(deployed: tuple[Deployment, int, int], session_w3: Web3,
                                                 tmp_path: Path) -> None:
    """The attack needs no bypass: the production model store's checks (fetch, hash, protobuf, checker, ops,
    sizes, I/O) accept the file; only compiling it blows up, which the store's binding step survives too."""
    from oracle.chain.client import OracleClient
    from oracle.runtime.errors import BindingRefused
    from oracle.runtime.model_store import ModelStore

    model = OracleClient(session_w3, deployed[0].oracle).get_model(deployed[2])
    store = ModelStore(tmp_path, max_model_bytes=64 * 2**20, max_tensor_bytes=16 * 2**20)
    info = store.validate(model, store.fetch(model))
    assert info.input.shape == (1, 1) and info.output.shape == (1, 1)
    with pytest.raises(BindingRefused, match="memory"):
        store.get(model)


def test_poisoned_model_is_quarantined_and_the_wrong_result_next_to_it_proven(
        env: Env, deployed: tuple[Deployment, int, int], tmp_path: Path) -> None:
    poison = deployed[2]
    pixels, wrong_out = sample_io(0, wrong=True)
    rid_poison, _ = env.client.request(env.user, poison, b"\x05")
    rid_digits, _ = env.client.request(env.user, env.digits_id, pixels)
    # Both answers attested in the same block, the poisoned model's first.
    env.rpc("evm_setAutomine", False)
    try:
        tx_p = env.client.submit_fn(rid_poison, b"\x07").transact({"from": env.operator, "gas": 500_000})
        tx_d = env.client.submit_fn(rid_digits, wrong_out).transact({"from": env.operator, "gas": 500_000})
        env.rpc("evm_mine")
    finally:
        env.rpc("evm_setAutomine", True)
    blocks = {env.w3.eth.get_transaction_receipt(t)["blockNumber"] for t in (tx_p, tx_d)}
    assert len(blocks) == 1

    daemon = Daemon(make_challenger(env, tmp_path)).start()
    try:
        wait_for(lambda: env.client.status_of(rid_digits).name == "FRAUD_PROVEN", 60, "the digits fraud proven")
        (event,) = proven_on_chain(env, rid_digits)
        assert event["challenger"] == env.challenger
        assert event["timestamp"] < env.client.get_request(rid_digits).submitted_at + WINDOW
        # The file is compiled only in the audit child: quarantined, reported, and the program it was
        # registered with still judges its claims (this one is wrong too, and proven).
        status = wait_for(lambda: daemon.challenger.store.models().get((poison, "onnx")), 120, "the file audited")
        assert status[0] == "quarantined" and "memory" in (status[1] or ""), status
        assert daemon.challenger.metrics.alarms.labels(kind="onnx_quarantined")._value.get() == 1  # type: ignore[attr-defined]
        wait_for(lambda: state_of(daemon, rid_poison) is ClaimState.PROVEN, 30, "the poisoned model's own claim")
        wait_for(lambda: daemon.challenger.store.models().get((env.digits_id, "onnx")), 120, "digits audited")
        assert daemon.challenger.store.models()[(env.digits_id, "onnx")][0] == "bound"
        assert not daemon.died and daemon.alive
    finally:
        daemon.stop()

    # A restart: starts, does not compile the poisoned file again, and keeps proving.
    restarted = Daemon(make_challenger(env, tmp_path)).start()
    try:
        pixels, wrong_out = sample_io(1, wrong=True)
        rid, _ = env.client.request(env.user, env.digits_id, pixels)
        env.client.submit(env.operator, rid, wrong_out)
        wait_for(lambda: state_of(restarted, rid) is ClaimState.PROVEN, 60, "proven after the restart")
        assert restarted.challenger.store.models()[(poison, "onnx")][0] == "quarantined"
        assert restarted.challenger.verifier.auditor.restarts == 0  # never blew up again
        assert not restarted.died and restarted.alive
    finally:
        restarted.stop()
