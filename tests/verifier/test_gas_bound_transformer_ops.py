"""The proof-gas bound of the transformer ops (batched MatMul, Gather, ReduceSum/ReduceMax, Div by a
computed divisor, N-D Transpose): the on-chain bound equals the Python mirror, is never below the gas
`executeStored` really spends (zeros, the width's extremes, random and all-non-zero inputs), and where one
kernel dominates it stays within 1.5x of the worst measured.
"""

from __future__ import annotations

import numpy as np
import pytest
from web3 import Web3
from web3.contract import Contract

from oracle.profile.codec import width_range
from oracle.profile.opcodes import Opcode
from oracle.profile.program import Program
from tests.verifier.helpers import Builder
from tests.verifier.test_gas_bound import _check, meter  # noqa: F401 (fixture)


def _inputs(program: Program, seed: int = 0) -> list[np.ndarray]:
    shape, w = program.input_shape, program.input_width
    lo, hi = width_range(w)
    rng = np.random.default_rng(seed)
    return [
        np.zeros(shape, dtype=np.int64),
        np.full(shape, lo, dtype=np.int64),
        np.full(shape, hi, dtype=np.int64),
        np.where(np.indices(shape).sum(axis=0) % 2 == 0, lo, hi).astype(np.int64),
        rng.integers(lo, hi, size=shape, endpoint=True, dtype=np.int64),
        rng.integers(1, hi, size=shape, endpoint=True, dtype=np.int64),
    ]


def _gather(width: int) -> Program:
    b = Builder((1, 16), input_width=1)
    table = b.const(np.random.default_rng(1).integers(-100, 100, size=(64, 48)), width)
    b.op(Opcode.GATHER, [table, b.op(Opcode.CLIP, [0], [0, 63])])
    return b.build()


def _gather_scalars() -> Program:
    """Rows of one element: the per-index cost dominates."""
    b = Builder((4, 256), input_width=1)
    table = b.const(np.arange(128) - 64, 1)
    b.op(Opcode.GATHER, [table, b.op(Opcode.CLIP, [0], [0, 127])])
    return b.build()


def _reduce_len1() -> Program:
    b = Builder((1024, 1), input_width=4)
    b.op(Opcode.REDUCE_SUM, [0], [1, 1])
    return b.build()


def _gather_computed() -> Program:
    b = Builder((24, 24), input_width=1)
    b.op(Opcode.GATHER, [0, b.op(Opcode.CLIP, [0], [0, 23])])
    return b.build()


def _reduce(opcode: Opcode, axis: int) -> Program:
    b = Builder((16, 4, 32), input_width=4)
    b.op(opcode, [0], [axis, 0])
    return b.build()


def _transpose(shape: tuple[int, ...], perm: list[int]) -> Program:
    b = Builder(shape, input_width=8)
    b.op(Opcode.TRANSPOSE_ND, [0], list(range(4 - len(shape))) + [4 - len(shape) + p for p in perm])
    return b.build()


def _attention(batch: int, m: int, k: int) -> Program:
    """Q x K^T: both operands computed."""
    b = Builder((batch, m, k), input_width=1)
    b.op(Opcode.MATMUL, [0, b.op(Opcode.TRANSPOSE_ND, [0], [0, 1, 3, 2])])
    return b.build()


def _matmul_const(batch: int, m: int, k: int, n: int, batched: bool) -> Program:
    b = Builder((batch, m, k), input_width=2)
    w = np.random.default_rng(2).integers(-128, 128, size=(batch, k, n) if batched else (k, n))
    b.op(Opcode.MATMUL, [0, b.const(w, 1)])
    return b.build()


def _div_computed() -> Program:
    b = Builder((16, 64), input_width=2)
    b.op(Opcode.DIV, [0, b.op(Opcode.CLIP, [0], [1, 100])])
    return b.build()


def _div_broadcast() -> Program:
    b = Builder((16, 64), input_width=2)
    s = b.op(Opcode.REDUCE_SUM, [0], [1, 1])
    b.op(Opcode.DIV, [0, b.op(Opcode.CLIP, [s], [-(2**20), -1])])
    return b.build()


CASES = {
    "gather_int8_table": (_gather(1), 1.5),
    "gather_int32_table": (_gather(4), 1.5),
    "gather_computed_data": (_gather_computed(), 1.5),
    "gather_scalar_rows": (_gather_scalars(), 1.5),
    "reduce_over_length_1": (_reduce_len1(), 1.5),
    "transpose_rows_of_1": (_transpose((64, 32, 1), [1, 0, 2]), 1.5),
    "reduce_sum_last_axis": (_reduce(Opcode.REDUCE_SUM, 2), 1.5),
    "reduce_sum_first_axis": (_reduce(Opcode.REDUCE_SUM, 0), 1.5),
    "reduce_max_middle_axis": (_reduce(Opcode.REDUCE_MAX, 1), 1.5),
    "transpose_rank3": (_transpose((16, 8, 24), [2, 0, 1]), 1.5),
    "transpose_rank4": (_transpose((4, 6, 8, 10), [3, 1, 0, 2]), 1.5),
    "transpose_rank4_last_dim_1": (_transpose((8, 8, 16, 2), [0, 3, 1, 2]), 1.5),
    "attention_scores": (_attention(4, 8, 16), 1.5),
    "attention_single_batch": (_attention(1, 16, 32), 1.5),
    "rank3_by_rank2_weights": (_matmul_const(4, 4, 64, 64, False), 1.5),
    "rank3_by_rank3_weights": (_matmul_const(3, 4, 32, 32, True), 1.5),
    "div_by_computed": (_div_computed(), 1.5),
    "div_by_computed_broadcast": (_div_broadcast(), 1.5),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bound_holds_and_is_tight(
    session_w3: Web3,
    verifier: Contract,
    chunk_writer: Contract,
    meter: Contract,  # noqa: F811
    case: str,
) -> None:
    program, ratio = CASES[case]
    gas, worst = _check(session_w3, verifier, chunk_writer, meter, program, _inputs(program))
    print(f"{case}: bound {gas} measured {worst} ratio {gas / worst:.3f}")
    assert gas <= ratio * worst
