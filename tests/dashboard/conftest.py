"""Dashboard fixtures: the oracle deployed once per module on the session's anvil, with the shipped digits
model registered as EXACT (its real on-chain program) and an ATTESTED model, one staked operator."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from web3 import Web3

from oracle.api.dashboard import dashboard_router
from oracle.chain import artifacts
from oracle.chain.client import OracleClient
from oracle.chain.deploy import Deployment, DeployParams, deploy_system
from oracle.chain.tx import deploy
from oracle.chain.types import Mode, ModelSpec
from oracle.profile.models import model_entry, model_path, program_bytes

FEE = 10**15
BOND = 4 * FEE
STAKE = 10**18
WINDOW = 300
TIMEOUT = 600
DIGITS = model_entry("digits")
SAMPLES = DIGITS["samples"]


def sample_pixels(i: int = 0) -> bytes:
    return bytes.fromhex(SAMPLES[i]["input_hex"][2:])


def sample_output(i: int = 0) -> bytes:
    return bytes.fromhex(SAMPLES[i]["expected_output_hex"][2:])


def digits_spec(fee: int = FEE, bond: int = BOND) -> ModelSpec:
    return ModelSpec(
        onnx_hash=bytes.fromhex(DIGITS["onnx_keccak256"][2:]),
        fee=fee,
        bond=bond,
        input_length=64,
        output_length=1,
        mode=Mode.EXACT,
        uri=model_path("digits").as_uri(),
        program_commitment=bytes.fromhex(DIGITS["program_commitment"][2:]),
    )


def register_digits(client: OracleClient, owner: str, fee: int = FEE, bond: int = BOND) -> int:
    return client.register_model(owner, digits_spec(fee, bond), program_bytes("digits"))


@dataclass
class DashEnv:
    w3: Web3
    client: OracleClient
    deployment: Deployment
    exact_id: int
    attested_id: int

    @property
    def owner(self) -> str:
        return self.w3.eth.accounts[0]

    @property
    def operator(self) -> str:
        return self.w3.eth.accounts[1]

    @property
    def user(self) -> str:
        return self.w3.eth.accounts[3]

    @property
    def challenger(self) -> str:
        return self.w3.eth.accounts[4]

    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        resp = self.w3.provider.make_request(method, params or [])  # type: ignore[arg-type]
        if "error" in resp:
            raise RuntimeError(resp["error"])
        return resp["result"]

    def advance(self, seconds: int) -> None:
        self.rpc("evm_increaseTime", [seconds])
        self.rpc("evm_mine")

    def app(self, **kw: Any) -> TestClient:
        """A bare app with only the dashboard router, re-indexing on every call (refresh_interval=0)."""
        app = FastAPI()
        kw.setdefault("refresh_interval", 0)
        kw.setdefault("start_block", self.deployment.block)
        app.include_router(dashboard_router(self.client, **kw))
        return TestClient(app)


@pytest.fixture(scope="module")
def dash_deployed(session_w3: Web3) -> tuple[Deployment, int, int]:
    acct = session_w3.eth.accounts
    dep = deploy_system(
        session_w3,
        acct[0],
        DeployParams(challenge_window=WINDOW, request_timeout=TIMEOUT, unbonding_period=3600),
    )
    client = OracleClient(session_w3, dep.oracle)
    exact = register_digits(client, acct[0])
    attested = client.register_model(
        acct[0],
        ModelSpec(
            onnx_hash=b"\x07" * 32,
            fee=FEE,
            bond=BOND,
            input_length=64,
            output_length=1,
            mode=Mode.ATTESTED,
            uri="https://models.example/<b>not html</b>.onnx",
        ),
    )
    client.stake(acct[1], STAKE)
    return dep, exact, attested


@pytest.fixture
def env(dash_deployed: tuple[Deployment, int, int], w3: Web3) -> Iterator[DashEnv]:
    """The deployed system; every chain change a test makes is reverted afterwards (the w3 fixture)."""
    dep, exact, attested = dash_deployed
    yield DashEnv(w3, OracleClient(w3, dep.oracle), dep, exact, attested)


def token_model(client: OracleClient, owner: str, token_name: str, fee: int) -> tuple[str, int]:
    """Deploys the test token ``token_name`` and registers an ATTESTED model (64 -> 1 bytes) whose fee is ``fee``
    base units of it; returns (token address, model id)."""
    art = artifacts.load(token_name)
    token = deploy(client.w3, art.abi, art.bytecode, owner)
    spec = ModelSpec(onnx_hash=b"\x09" * 32, fee=fee, bond=BOND, input_length=64, output_length=1,
                     mode=Mode.ATTESTED, uri=f"https://models.example/{token_name}.onnx", fee_token=token)
    return token, client.register_model(owner, spec)
