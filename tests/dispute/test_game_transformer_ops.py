"""The dispute game's one-step proof runs the transformer ops too (it calls the verifier's `runOp`): an
attention-shaped model over the one-transaction cap, a lie planted in each new op, bisected and proven.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from web3 import Web3

from oracle.chain.types import Mode, ModelSpec
from oracle.dispute.actors import TX_GAS_CAP, Actor, Phase, play
from oracle.profile import gas_bound
from oracle.profile.codec import numel
from oracle.profile.intervals import analyze
from oracle.profile.opcodes import Opcode
from oracle.profile.program import Program, encode
from oracle.profile.trace import Trace, perturb_at
from tests.dispute.conftest import BOND, FEE, GAME_BOND, GameSystem, gas_used
from tests.verifier.helpers import Builder

SHAPE = (4, 16, 32)  # heads, sequence, head dimension


def attention_layers(layers: int) -> Program:
    """``layers`` x: scores = X X^T (batched, both computed), shifted by their row max, made positive,
    weights / row sum of X (a computed divisor), then a lookup-table activation (Gather)."""
    b = Builder(SHAPE, input_width=1, output_width=1)
    lut = b.const(np.clip(np.arange(256) - 128, -127, 127) // 2, 1)  # a shape for x in [0, 255]
    x = 0
    for _ in range(layers):
        t = b.op(Opcode.TRANSPOSE_ND, [x], [0, 1, 3, 2])
        s = b.op(Opcode.MATMUL, [x, t])  # [4, 16, 16]
        c = b.op(Opcode.SUB, [s, b.op(Opcode.REDUCE_MAX, [s], [2, 1])])  # <= 0
        a = b.op(Opcode.DIV, [b.op(Opcode.CLIP, [c], [-1000, 0]), b.const(np.array([-8]), 1)])  # [0, 125]
        a = b.op(Opcode.ADD, [a, b.const(np.array([1]), 1)])  # [1, 126]
        o = b.op(Opcode.MATMUL, [a, x])  # [4, 16, 32]
        y = b.op(Opcode.DIV, [o, b.op(Opcode.REDUCE_SUM, [a], [2, 1])])  # a weighted mean: |y| <= 127
        y = b.op(Opcode.CLIP, [y], [-127, 127])  # what intervals cannot see (they are not relational)
        idx = b.op(Opcode.ADD, [y, b.const(np.array([128]))])  # [1, 255]
        x = b.op(Opcode.GATHER, [lut, b.op(Opcode.RESHAPE, [idx], shape=(numel(SHAPE),))], shape=(numel(SHAPE),))
        x = b.op(Opcode.RESHAPE, [x], shape=SHAPE)
    return b.build()


PROGRAM = attention_layers(2)
#: Op index of each new op in the first layer (MatMul: the attention x values one, whose lie is not
#: clipped away).
FIRST = {code: next(i for i, op in enumerate(PROGRAM.ops) if op.opcode is code) for code in
         (Opcode.TRANSPOSE_ND, Opcode.REDUCE_MAX, Opcode.REDUCE_SUM, Opcode.GATHER)}
FIRST[Opcode.MATMUL] = 7
FIRST_COMPUTED_DIV = 9


def test_the_program_is_a_compilable_one_over_the_cap() -> None:
    analyze(PROGRAM)  # every intermediate provably in range, Gather indices in [0, 256), divisors >= 16
    assert PROGRAM.ops[FIRST_COMPUTED_DIV].opcode is Opcode.DIV
    assert PROGRAM.ops[FIRST[Opcode.MATMUL]].opcode is Opcode.MATMUL
    assert gas_bound.execution_bound(PROGRAM, len(encode(PROGRAM))).total > TX_GAS_CAP


@pytest.fixture
def attention(gs: GameSystem) -> GameSystem:
    data = encode(PROGRAM)
    spec = ModelSpec(onnx_hash=b"\x44" * 32, fee=FEE, bond=BOND, input_length=numel(SHAPE),
                     output_length=numel(SHAPE), mode=Mode.EXACT, uri="file:///attention.onnx",
                     program_commitment=Web3.keccak(data))
    model_id = gs.client.register_model(gs.owner, spec, data)
    return dataclasses.replace(gs, program=PROGRAM, model_id=model_id)


@pytest.mark.parametrize("lie_at", [*FIRST.values(), FIRST_COMPUTED_DIV],
                         ids=[*(c.name for c in FIRST), "DIV_COMPUTED"])
def test_a_lie_in_a_transformer_op_is_proven_in_one_step(attention: GameSystem, lie_at: int) -> None:
    gs = attention
    rid, x = gs.request(5)
    honest = Trace.from_input_bytes(gs.program, x)
    lie = Trace.from_input_bytes(gs.program, x, tamper=perturb_at(lie_at))
    assert lie.output_bytes() != honest.output_bytes()
    gs.client.submit(gs.operator, rid, lie.output_bytes())
    staked_before = gs.client.stake_of(gs.operator).staked
    challenger = Actor(gs.w3, gs.game, gs.challenger, honest, "challenger")
    operator = Actor(gs.w3, gs.game, gs.operator, lie, "operator")
    game_id = challenger.open(rid, x, GAME_BOND)
    end = play(gs.game, game_id, operator, challenger)
    assert end.phase is Phase.RESOLVED and end.challenger_won
    assert end.lo == lie_at  # the one-step proof re-executed exactly the lying op
    assert gs.client.status_of(rid).name == "FRAUD_PROVEN"
    assert gs.client.stake_of(gs.operator).staked == staked_before - BOND
    gas_used(challenger.receipts + operator.receipts)  # every move within EIP-7825
    # The one-step proof of this op is under the game's static step bound, itself under the cap.
    step_receipt = challenger.receipts[-1]
    assert gs.game.events.StepProven().process_receipt(step_receipt)
    assert step_receipt["gasUsed"] <= gs.step_gas_bound() <= TX_GAS_CAP


def test_an_honest_answer_survives_a_game(attention: GameSystem) -> None:
    gs = attention
    rid, x = gs.request(6)
    honest = Trace.from_input_bytes(gs.program, x)
    gs.client.submit(gs.operator, rid, honest.output_bytes())
    lie = Trace.from_input_bytes(gs.program, x, tamper=perturb_at(FIRST[Opcode.GATHER]))
    challenger = Actor(gs.w3, gs.game, gs.challenger, lie, "challenger")
    operator = Actor(gs.w3, gs.game, gs.operator, honest, "operator")
    end = play(gs.game, challenger.open(rid, x, GAME_BOND), operator, challenger)
    assert end.phase is Phase.RESOLVED and not end.challenger_won
    gas_used(challenger.receipts + operator.receipts)
