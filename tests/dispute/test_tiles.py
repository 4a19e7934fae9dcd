"""Tiles: a model whose every MatMul (32 x 512 x 512, 8.4M MACs) is over the one-transaction limit alone,
disputed down to one tile; every game transaction is sent with the EIP-7825 cap and checked against it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD

from oracle.chain import artifacts
from oracle.chain.reverts import from_web3_error
from oracle.chain.tx import deploy
from oracle.dispute.actors import TX_GAS_CAP, Actor, GameView, Phase, play
from oracle.errors import ContractRevert
from oracle.profile import gas_bound, tiles
from oracle.profile.opcodes import Opcode
from oracle.profile.program import Constant, Op, Program, encode, macs
from oracle.profile.trace import (
    Trace,
    chunk_range,
    perturb_at,
    perturb_partial,
    range_root,
    tensor_bytes,
    tensor_hash,
)
from tests.dispute.conftest import BOND, FEE, GAME_BOND, GameSystem, gas_used, model_spec, register, revert_named

FEW = settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def harness(session_w3: Web3, accounts: list[str]) -> Contract:
    art = artifacts.load("StateMerkleHarness")
    return session_w3.eth.contract(address=deploy(session_w3, art.abi, art.bytecode, accounts[0]), abi=art.abi)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(1, 3000), st.data())
def test_range_proofs_and_zero_hash_match_solidity(harness: Contract, count: int, data: st.DataObject) -> None:
    """Any element range of any tensor: Python's range proof gives the tensor's hash in Python and Solidity,
    and a different chunk does not; the all-zero tensor's hash (a partial sum before its first tile) agrees."""
    values = data.draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=count, max_size=count))
    raw = tensor_bytes(values)
    start = data.draw(st.integers(0, count - 1))
    end = data.draw(st.integers(start + 1, count))
    first, cover, siblings = chunk_range(raw, start * 8, end * 8)
    assert range_root(cover, first, len(raw), siblings) == tensor_hash(raw)
    assert harness.functions.rangeRoot(cover, first, len(raw), siblings).call() == tensor_hash(raw)
    forged = bytes([cover[0] ^ 1]) + cover[1:]
    assert harness.functions.rangeRoot(forged, first, len(raw), siblings).call() != tensor_hash(raw)
    assert harness.functions.zeroTensorHash(count * 8).call() == tensor_hash(bytes(count * 8))


def test_plan_is_the_contracts_and_every_step_fits(tgs: GameSystem, gs: GameSystem) -> None:
    """The Python plan (oracle.profile.tiles) is the one the contract accepts and the game fixed at
    registration; the tiled model's MatMuls are each over the one-transaction limit and split in several
    tiles, every step within the cap."""
    for s in (tgs, gs):
        plan = tiles.packed(s.program, tiles.plan(s.program))
        fixed = s.game.functions.plans(s.game.functions.planKey(s.chunks()).call()).call()
        assert fixed[0] == Web3.solidity_keccak(["uint256[]"], [plan])
        assert fixed[2] == sum(e >> 192 for e in plan)
        assert s.step_gas_bound() <= TX_GAS_CAP
    matmul = tgs.program.ops[0]
    one_op = Program(1, 8, (tgs.program.shapes[0], tgs.program.shapes[1], tgs.program.shapes[3]), 0, 2,
                     (tgs.program.constants[0],), (Op(Opcode.MATMUL, matmul.inputs, 2, ()),))
    assert macs(one_op) == 32 * 512 * 512
    assert gas_bound.proof_gas_bound(one_op, len(encode(one_op))) > TX_GAS_CAP  # one MatMul alone
    steps = Trace(tgs.program, np.zeros(tgs.program.input_shape, dtype=np.int64)).num_steps
    plan = tiles.plan(tgs.program)
    assert all(len(tiles.tiles_of(tgs.program, i, plan[i])) > 1 for i, op in enumerate(tgs.program.ops)
               if op.opcode is Opcode.MATMUL)
    assert steps > len(tgs.program.ops)


