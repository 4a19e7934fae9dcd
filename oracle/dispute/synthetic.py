"""Synthetic programs for the dispute game's tests and benchmark: deep MLPs too big for one transaction."""

from __future__ import annotations

import numpy as np

from oracle.profile.opcodes import Opcode
from oracle.profile.program import Constant, Op, Program


def chained_mlp(layers: int, width: int, seed: int = 0, out_width: int = 2, div: bool = True,
                rows: int = 1) -> Program:
    """``layers`` x (MatMul by one shared ``width x width`` int8 matrix, Div by a constant unless not
    ``div``, Clip to int8).

    Int8 input of ``rows`` rows (a batch: ``rows`` times the MACs per op, same program size); the output
    is the last layer's ``[rows, width]`` activations at ``out_width`` bytes. The weight matrix is shared so
    the program stays small (a step re-reads the whole program) while the work grows with ``layers``:
    ``rows * layers * width**2`` multiply-accumulates.
    """
    rng = np.random.default_rng(seed)
    w = rng.integers(-128, 128, size=(width, width))
    shapes: list[tuple[int, ...]] = [(rows, width), (width, width), (1,)]
    consts = (Constant(1, 1, w), Constant(2, 2, np.array([2 * width])))
    ops: list[Op] = []
    cur = 0
    for _ in range(layers):
        steps = [(Opcode.MATMUL, (1,), ()), (Opcode.DIV, (2,), ()), (Opcode.CLIP, (), (-127, 127))]
        for code, extra, attrs in steps if div else [steps[0], steps[2]]:
            shapes.append((rows, width))
            ops.append(Op(code, (cur, *extra), len(shapes) - 1, attrs))
            cur = len(shapes) - 1
    return Program(1, out_width, tuple(shapes), 0, cur, consts, tuple(ops))
