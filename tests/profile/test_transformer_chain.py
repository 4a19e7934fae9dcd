"""The transformer on chain (anvil, prague): the verifier returns the reference's bytes for the shipped
digits_transformer; its whole re-execution is over the 2^24 transaction cap, so it is registered
game-provable and a wrong answer is proven and slashed through the dispute game with every transaction
under the cap, while an honest answer survives a lying challenger."""

from __future__ import annotations

import numpy as np
import pytest
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError

from oracle.chain.client import OracleClient
from oracle.chain.deploy import Deployment, DeployParams, deploy_system
from oracle.chain.types import Mode, ModelSpec
from oracle.dispute.actors import TX_GAS_CAP, Actor, Phase, play
from oracle.profile import gas_bound
from oracle.profile.codec import width_range
from oracle.profile.models import model_entry, program_bytes
from oracle.profile.program import decode
from oracle.profile.trace import Trace, perturb_at
from tests.dispute.conftest import BOND, CLOCK, FEE, GAME_BOND, WINDOW, GameSystem, _system, gas_used
from tests.verifier.conftest import verifier  # noqa: F401 (fixture)
from tests.verifier.helpers import assert_conforms

ENTRY = model_entry("digits_transformer")
PROGRAM = decode(program_bytes("digits_transformer"))
LO, HI = width_range(1)


def test_verifier_equals_reference_for_shipped_digits_transformer(verifier: Contract) -> None:  # noqa: F811
    rng = np.random.default_rng(21)
    xs = [np.full((1, 64), LO), np.full((1, 64), HI), rng.integers(0, 17, size=(1, 64))]
    xs += [np.frombuffer(bytes.fromhex(s["input_hex"][2:]), dtype=np.int8).astype(np.int64).reshape(1, 64)
           for s in ENTRY["samples"][:1]]
    for x in xs:
        assert_conforms(verifier, PROGRAM, x)


@pytest.fixture(scope="module")
def game_deployed(session_w3: Web3, accounts: list[str]) -> tuple[Deployment, int]:
    params = DeployParams(challenge_window=WINDOW, request_timeout=900, unbonding_period=3 * 86_400,
                          dispute_game=True, game_bond=GAME_BOND, game_clock=CLOCK)
    dep = deploy_system(session_w3, accounts[0], params)
    client = OracleClient(session_w3, dep.oracle)
    spec = ModelSpec(onnx_hash=bytes.fromhex(ENTRY["onnx_keccak256"][2:]), fee=FEE, bond=BOND, input_length=64,
                     output_length=1, mode=Mode.EXACT, uri="file:///models/digits_transformer.onnx",
                     program_commitment=bytes.fromhex(ENTRY["program_commitment"][2:]))
    model_id = client.register_model(accounts[0], spec, program_bytes("digits_transformer"))
    client.stake(accounts[1], 10**18)
    return dep, model_id


@pytest.fixture
def gs(game_deployed: tuple[Deployment, int], w3: Web3, accounts: list[str]) -> GameSystem:
    dep, model_id = game_deployed
    return _system(w3, dep, model_id, PROGRAM, accounts)


def _request(gs: GameSystem, sample: int) -> tuple[int, bytes]:
    data = bytes.fromhex(ENTRY["samples"][sample]["input_hex"][2:])
    rid, _ = gs.client.request(gs.user, gs.model_id, data)
    return rid, data


def test_transformer_is_game_provable_not_one_transaction(gs: GameSystem) -> None:
    data = program_bytes("digits_transformer")
    assert gas_bound.execution_bound(PROGRAM, len(data)).total > TX_GAS_CAP
    assert gs.step_gas_bound() <= TX_GAS_CAP
    rid, x = _request(gs, 0)
    gs.client.submit(gs.operator, rid, bytes.fromhex(ENTRY["samples"][0]["expected_output_hex"][2:]))
    with pytest.raises(ContractLogicError):
        gs.client.contract.functions.challenge(rid, x).estimate_gas({"from": gs.challenger, "gas": TX_GAS_CAP})


def test_wrong_transformer_answer_is_slashed_through_the_game(gs: GameSystem) -> None:
    rid, x = _request(gs, 1)
    honest = Trace.from_input_bytes(PROGRAM, x)
    assert honest.output_bytes() == bytes.fromhex(ENTRY["samples"][1]["expected_output_hex"][2:])
    # The lie starts inside the network, at the first op of a new kind (an exp-table Gather, a computed-divisor
    # Div, a ReduceMax, ...) whose perturbation changes the digit: the game must bisect to it and prove
    # that step on chain.
    kinds = ("GATHER", "DIV", "REDUCEMAX", "REDUCESUM", "MATMUL")
    for lie_at in (i for i, op in enumerate(PROGRAM.ops) if op.opcode.name in kinds and i > 10):
        lie = Trace.from_input_bytes(PROGRAM, x, tamper=perturb_at(lie_at, -(1 << 30)))
        if lie.output_bytes() != honest.output_bytes():
            break
    assert lie.output_bytes() != honest.output_bytes()
    gs.client.submit(gs.operator, rid, lie.output_bytes())
    staked = gs.client.stake_of(gs.operator).staked
    challenger = Actor(gs.w3, gs.game, gs.challenger, honest, "challenger")
    operator = Actor(gs.w3, gs.game, gs.operator, lie, "operator")
    end = play(gs.game, challenger.open(rid, x, GAME_BOND), operator, challenger)
    assert end.phase is Phase.RESOLVED and end.challenger_won and end.lo == lie_at
    assert gs.client.status_of(rid).name == "FRAUD_PROVEN"
    assert gs.client.stake_of(gs.operator).staked == staked - BOND
    gas_used(challenger.receipts + operator.receipts)  # every move under the cap


def test_right_transformer_answer_survives_a_lying_challenger(gs: GameSystem) -> None:
    rid, x = _request(gs, 2)
    honest = Trace.from_input_bytes(PROGRAM, x)
    gs.client.submit(gs.operator, rid, honest.output_bytes())
    liar = Actor(gs.w3, gs.game, gs.challenger, Trace.from_input_bytes(PROGRAM, x, tamper=perturb_at(7)), "challenger")
    operator = Actor(gs.w3, gs.game, gs.operator, honest, "operator")
    end = play(gs.game, liar.open(rid, x, GAME_BOND), operator, liar)
    assert end.phase is Phase.RESOLVED and not end.challenger_won
    gas_used(liar.receipts + operator.receipts)
    gs.advance(WINDOW + 1)
    gs.client.finalize(gs.operator, rid, honest.output_bytes())
    assert gs.client.status_of(rid).name == "FINALIZED"
    assert gs.client.stake_of(gs.operator).locked == 0