def _tile_steps(trace: Trace) -> list[int]:
    return [s for s, (_, tile) in enumerate(trace.steps) if tile is not None]


def _defend_at(tgs: GameSystem, seed: int, target: int) -> None:
    """A challenger lying in the partial sum after step ``target`` steers the bisection to it; the honest
    operator's one-step proof (the step re-executed on chain) lands on its own next state, within the bound
    the plan gave that step; the challenger loses."""
    rid, x = tgs.request(seed)
    honest = Trace.from_input_bytes(tgs.program, x)
    liar = Trace.from_input_bytes(tgs.program, x, tile_tamper=perturb_partial(target, 0))
    tgs.client.submit(tgs.operator, rid, honest.output_bytes())
    challenger = Actor(tgs.w3, tgs.game, tgs.challenger, liar, "challenger")
    operator = Actor(tgs.w3, tgs.game, tgs.operator, honest, "operator")
    end = play(tgs.game, challenger.open(rid, x, GAME_BOND), operator, challenger)
    assert end.phase is Phase.RESOLVED and not end.challenger_won and end.lo == target
    step = next(r for r in challenger.receipts + operator.receipts
                if r["logs"] and tgs.game.events.StepProven().process_receipt(r, errors=DISCARD))
    post = tgs.game.events.StepProven().process_receipt(step, errors=DISCARD)[0]["args"]["postRoot"]
    assert post == honest.root(target + 1)
    used = gas_used(challenger.receipts + operator.receipts)
    bound = tiles.step_gas_bound(tgs.program, honest.steps[target][0])
    assert step["gasUsed"] <= bound <= tgs.step_gas_bound() <= TX_GAS_CAP
    assert len(used) <= 2 * (honest.num_steps - 1).bit_length() + 3
    assert tgs.client.status_of(rid).name != "FRAUD_PROVEN"


@FEW
@given(st.data())
def test_honest_operator_defends_any_tile_against_a_lying_challenger(tgs: GameSystem, data: st.DataObject) -> None:
    """Any tile or row block (hypothesis picks it): Solidity's partial-sum state is Python's."""
    snap = tgs.w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    try:
        steps = _tile_steps(Trace(tgs.program, np.zeros(tgs.program.input_shape, dtype=np.int64)))
        _defend_at(tgs, data.draw(st.integers(0, 2**16)), data.draw(st.sampled_from(steps)))
    finally:
        tgs.w3.provider.make_request("evm_revert", [snap])  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["first-matmul-tile", "div-rows", "clip-rows", "last-matmul-tile"])
def test_each_kind_of_step_is_within_its_bound(tgs: GameSystem, kind: str) -> None:
    """The first tile of a MatMul (zero partial sum), a Div and a Clip row block, the last tile of the
    last MatMul: each measured under the bound the plan gave it."""
    trace = Trace(tgs.program, np.zeros(tgs.program.input_shape, dtype=np.int64))
    ops = tgs.program.ops
    by_kind = {
        "first-matmul-tile": 0,
        "div-rows": next(s for s, (i, _) in enumerate(trace.steps) if ops[i].opcode is Opcode.DIV),
        "clip-rows": next(s for s, (i, _) in enumerate(trace.steps) if ops[i].opcode is Opcode.CLIP),
        "last-matmul-tile": max(s for s, (i, _) in enumerate(trace.steps) if ops[i].opcode is Opcode.MATMUL),
    }
    _defend_at(tgs, 11, by_kind[kind])


def _visible(tgs: GameSystem, x: bytes, traces: list[Trace]) -> Trace:
    honest = Trace.from_input_bytes(tgs.program, x)
    for lie in traces:
        if lie.output_bytes() != honest.output_bytes():
            return lie
    raise AssertionError("no visible lie")


