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
from oracle.chain.plans import packed_plan
from oracle.chain.reverts import from_web3_error
from oracle.chain.types import Mode, ModelSpec
from oracle.dispute.actors import TX_GAS_CAP
from oracle.dispute.party import game_contract
from oracle.dispute.synthetic import chained_mlp
from oracle.profile.codec import encode_tensor
from oracle.profile.program import Program, encode

FEE = 10**15
BOND = 4 * FEE
GAME_BOND = 10**16
CLOCK = 3600
WINDOW = 600
LAYERS, WIDTH = 20, 512
#: The tiled model: each MatMul (32 rows x 512 x 512, 8.4M MACs) is over the one-transaction limit alone.
TILED_LAYERS, TILED_ROWS = 3, 32


@dataclass
class GameSystem:
    w3: Web3
    deployment: Deployment
    client: OracleClient
    game: Contract
    steps: Contract  # StepGasBound: tile plan and step bound
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

    def chunks(self) -> list[str]:
        return list(self.client.contract.functions.programChunks(self.model_id).call())

    def plan(self) -> list[int]:
        """The program's tile plan, packed (what registration fixed on the game)."""
        return packed_plan(encode(self.program), TX_GAS_CAP)

    def step_gas_bound(self) -> int:
        """`StepGasBound.checkPlan`'s bound on every game transaction under the plan."""
        return int(self.steps.functions.checkPlan(self.chunks(), TX_GAS_CAP, self.plan()).call()[4])

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
    model_id = register(client, accounts[0], program)
    client.stake(accounts[1], 10**18)
    return dep, model_id, program


def model_spec(program: Program) -> ModelSpec:
    """An EXACT spec for ``program`` (its I/O lengths and commitment)."""
    n_in = int(np.prod(program.input_shape)) * program.input_width
    n_out = int(np.prod(program.output_shape)) * program.output_width
    return ModelSpec(onnx_hash=b"\x33" * 32, fee=FEE, bond=BOND, input_length=n_in, output_length=n_out,
                     mode=Mode.EXACT, uri="file:///mlp.onnx", program_commitment=Web3.keccak(encode(program)))


def register(client: OracleClient, owner: str, program: Program) -> int:
    """Registers ``program`` through the client (which fixes its tile plan when it is game-provable)."""
    return client.register_model(owner, model_spec(program), encode(program))


@pytest.fixture(scope="session")
def tiled_model(game_deployed: tuple[Deployment, int, Program], session_w3: Web3,
                accounts: list[str]) -> tuple[int, Program]:
    dep = game_deployed[0]
    program = chained_mlp(TILED_LAYERS, WIDTH, rows=TILED_ROWS)
    return register(OracleClient(session_w3, dep.oracle), accounts[0], program), program


@pytest.fixture
def gs(game_deployed: tuple[Deployment, int, Program], w3: Web3, accounts: list[str]) -> GameSystem:
    dep, model_id, program = game_deployed
    return _system(w3, dep, model_id, program, accounts)


@pytest.fixture
def tgs(game_deployed: tuple[Deployment, int, Program], tiled_model: tuple[int, Program], w3: Web3,
        accounts: list[str]) -> GameSystem:
    """The game system on the tiled model."""
    return _system(w3, game_deployed[0], *tiled_model, accounts)


def _system(w3: Web3, dep: Deployment, model_id: int, program: Program, accounts: list[str]) -> GameSystem:
    game = game_contract(w3, dep.dispute_game)
    steps = w3.eth.contract(address=game.functions.STEP_GAS_BOUND().call(), abi=artifacts.load("StepGasBound").abi)
    return GameSystem(w3, dep, OracleClient(w3, dep.oracle), game, steps, program, model_id,
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
