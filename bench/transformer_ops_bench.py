"""Gas of the transformer ops in the on-chain verifier (issue 11): what a fraud proof pays per element.

Figures (``executeStored`` on anvil, the verifier's own frame measured with ``GasMeter``; worst over
all-zero, extreme, random and all-non-zero inputs):

- ``ops.<op>.gas_per_<unit>``: marginal gas of one more unit of work, from the same one-op program at two
  sizes (the fixed costs of a call cancel; decoding the extra input, encoding the extra output and memory
  growth stay in, so this is what the whole proof pays, not the kernel alone): Gather per output element (an int8
  embedding table read in place), ReduceSum and ReduceMax per input element, TransposeND per element,
  Div by a computed divisor per element, batched activation x activation MatMul per multiply-accumulate.
- ``ops.bound_over_measured_min`` / ``_max``: the static proof-gas bound over the worst measured gas, over
  the cases of ``tests/verifier/test_gas_bound_transformer_ops.py`` (min must be >= 1).
- ``ops.attention_2layer.execute_gas`` / ``.macs``: the dispute-game test model (two attention-shaped
  layers on [4, 16, 32], ``tests/dispute/test_game_transformer_ops.py``), one full ``executeStored``.

Run ``python bench/transformer_ops_bench.py`` (starts its own anvil) or ``python bench/run.py --only ops``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from web3 import Web3

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.verifier_bench import _Harness  # noqa: E402
from oracle.profile.codec import encode_tensor, numel
from oracle.profile.opcodes import Opcode
from oracle.profile.program import Program, encode, macs
from oracle.profile.reference import run_bytes  # noqa: E402


def _worst(h: _Harness, program: Program) -> int:
    from tests.verifier.test_gas_bound_transformer_ops import _inputs

    chunks = h.store(encode(program))
    worst = 0
    for x in _inputs(program):
        data = encode_tensor(x, program.input_width)
        if h.output(chunks, data) != run_bytes(program, data):
            raise AssertionError("verifier output differs from the reference interpreter")
        worst = max(worst, h.exec_gas(chunks, data))
    return worst


def _marginal(h: _Harness, build: Callable[[int], tuple[Program, int]], size: int) -> float:
    """Gas per unit between ``build(size)`` and ``build(2 * size)`` (each returns a program and its units)."""
    (p1, u1), (p2, u2) = build(size), build(2 * size)
    return round((_worst(h, p2) - _worst(h, p1)) / (u2 - u1), 1)


def _one_op(shape: tuple[int, ...], width: int, add: Callable[..., int]) -> Program:
    from tests.verifier.helpers import Builder

    b = Builder(shape, input_width=width)
    add(b)
    return b.build()


def _gather(rows: int) -> tuple[Program, int]:
    table = np.random.default_rng(1).integers(-100, 100, size=(64, 48))
    p = _one_op((rows, 16), 1, lambda b: b.op(Opcode.GATHER, [b.const(table, 1), b.op(Opcode.CLIP, [0], [0, 63])]))
    return p, rows * 16 * 48


def _reduce(code: Opcode) -> Callable[[int], tuple[Program, int]]:
    def build(rows: int) -> tuple[Program, int]:
        return _one_op((rows, 4, 32), 4, lambda b: b.op(code, [0], [2, 0])), rows * 128

    return build


def _transpose(rows: int) -> tuple[Program, int]:
    return _one_op((rows, 8, 24), 8, lambda b: b.op(Opcode.TRANSPOSE_ND, [0], [0, 3, 1, 2])), rows * 192


def _div(rows: int) -> tuple[Program, int]:
    p = _one_op((rows, 64), 2, lambda b: b.op(Opcode.DIV, [0, b.op(Opcode.CLIP, [0], [1, 100])]))
    return p, rows * 64


def _attention(batch: int) -> tuple[Program, int]:
    p = _one_op((batch, 8, 16), 1, lambda b: b.op(Opcode.MATMUL, [0, b.op(Opcode.TRANSPOSE_ND, [0], [0, 1, 3, 2])]))
    return p, batch * 8 * 16 * 8


def run(w3: Web3) -> dict[str, float]:
    from tests.dispute.test_game_transformer_ops import attention_layers
    from tests.verifier.test_gas_bound_transformer_ops import CASES

    h = _Harness(w3)
    ratios = []
    for program, _ in CASES.values():
        ratios.append(h.bound(h.store(encode(program))) / _worst(h, program))
    big = attention_layers(2)
    x = encode_tensor(np.random.default_rng(3).integers(-128, 128, size=big.input_shape), 1)
    return {
        "ops.gather.gas_per_element": _marginal(h, _gather, 2),
        "ops.reduce_sum.gas_per_input_element": _marginal(h, _reduce(Opcode.REDUCE_SUM), 8),
        "ops.reduce_max.gas_per_input_element": _marginal(h, _reduce(Opcode.REDUCE_MAX), 8),
        "ops.transpose_nd.gas_per_element": _marginal(h, _transpose, 8),
        "ops.div_computed.gas_per_element": _marginal(h, _div, 8),
        "ops.matmul_act_act.gas_per_mac": _marginal(h, _attention, 2),
        "ops.bound_over_measured_min": round(min(ratios), 3),
        "ops.bound_over_measured_max": round(max(ratios), 3),
        "ops.attention_2layer.execute_gas": float(h.exec_gas(h.store(encode(big)), x)),
        "ops.attention_2layer.macs": float(macs(big)),
        "ops.attention_2layer.elements": float(numel(big.input_shape)),
    }


def main() -> None:
    from oracle.chain.devnet import Devnet

    with Devnet() as devnet:
        w3 = Web3(Web3.HTTPProvider(devnet.url, request_kwargs={"timeout": 300}))
        results = run(w3)
    for key, value in results.items():
        print(f"{key:40s} {value:,.3f}")


if __name__ == "__main__":
    main()