@pytest.mark.parametrize("kind", ["partial", "final"])
def test_lying_operator_is_slashed_at_the_tile(tgs: GameSystem, kind: str) -> None:
    """An operator lying in one tile's partial sum (or in a MatMul's final output, which shows at its last
    tile) is found at that tile by an honest challenger and slashed; every transaction within the cap."""
    rid, x = tgs.request(3)
    honest = Trace.from_input_bytes(tgs.program, x)
    last_mm = max(i for i, op in enumerate(tgs.program.ops) if op.opcode is Opcode.MATMUL)
    tile_steps = [s for s in _tile_steps(honest) if honest.steps[s][0] == last_mm]
    if kind == "partial":
        rows = {s: tile.r0 for s, (_, tile) in enumerate(honest.steps) if tile is not None}
        lies = [Trace.from_input_bytes(tgs.program, x, tile_tamper=perturb_partial(s, rows[s] * 512))
                for s in tile_steps[len(tile_steps) // 3:-1]]
    else:
        lies = [Trace.from_input_bytes(tgs.program, x, tamper=perturb_at(last_mm, d)) for d in (1 << 20, -(1 << 20))]
    lie = _visible(tgs, x, lies)
    expected = next(s for s in range(lie.num_steps) if lie.root(s + 1) != honest.root(s + 1))
    assert honest.steps[expected][0] == last_mm and honest.steps[expected][1] is not None
    tgs.client.submit(tgs.operator, rid, lie.output_bytes())
    staked = tgs.client.stake_of(tgs.operator).staked
    challenger = Actor(tgs.w3, tgs.game, tgs.challenger, honest, "challenger")
    operator = Actor(tgs.w3, tgs.game, tgs.operator, lie, "operator")
    end = play(tgs.game, challenger.open(rid, x, GAME_BOND), operator, challenger)
    assert end.challenger_won and end.lo == expected
    assert tgs.client.status_of(rid).name == "FRAUD_PROVEN"
    assert tgs.client.stake_of(tgs.operator).staked == staked - BOND
    assert tgs.client.credits_of(tgs.challenger) >= BOND - BOND // 2 + FEE
    used = gas_used(challenger.receipts + operator.receipts)
    assert max(used) <= tiles.step_gas_bound(tgs.program, last_mm) <= tgs.step_gas_bound() <= TX_GAS_CAP
    assert len(used) <= 2 * (honest.num_steps - 1).bit_length() + 3


def test_tile_step_refuses_forged_partial_sums_and_plans(tgs: GameSystem) -> None:
    """At a tile whose partial sum is already non-zero: rows not in the agreed partial sum, a zero leaf
    claimed for it, operand chunks of the wrong tensor, and another plan are all refused."""
    rid, x = tgs.request(4)
    honest = Trace.from_input_bytes(tgs.program, x)
    target = _tile_steps(honest)[5]  # the first MatMul's sixth tile: rows 0-4 are already summed
    liar = Trace.from_input_bytes(tgs.program, x, tile_tamper=perturb_partial(target, 0))
    tgs.client.submit(tgs.operator, rid, honest.output_bytes())
    challenger = Actor(tgs.w3, tgs.game, tgs.challenger, liar, "challenger")
    operator = Actor(tgs.w3, tgs.game, tgs.operator, honest, "operator")
    game_id = challenger.open(rid, x, GAME_BOND)
    while GameView.read(tgs.game, game_id).phase is not Phase.STEP:
        assert operator.move(game_id) or challenger.move(game_id)
    assert GameView.read(tgs.game, game_id).lo == target
    good = honest.step_proof(target)
    step = tgs.game.functions.step
    chunks = bytearray(good.out_chunks)
    chunks[-1] ^= 1
    with revert_named("RootMismatch"):
        step(game_id, replace(good, out_chunks=bytes(chunks)).as_tuple()).call({"from": tgs.operator})
    with revert_named("RootMismatch"):
        step(game_id, replace(good, out_leaf=bytes(32)).as_tuple()).call({"from": tgs.operator})
    with revert_named("RootMismatch"):
        other = chunk_range(tensor_bytes(honest.values[honest.program.output_id]), 0, len(good.operands[0]))
        step(game_id, replace(good, operands=[other[1], b""]).as_tuple()).call({"from": tgs.operator})
    with revert_named("PlanMismatch"):
        step(game_id, replace(good, plan=[1 << 192] * len(good.plan)).as_tuple()).call({"from": tgs.operator})
    assert operator.move(game_id)
    assert not GameView.read(tgs.game, game_id).challenger_won
    gas_used(challenger.receipts + operator.receipts)


def test_a_model_whose_one_tile_cannot_fit_is_refused(gs: GameSystem) -> None:
    """One row by one K element of a [1, 1] x [1, 200000] MatMul (its partial-sum row alone is 1.6 MB at 8
    bytes an element; an ArgMax follows): over the cap in one transaction and in every tiling, refused."""
    n = 200_000
    w = np.random.default_rng(0).integers(-128, 128, size=(1, n))
    program = Program(1, 4, ((1, 1), (1, n), (1, n), (1, 1)), 0, 3, (Constant(1, 1, w),),
                      (Op(Opcode.MATMUL, (0, 1), 2, ()), Op(Opcode.ARGMAX, (2,), 3, (1, 1, 0))))
    assert tiles.plan(program)[0] == (1, 1)
    count = gs.client.model_count()
    with pytest.raises(ContractRevert) as err:  # the client fixes the plan first: refused there
        register(gs.client, gs.owner, program)
    assert err.value.name == "StepGasTooHigh"
    step, cap = err.value.args_decoded
    assert step > cap == TX_GAS_CAP
    # Registering without a plan is refused too: the game has none for it.
    chunks = gs.client.write_program(gs.owner, encode(program))
    with pytest.raises(ContractLogicError) as exc:
        gs.client.contract.functions.registerModel(model_spec(program).as_tuple(), chunks).call({"from": gs.owner})
    err = from_web3_error(exc.value)
    assert err.name == "ProgramNotExecutable"
    assert bytes(err.args_decoded[0])[:4] == Web3.keccak(text="PlanNotFixed(bytes32)")[:4]
    assert gs.client.model_count() == count


def test_a_whole_op_after_tiled_ones_is_proven_whole(tgs: GameSystem) -> None:
    """The tiled model with a [512, 8] head and a Transpose (one whole step: operand and output whole, its
    range proofs empty): an operator lying in the Transpose's output is found at that step and slashed."""
    base = tgs.program
    w2 = np.random.default_rng(5).integers(-128, 128, size=(512, 8))
    n = len(base.shapes)
    shapes = (*base.shapes, (512, 8), (32, 8), (8, 32))
    ops = (*base.ops, Op(Opcode.MATMUL, (base.output_id, n), n + 1, ()), Op(Opcode.TRANSPOSE, (n + 1,), n + 2, ()))
    program = Program(1, 8, shapes, base.input_id, n + 2, (*base.constants, Constant(n, 1, w2)), ops)
    plan = tiles.plan(program)
    assert plan[-1] == (0, 0) and plan[-2][0] > 0  # the Transpose is one step, the head a (one-tile) MatMul
    model_id = register(tgs.client, tgs.owner, program)
    s = replace(tgs, program=program, model_id=model_id)
    rid, x = s.request(9)
    honest = Trace.from_input_bytes(program, x)
    lie = Trace.from_input_bytes(program, x, tamper=perturb_at(len(ops) - 1))
    assert lie.output_bytes() != honest.output_bytes()
    s.client.submit(s.operator, rid, lie.output_bytes())
    challenger = Actor(s.w3, s.game, s.challenger, honest, "challenger")
    operator = Actor(s.w3, s.game, s.operator, lie, "operator")
    end = play(s.game, challenger.open(rid, x, GAME_BOND), operator, challenger)
    assert end.challenger_won and end.lo == honest.num_steps - 1 and honest.steps[end.lo] == (len(ops) - 1, None)
    assert s.client.status_of(rid).name == "FRAUD_PROVEN"
    assert max(gas_used(challenger.receipts + operator.receipts)) <= s.step_gas_bound() <= TX_GAS_CAP
