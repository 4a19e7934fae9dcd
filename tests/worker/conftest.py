"""Worker test fixtures: the system deployed once per session on the real anvil, tiny ONNX models built with
onnx.helper, operator keys from anvil's dev mnemonic, and a helper to build a node against them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from eth_account import Account
from eth_utils import keccak
from onnx import TensorProto, helper, numpy_helper
from web3 import Web3

from oracle.chain.client import OracleClient
from oracle.chain.deploy import Deployment, DeployParams, deploy_system
from oracle.chain.devnet import DEV_MNEMONIC
from oracle.chain.types import Mode, ModelSpec
from oracle.settings import NodeSettings
from oracle.worker.node import Node

FEE = 10**15
BOND = 4 * FEE
WINDOW = 600
TIMEOUT = 900
UNBONDING = 3 * 24 * 3600
OPERATOR_INDEX = 5  # accounts 5..9 are worker operators; 0 deploys, 3 requests

Account.enable_unaudited_hdwallet_features()

W_INT = np.array([[1, -2], [3, 4], [-5, 6], [7, 8]], dtype=np.int64)
B_INT = np.array([[10, -20]], dtype=np.int64)
W_FLOAT = np.array([[0.5, -1.0], [2.0, 0.25], [-0.125, 4.0]], dtype=np.float32)
B_FLOAT = np.array([[1.0, -1.0]], dtype=np.float32)


def compiled_program(data: bytes, input_length: int, output_length: int) -> bytes | None:
    """The program an EXACT file compiles to at the widths its registered lengths imply, or None."""
    from oracle.errors import OracleError
    from oracle.profile.binding import io_widths
    from oracle.profile.compiler import compile_onnx
    from oracle.profile.program import encode

    try:
        return encode(compile_onnx(data, *io_widths(data, input_length, output_length)))
    except OracleError:
        return None


def placeholder_program(input_length: int, output_length: int) -> bytes:
    """A valid integer program with the given canonical I/O lengths (1-byte elements; MatMul by zeros).

    The registry dry-runs every EXACT program on the verifier, so a model whose file cannot be compiled still
    needs an executable one; the worker refuses such a model (its file is not bound to the program).
    """
    from oracle.profile.opcodes import Opcode
    from oracle.profile.program import Constant, Op, Program, encode

    weights = np.zeros((input_length, output_length), dtype=np.int64)
    return encode(Program(1, 1, ((1, input_length), (input_length, output_length), (1, output_length)), 0, 2,
                          (Constant(1, 1, weights),), (Op(Opcode.MATMUL, (0, 1), 2),)))


def dev_account(index: int) -> Any:
    return Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


def int_model() -> onnx.ModelProto:
    """int64 [1,4] -> MatMul W[4,2] -> Add b -> int64 [1,2]  (input width 2, output width 8)."""
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Add", ["h", "B"], ["y"])],
        "int_mlp",
        [helper.make_tensor_value_info("x", TensorProto.INT64, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, [1, 2])],
        [numpy_helper.from_array(W_INT, "W"), numpy_helper.from_array(B_INT, "B")],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def float_model() -> onnx.ModelProto:
    """float32 [1,3] -> MatMul W[3,2] -> Add b -> float32 [1,2]."""
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Add", ["h", "B"], ["y"])],
        "float_lin",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [numpy_helper.from_array(W_FLOAT, "W"), numpy_helper.from_array(B_FLOAT, "B")],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def int_input(values: list[int]) -> bytes:
    return np.array(values, dtype=">i2").tobytes()


def expected_int_output(values: list[int]) -> bytes:
    y = np.array([values], dtype=np.int64) @ W_INT + B_INT
    return y.astype(">i8").tobytes()


def float_input(values: list[float]) -> bytes:
    return np.array(values, dtype=">f4").tobytes()


def expected_float_output(values: list[float]) -> bytes:
    y = np.array([values], dtype=np.float32) @ W_FLOAT + B_FLOAT
    return y.astype(">f4").tobytes()


@dataclass
class WorkerSystem:
    w3: Web3
    url: str
    deployment: Deployment
    client: OracleClient
    accounts: list[str]
    model_dir: Path  # where registered model files live (file:// URIs)
    int_model_id: int
    float_model_id: int
    extra: dict[str, int] = field(default_factory=dict)

    @property
    def requester(self) -> str:
        return self.accounts[3]

    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        resp = self.w3.provider.make_request(method, params or [])  # type: ignore[arg-type]
        if "error" in resp:
            raise RuntimeError(resp["error"])
        return resp["result"]

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def request(self, model_id: int, data: bytes) -> int:
        rid, _ = self.client.request(self.requester, model_id, data)
        return rid

    def register(self, data: bytes, mode: Mode, input_length: int, output_length: int,
                 onnx_hash: bytes | None = None, uri: str | None = None, name: str | None = None,
                 program: bytes | None = None, bond: int = BOND) -> int:
        """Registers ``data``; an EXACT model gets the program its file compiles to unless ``program`` is given."""
        name = name or keccak(data).hex()[:16]
        path = self.model_dir / f"{name}.onnx"
        path.write_bytes(data)
        if program is None:
            program = compiled_program(data, input_length, output_length) or placeholder_program(
                input_length, output_length)
        spec = ModelSpec(onnx_hash=onnx_hash or keccak(data), fee=FEE, bond=bond, input_length=input_length,
                         output_length=output_length, mode=mode, uri=uri or path.as_uri(),
                         program_commitment=keccak(program) if mode is Mode.EXACT else b"\x00" * 32)
        return self.client.register_model(self.accounts[0], spec, program if mode is Mode.EXACT else None)

    def submissions_by(self, operator: str, request_id: int) -> list[str]:
        """Hashes of every mined transaction from ``operator`` whose calldata carries ``request_id``."""
        needle = f"{request_id:064x}"
        out = []
        for n in range(self.deployment.block, self.w3.eth.block_number + 1):
            for tx in self.w3.eth.get_block(n, full_transactions=True)["transactions"]:
                if tx["from"].lower() == operator.lower() and needle in bytes(tx["input"]).hex():
                    out.append(tx["hash"].to_0x_hex())
        return out


@pytest.fixture(scope="session")
def worker_deployed(session_w3: Web3, accounts: list[str], devnet: Any,
                    tmp_path_factory: pytest.TempPathFactory) -> WorkerSystem:
    # Assignment off: these tests let one node answer what several operators staked for;
    # test_worker_assignment.py runs nodes with it on.
    params = DeployParams(challenge_window=WINDOW, request_timeout=TIMEOUT, unbonding_period=UNBONDING,
                          min_bond_ratio=4, max_callback_gas=1_000_000, exclusive_period=0)
    dep = deploy_system(session_w3, accounts[0], params)
    client = OracleClient(session_w3, dep.oracle)
    model_dir = tmp_path_factory.mktemp("registered-models")
    ws = WorkerSystem(session_w3, devnet.url, dep, client, accounts, model_dir, 0, 0)
    ws.int_model_id = ws.register(int_model().SerializeToString(), Mode.EXACT, 8, 16, name="int")
    ws.float_model_id = ws.register(float_model().SerializeToString(), Mode.ATTESTED, 12, 8, name="float")
    for i in range(OPERATOR_INDEX, OPERATOR_INDEX + 5):
        client.stake(accounts[i], 10**20)
    return ws


@pytest.fixture
def ws(worker_deployed: WorkerSystem, w3: Web3) -> WorkerSystem:
    """The deployed system; the chain is reverted after each test (the w3 fixture)."""
    return worker_deployed


def make_settings(ws: WorkerSystem, tmp: Path, operator_index: int = OPERATOR_INDEX, **kw: Any) -> NodeSettings:
    base: dict[str, Any] = dict(
        rpc_urls=[ws.url], oracle_address=ws.deployment.oracle, db_path=tmp / "node.sqlite3",
        model_dir=tmp / "cache", poll_interval=0.02, api_port=0, confirmations=0, min_time_left=30,
        stuck_after=5.0, start_block=ws.w3.eth.block_number + 1, inference_timeout=20.0,
        private_key=dev_account(operator_index).key.hex(),
    )
    base.update(kw)
    return NodeSettings.load(None, **base)


class RunningNode:
    """A node run in a background thread of the test process."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            self.node.run()
        except BaseException as exc:  # noqa: BLE001
            self.error = exc

    def start(self) -> RunningNode:
        self.node.setup()
        self.thread.start()
        return self

    def stop(self) -> None:
        self.node.stop()
        self.thread.join(timeout=20)
        self.node.cleanup()


@pytest.fixture
def node_factory(ws: WorkerSystem, tmp_path: Path) -> Iterator[Any]:
    started: list[RunningNode] = []

    def make(start: bool = True, operator_index: int = OPERATOR_INDEX, executor: Any = None,
             **kw: Any) -> RunningNode | Node:
        node = Node.from_settings(make_settings(ws, tmp_path, operator_index, **kw), executor=executor)
        if not start:
            return node
        rn = RunningNode(node).start()
        started.append(rn)
        return rn

    yield make
    for rn in started:
        if rn.thread.is_alive() or rn.node._started:  # noqa: SLF001
            try:
                rn.stop()
            except Exception:  # noqa: BLE001 - already cleaned up by the test
                pass


def wait_for(cond: Any, timeout: float = 20.0, interval: float = 0.05, what: str = "condition") -> Any:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")
