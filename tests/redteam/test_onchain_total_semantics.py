"""Red team, issue 9 item 4: a program that reverts for some inputs.

The attacker registers a hand-built program (the registry accepts programs the compiler would refuse)
whose answer overflows on some inputs: before, the verifier reverted `OutputOutOfRange` on input 0x7f, so
such a request could not be challenged and a wrong answer finalized. Now every program has a defined
answer for every input (docs/integer-profile.md, "Semantics": int64 wrap inside, saturation to the output
width at the end): the honest answer is unchallengeable, and a challenge of any other answer succeeds.
"""

from __future__ import annotations

import numpy as np
import pytest

from oracle.chain import artifacts
from oracle.profile.codec import encode_tensor
from oracle.profile.opcodes import Opcode
from oracle.profile.program import Constant, Op, Program, encode
from oracle.profile.reference import run, run_bytes
from oracle.runtime import codec
from tests.contracts.conftest import BOND, FEE, System, deployed, system  # noqa: F401  (fixtures)
from tests.contracts.proof_gas import ProofGas

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _overflowing_add() -> Program:
    """The issue's program: int8 in, + [0, 1, 2, 3], int8 out: 0x7f + 1 does not fit."""
    return Program(1, 1, ((4,), (4,), (4,)), 0, 2, (Constant(1, 1, np.array([0, 1, 2, 3])),),
                   (Op(Opcode.ADD, (0, 1), 2),))


def _div_by_minus_one() -> Program:
    """int64 in, Div by the constant -1: INT64_MIN / -1 is 2^63, which int64 wraps to INT64_MIN."""
    return Program(8, 8, ((2,), (1,), (2,)), 0, 2, (Constant(1, 1, np.array([-1])),), (Op(Opcode.DIV, (0, 1), 2),))


def _mul_overflow() -> Program:
    """int64 in, times 2^62, int16 out: wraps in int64, then saturates to int16."""
    return Program(8, 2, ((3,), (1,), (3,)), 0, 2, (Constant(1, 8, np.array([2**62])),), (Op(Opcode.MUL, (0, 1), 2),))


def _matmul_overflow() -> Program:
    """A hand-built int64 MatMul whose sums wrap (the compiler's interval analysis would refuse it)."""
    w = np.array([[INT64_MAX, 2], [INT64_MAX, -3]])
    return Program(8, 8, ((1, 2), (2, 2), (1, 2)), 0, 2, (Constant(1, 8, w),), (Op(Opcode.MATMUL, (0, 1), 2),))


def _div_by_computed() -> Program:
    """int64 in, divided by Clip(x, -1, 0): INT64_MIN / -1 and x / 0 (defined as 0) from a computed divisor."""
    return Program(8, 8, ((3,), (3,), (3,)), 0, 2, (),
                   (Op(Opcode.CLIP, (0,), 1, (-1, 0)), Op(Opcode.DIV, (0, 1), 2)))


def _gather_out_of_range() -> Program:
    """Indices straight from the input: -1 and 4 are outside [0, 4) and select zeros."""
    table = Constant(1, 1, np.array([[1, -2], [3, -4], [5, -6], [7, -8]]))
    return Program(1, 1, ((3,), (4, 2), (3, 2)), 0, 2, (table,), (Op(Opcode.GATHER, (1, 0), 2),))


def _reduce_sum_wraps() -> Program:
    return Program(8, 8, ((2,), (1,)), 0, 1, (), (Op(Opcode.REDUCE_SUM, (0,), 1, (0, 1)),))


CASES = [
    ("overflowing Add, input 0x7f", _overflowing_add(), [127, 127, 127, 127]),
    ("overflowing Add, negative", _overflowing_add(), [-128, 126, 125, 124]),
    ("Div INT64_MIN by -1", _div_by_minus_one(), [INT64_MIN, 7]),
    ("Mul wraps then saturates", _mul_overflow(), [3, -3, INT64_MAX]),
    ("MatMul wraps", _matmul_overflow(), [INT64_MAX, INT64_MIN]),
    ("Div by a computed divisor: INT64_MIN / -1 and x / 0", _div_by_computed(), [INT64_MIN, 5, -9]),
    ("Gather indices out of range", _gather_out_of_range(), [-1, 4, 2]),
    ("ReduceSum wraps", _reduce_sum_wraps(), [INT64_MAX, 1]),
]


@pytest.mark.parametrize(("label", "program", "values"), CASES, ids=[c[0] for c in CASES])
def test_every_input_has_one_provable_answer(system: System, label: str, program: Program,  # noqa: F811
                                             values: list[int]) -> None:
    pg = ProofGas(system.w3, system.oracle, system.owner, system.operator, system.user, system.challenger)
    reg = pg.register(program)  # the registry accepts it: it is total now
    x = encode_tensor(np.array(values).reshape(program.input_shape), program.input_width)
    honest = run_bytes(program, x)
    # The worker encodes onnxruntime's int64 result with the codec: the same bytes as the reference.
    assert codec.encode_int(run(program, np.array(values).reshape(program.input_shape)), program.output_width) \
        == honest

    # The honest operator posts the defined answer: it cannot be "proven" wrong.
    honest_op = system.operator2
    rid = pg.open_wrong(reg, x)  # first a wrong answer from the dishonest operator...
    stake_before = system.client.stake_of(honest_op).staked
    receipt = system.chain.ok(system.oracle.functions.requestInference(reg.model_id, x, 0), system.user, value=FEE)
    rid_honest = system.client.events_in(receipt, "InferenceRequested")[0]["requestId"]
    system.chain.ok(system.oracle.functions.submitResult(rid_honest, honest), honest_op)
    system.chain.reverts(system.oracle.functions.challenge(rid_honest, x), system.challenger, "ResultIsCorrect",
                         gas=reg.bound)
    assert system.client.stake_of(honest_op).staked == stake_before

    # ...and any other answer (here every byte of the defined one with its low bit flipped) is proven wrong.
    dishonest_before = system.client.stake_of(system.operator).staked
    receipt = system.chain.ok(system.oracle.functions.challenge(rid, x), system.challenger, gas=reg.bound)
    (ev,) = system.client.events_in(receipt, "FraudProven")
    assert bytes(ev["correctOutput"]) == honest
    assert system.client.stake_of(system.operator).staked == dishonest_before - BOND
    assert system.client.status_of(rid).name == "FRAUD_PROVEN"


def test_the_issue_input_saturates(system: System) -> None:  # noqa: F811
    """0x7f + [0, 1, 2, 3] at int8: 127 fits, 128..130 saturate to 127 (not 0x80.., not a revert)."""
    program = _overflowing_add()
    assert run_bytes(program, bytes([0x7F] * 4)) == bytes([0x7F] * 4)
    verifier = system.w3.eth.contract(address=system.deployment.verifier, abi=artifacts.load("IntegerVerifier").abi)
    assert bytes(verifier.functions.execute(encode(program), bytes([0x7F] * 4)).call()) == bytes([0x7F] * 4)
