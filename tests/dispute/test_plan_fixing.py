"""The tile plan a registrant supplies (`DisputeGame.fixPlan`, checked by `StepGasBound.checkPlan`): only the
plan's own entries are accepted (each the largest tile that fits, every step under the cap), a game-provable
program registers only once its plan is fixed, and a game opens with exactly that plan. The shipped
transformer's plan fixing, registration and `open` each fit the EIP-7825 cap (measured from receipts)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from web3 import Web3

from oracle.chain.plans import packed_plan
from oracle.chain.tx import send
from oracle.chain.types import Mode, ModelSpec
from oracle.dispute.actors import TX_GAS_CAP, Actor
from oracle.dispute.synthetic import chained_mlp
from oracle.profile import tiles
from oracle.profile.models import model_entry, program_bytes
from oracle.profile.opcodes import Opcode
from oracle.profile.program import Constant, Op, Program, decode, encode
from oracle.profile.trace import Trace
from tests.dispute.conftest import GAME_BOND, GameSystem, gas_used, model_spec, register, revert_named

#: One MatMul [1, 256] x [256, 64] on the input (16,384 elements, each proven and passed at 8 bytes): one
#: row with all of K is over the cap, so its plan is one row by KB < K of K; an ArgMax (one whole step) follows.
K, N = 256, 64
WIDE = Program(1, 4, ((K, N), (1, K), (1, N), (1, 1)), 0, 3,
               (Constant(1, 1, np.random.default_rng(0).integers(-128, 128, size=(1, K))),),
               (Op(Opcode.MATMUL, (1, 0), 2, ()), Op(Opcode.ARGMAX, (2,), 3, (1, 1, 0))))
KB = tiles.plan(WIDE)[0][1]


def entry(steps: int, rb: int, kb: int) -> int:
    return (steps << 192) | (rb << 96) | kb


@pytest.fixture
def wide(gs: GameSystem) -> GameSystem:
    """WIDE registered (one-transaction provable: its steps are what is large, not its execution)."""
    return dataclasses.replace(gs, program=WIDE, model_id=register(gs.client, gs.owner, WIDE))


def test_the_wide_matmul_is_split_along_k_and_its_plan_accepted(wide: GameSystem) -> None:
    plan = wide.plan()
    assert K // 2 < KB < K and plan == [entry(2, 1, KB), 1 << 192]
    checked = wide.steps.functions.checkPlan(wide.chunks(), TX_GAS_CAP, plan).call()
    assert checked[3] == 3 and checked[4] <= TX_GAS_CAP  # steps, step bound


@pytest.mark.parametrize(("tiles", "error"), [
    ([entry(2, 1, KB)], "PlanLengthMismatch"),  # too short
    ([entry(2, 1, KB), 1 << 192, 1 << 192], "PlanLengthMismatch"),  # too long
    ([entry(2, 1, KB - 1), 1 << 192], "BadPlanEntry"),  # a smaller K block than fits
    ([entry(2, 1, KB + 1), 1 << 192], "StepGasTooHigh"),  # a K block over the cap
    ([entry(1, 1, K), 1 << 192], "StepGasTooHigh"),  # the whole row: over the cap
    ([entry(2, 2, KB), 1 << 192], "BadPlanEntry"),  # K split but more than one row
    ([entry(1, 1, KB), 1 << 192], "BadPlanEntry"),  # a step count that skips a tile
    ([entry(0, 0, 0), 1 << 192], "BadPlanEntry"),  # a tile of 0
    ([entry(2, 1, 0), 1 << 192], "BadPlanEntry"),  # K block of 0
    ([entry(1, 1, K + 1), 1 << 192], "BadPlanEntry"),  # K block larger than the op
    ([1 << 192, 1 << 192], "BadPlanEntry"),  # the MatMul as one step
    ([entry(2, 1, KB), entry(1, 1, 0)], "BadPlanEntry"),  # the ArgMax in row blocks
])
def test_a_wrong_plan_for_the_wide_matmul_is_refused(wide: GameSystem, tiles: list[int], error: str) -> None:
    with revert_named(error):
        wide.game.functions.fixPlan(wide.chunks(), tiles).call({"from": wide.challenger})


@pytest.mark.parametrize(("op", "rb", "kb", "error"), [
    (0, 1, 512, "BadPlanEntry"),  # fewer rows than fit
    (0, 3, 512, "StepGasTooHigh"),  # more rows than fit
    (0, 33, 512, "BadPlanEntry"),  # more rows than the op has
    (0, 2, 256, "BadPlanEntry"),  # K split although all of it fits
    (1, 4, 0, "BadPlanEntry"),  # a smaller row block than fits
    (1, 6, 0, "StepGasTooHigh"),  # a row block over the cap
    (1, 5, 1, "BadPlanEntry"),  # a K block for an elementwise op
])
def test_a_wrong_tile_of_the_tiled_model_is_refused(tgs: GameSystem, op: int, rb: int, kb: int, error: str) -> None:
    """The tiled model (32 x 512 x 512 MatMuls in tiles of 2 rows, Div and Clip in blocks of 5 rows; its plan is
    fixed already, so `fixPlan` would be a no-op: the check itself is called)."""
    plan = tgs.plan()
    assert plan[:2] == [entry(16, 2, 512), entry(7, 5, 0)]
    m, k = 32, 512
    plan[op] = entry(-(-m // rb) * (-(-k // kb) if kb else 1), rb, kb)
    with revert_named(error):
        tgs.steps.functions.checkPlan(tgs.chunks(), TX_GAS_CAP, plan).call()


def test_a_game_provable_program_needs_its_plan_fixed_and_a_game_opens_with_it(gs: GameSystem) -> None:
    """Registered directly (no `fixPlan`): refused with PlanNotFixed; once the plan is fixed (by anyone) it
    registers, the plan can no longer change, and a game against it opens with that plan's hash and step
    count."""
    program = chained_mlp(2, 512, seed=7, rows=32)  # weights of its own: no plan of it is fixed yet
    data = encode(program)
    chunks = gs.client.write_program(gs.owner, data)
    spec = model_spec(program).as_tuple()
    with revert_named("ProgramNotExecutable"):
        gs.client.contract.functions.registerModel(spec, chunks).call({"from": gs.owner})
    plan = packed_plan(data, TX_GAS_CAP)
    gas_used([send(gs.w3, gs.game.functions.fixPlan(chunks, plan), gs.challenger)])  # anyone may fix it
    send(gs.w3, gs.client.contract.functions.registerModel(spec, chunks), gs.owner)
    model_id = gs.client.model_count()
    # Fixed once and for all: another plan sent later (here one a check would refuse) changes nothing.
    key = gs.game.functions.planKey(chunks).call()
    kept = gs.game.functions.plans(key).call()
    again = send(gs.w3, gs.game.functions.fixPlan(chunks, [1 << 192] * len(plan)), gs.user)
    assert not gs.game.events.PlanFixed().process_receipt(again) and gs.game.functions.plans(key).call() == kept
    mlp = dataclasses.replace(gs, program=program, model_id=model_id)
    assert mlp.plan() == plan
    rid, x = mlp.request(1)
    honest = Trace.from_input_bytes(program, x)
    gs.client.submit(gs.operator, rid, honest.output_bytes())
    game = gs.game.functions.getGame(Actor(gs.w3, gs.game, gs.challenger, honest, "challenger").open(
        rid, x, GAME_BOND)).call()
    assert game[-1] == Web3.solidity_keccak(["uint256[]"], [plan])  # planHash
    assert game[8] == sum(e >> 192 for e in plan) == len(honest.steps)  # hi: the plan's steps


def test_the_transformer_fixes_its_plan_registers_and_opens_within_the_cap(gs: GameSystem) -> None:
    """digits_transformer (game-provable): `fixPlan`, `registerModel` and `open` each under 16,777,216 gas."""
    entry_ = model_entry("digits_transformer")
    data = program_bytes("digits_transformer")
    chunks = gs.client.write_program(gs.owner, data)
    fix = send(gs.w3, gs.game.functions.fixPlan(chunks, packed_plan(data, TX_GAS_CAP)), gs.owner)
    spec = ModelSpec(onnx_hash=bytes.fromhex(entry_["onnx_keccak256"][2:]), fee=10**15, bond=4 * 10**15,
                     input_length=64, output_length=1, mode=Mode.EXACT, uri="file:///digits_transformer.onnx",
                     program_commitment=bytes.fromhex(entry_["program_commitment"][2:]))
    reg = send(gs.w3, gs.client.contract.functions.registerModel(spec.as_tuple(), chunks), gs.owner)
    model_id = gs.client.model_count()
    x = bytes.fromhex(entry_["samples"][0]["input_hex"][2:])
    rid, _ = gs.client.request(gs.user, model_id, x)
    honest = Trace.from_input_bytes(decode(data), x)
    gs.client.submit(gs.operator, rid, honest.output_bytes())
    challenger = Actor(gs.w3, gs.game, gs.challenger, honest, "challenger")
    challenger.open(rid, x, GAME_BOND)
    used = gas_used([fix, reg, challenger.receipts[-1]])
    assert max(used) < TX_GAS_CAP * 3 // 4, used  # with margin
