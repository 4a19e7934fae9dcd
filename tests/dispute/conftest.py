"""A deployment with the dispute game, and a model too big for one proof transaction registered on it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pytest
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError

from oracle.chain import artifacts
from oracle.chain.client import OracleClient
from oracle.chain.deploy import Deployment, DeployParams, deploy_system
from oracle.chain.reverts import from_web3_error
from oracle.chain.types import Mode, ModelSpec
from oracle.dispute.actors import TX_GAS_CAP
from oracle.dispute.models import chained_mlp
from oracle.profile.program import Program, encode, encode_tensor

FEE = 10**15
BOND = 4 * FEE
GAME_BOND = 10**16
CLOCK = 3600
WINDOW = 600
LAYERS, WIDTH = 20, 512


@dataclass
class GameSystem:
    w3: Web3
    deployment: Deployment
    client: OracleClient
    game: Contract
    program: Program
    model_id: int
    owner: str
    operator: str
    user: str
    challenger: str
    challenger2: str

    def request(self, seed: int) -> tuple[int, bytes]:
        x = np.random.default_rng(seed).integers(-128, 128, size=self.program.input_shape)
        data = encode_tensor(x, self.program.input_width)
        rid, _ = self.client.request(self.user, self.model_id, data)
        return rid, data

    def advance(self, seconds: int) -> None:
        self.w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
        self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def game_deployed(session_w3: Web3, accounts: list[str]) -> tuple[Deployment, int, Program]:
    params = DeployParams(challenge_window=WINDOW, request_timeout=900, unbonding_period=3 * 86_400,
                          dispute_game=True, game_bond=GAME_BOND, game_clock=CLOCK)
    dep = deploy_system(session_w3, accounts[0], params)
    client = OracleClient(session_w3, dep.oracle)
    program = chained_mlp(LAYERS, WIDTH)
    data = encode(program)
    spec = ModelSpec(onnx_hash=b"\x33" * 32, fee=FEE, bond=BOND, input_length=WIDTH,
                     output_length=WIDTH * program.output_width, mode=Mode.EXACT, uri="file:///mlp.onnx",
                     program_commitment=Web3.keccak(data))
    model_id = client.register_model(accounts[0], spec, data)
    client.stake(accounts[1], 10**18)
    return dep, model_id, program


@pytest.fixture
def gs(game_deployed: tuple[Deployment, int, Program], w3: Web3, accounts: list[str]) -> GameSystem:
    dep, model_id, program = game_deployed
    g = artifacts.load("DisputeGame")
    game = w3.eth.contract(address=dep.dispute_game, abi=g.abi)
    return GameSystem(w3, dep, OracleClient(w3, dep.oracle), game, program, model_id,
                      accounts[0], accounts[1], accounts[2], accounts[3], accounts[4])


def gas_used(receipts: list) -> list[int]:
    used = [int(r["gasUsed"]) for r in receipts]
    assert all(u <= TX_GAS_CAP for u in used), used
    return used


@contextmanager
def revert_named(name: str) -> Iterator[None]:
    """Expects the block to revert with the custom error ``name`` (decoded from every artifact's ABI)."""
    try:
        yield
    except ContractLogicError as exc:
        err = from_web3_error(exc)
        assert err.name == name, f"reverted with {err.name}, expected {name}"
    else:
        raise AssertionError(f"did not revert (expected {name})")
