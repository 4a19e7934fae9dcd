"""A real operator node for the API fuzzer: its own oracle deployment on the session's anvil, the node's loop
running (so the admin routes really act), its API served over HTTP by uvicorn, with the dashboard routers
when the package ships them (try-it enabled, paid by a devnet account of its own).

The chain holds real data for the fuzzer to hit: the digits model registered as ``EXACT``, a few requests the
node answered (so ``/jobs`` and ``/api/dashboard/requests/{id}`` have rows), the model cached (so
``/models/{hash}`` serves bytes).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from eth_account import Account
from fastapi import APIRouter
from web3 import Web3

from oracle.app import start_api
from oracle.chain.client import OracleClient
from oracle.chain.deploy import Deployment, DeployParams, deploy_system
from oracle.chain.devnet import DEV_MNEMONIC
from oracle.chain.types import Mode, ModelSpec, Status
from oracle.profile.models import model_entry, model_path, program_bytes
from oracle.settings import NodeSettings
from oracle.worker.node import Node

ADMIN_KEY = "fuzz-admin-key-" + "0123456789abcdef"
MAX_BODY = 4096
FEE = 10**15
OPERATOR_INDEX = 14  # accounts 14 (operator), 15 (try-it payer), 16 (requester) are this module's own
DIGITS = model_entry("digits")

Account.enable_unaudited_hdwallet_features()


@dataclass
class LiveApi:
    base: str
    node: Node
    client: OracleClient
    deployment: Deployment
    model_id: int
    request_ids: list[int]
    onnx_hash: str
    dashboard: bool
    routes: list[tuple[str, str]] = field(default_factory=list)  # (method, path) of the served app

    def url(self, path: str) -> str:
        return self.base + path


def _dashboard_routers(client: OracleClient, start_block: int, payer: str, model_id: int) -> list[APIRouter]:
    try:
        from oracle.api.dashboard import dashboard_router
    except ImportError:  # the dashboard is not part of this build: fuzz the node API alone
        return []
    return [dashboard_router(client, start_block=start_block, try_signer=payer, try_model_id=model_id,
                             refresh_interval=0.2)]


@pytest.fixture(scope="module")
def live_api(session_w3: Web3, devnet: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    acct = session_w3.eth.accounts
    owner, payer, requester = acct[0], acct[OPERATOR_INDEX + 1], acct[OPERATOR_INDEX + 2]
    operator = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{OPERATOR_INDEX}")
    dep = deploy_system(session_w3, owner, DeployParams(challenge_window=600, request_timeout=900,
                                                         unbonding_period=3600))
    client = OracleClient(session_w3, dep.oracle)
    model_id = client.register_model(owner, ModelSpec(
        onnx_hash=bytes.fromhex(DIGITS["onnx_keccak256"][2:]), fee=FEE, bond=4 * FEE, input_length=64,
        output_length=1, mode=Mode.EXACT, uri=model_path("digits").as_uri(),
        program_commitment=bytes.fromhex(DIGITS["program_commitment"][2:])), program_bytes("digits"))
    client.stake(operator.address, 10**19)
    tmp = tmp_path_factory.mktemp("api-fuzz-node")
    settings = NodeSettings.load(
        None, rpc_urls=[devnet.url], oracle_address=dep.oracle, db_path=tmp / "node.sqlite3",
        model_dir=tmp / "cache", poll_interval=0.05, api_port=0, confirmations=0, start_block=dep.block + 1,
        private_key=operator.key.hex(), admin_key=ADMIN_KEY, max_body_bytes=MAX_BODY)
    node = Node.from_settings(settings)
    node.setup()
    thread = threading.Thread(target=node.run, name="api-fuzz-node", daemon=True)
    thread.start()
    try:
        routers = _dashboard_routers(client, dep.block, payer, model_id)
        port = start_api(node, port=0, extra_routers=routers)
        rids = []
        for s in DIGITS["samples"][:3]:
            rid, _ = client.request(requester, model_id, bytes.fromhex(s["input_hex"][2:]))
            rids.append(rid)
        deadline = time.monotonic() + 60
        while not all(client.status_of(r) is Status.SUBMITTED for r in rids):
            assert time.monotonic() < deadline, "the node did not answer the seed requests"
            time.sleep(0.1)
        api = LiveApi(f"http://127.0.0.1:{port}", node, client, dep, model_id, rids, DIGITS["onnx_keccak256"],
                      bool(routers))
        spec = requests.get(api.url("/openapi.json"), timeout=10).json()
        api.routes = [(m.upper(), p) for p, ops in spec["paths"].items() for m in ops]
        yield api
    finally:
        node.stop()
        thread.join(timeout=30)
        node.cleanup()


def _hypothesis_jsonschema_compat() -> None:
    """hypothesis-jsonschema 0.23.1 (the newest schemathesis 3.x accepts) drives ``many(...).more()``, a private
    Hypothesis API that newer Hypothesis releases replaced by a ``with many(...) as e: for _ in e:`` protocol,
    so every object schema (each operation's query/header/body parameters) fails with
    ``AttributeError: 'many' object has no attribute 'more'``. This adapter speaks the old protocol over the new
    one, for this test package only; the real fix is a pin (see tests/api_fuzz/README.md)."""
    from hypothesis.internal.conjecture import utils as cu

    if hasattr(cu.many, "more"):
        return
    import hypothesis_jsonschema._from_schema as from_schema

    class OldMany:
        def __init__(self, data: Any, min_size: int, max_size: float, average_size: float) -> None:
            self._inner = cu.many(data, min_size=min_size, max_size=max_size, average_size=average_size)
            self._inner.__enter__()
            self._elements = iter(self._inner)

        def more(self) -> bool:
            try:
                next(self._elements)
            except StopIteration:
                self._inner.__exit__(None, None, None)
                return False
            return True

        def reject(self, why: str | None = None) -> None:
            self._inner.reject(why)

    from_schema.cu = SimpleNamespace(many=OldMany)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def api_schema(live_api: LiveApi) -> Any:
    """The OpenAPI schema as the running node serves it (FastAPI writes OpenAPI 3.1: schemathesis 3.x supports
    it behind its experimental switch)."""
    import schemathesis

    schemathesis.experimental.OPEN_API_3_1.enable()
    _hypothesis_jsonschema_compat()
    return schemathesis.from_uri(live_api.url("/openapi.json"), base_url=live_api.base)
