"""The static proof-gas bound (`IntegerVerifier.executionGasBound`, mirrored by `oracle.profile.gas_bound`).

Two properties, on shipped, hand-built and fuzzed programs:
- the on-chain bound is exactly the Python mirror's (so tools can predict registration);
- it is never below the gas `executeStored` really uses, whatever the input: all zeros, the extremes of the
  input width, random, and inputs built to keep MatMul activations non-zero (the kernel skips zeros);
  and on programs where the kernel work dominates it stays within 1.5x of the worst measured.
Gas is measured with `GasMeter` (gasleft() around the call), so calldata pricing does not blur it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from web3 import Web3
from web3.contract import Contract

from oracle.profile import gas_bound
from oracle.profile.codec import encode_tensor, width_range
from oracle.profile.models import program_bytes
from oracle.profile.opcodes import Opcode
from oracle.profile.program import Constant, Op, Program, decode, encode
from tests.contracts.proof_gas import (
    adversarial_inputs,
    chained_matmuls,
    extreme_inputs,
    random_inputs,
    single_matmul,
)
from tests.verifier.helpers import call, deploy, write_chunks
from tests.verifier.test_verifier_properties import SETTINGS, programs

#: Every shipped EXACT program (oracle/models/*.program).
SHIPPED = sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "oracle" / "models").glob("*.program"))


@pytest.fixture(scope="module")
def meter(session_w3: Web3) -> Contract:
    return deploy(session_w3, "GasMeter")


def _bound(verifier: Contract, chunks: list[str]) -> tuple[int, int, int]:
    gas, n_in, n_out = verifier.functions.executionGasBound(chunks).call({"gas": 90_000_000})
    return int(gas), int(n_in), int(n_out)


def _measure(verifier: Contract, meter: Contract, chunks: list[str], x: bytes) -> int:
    data = verifier.functions.executeStored(chunks, x)._encode_transaction_data()
    ok, used = meter.functions.measure(verifier.address, data).call({"gas": 90_000_000})
    assert ok, "executeStored reverted"
    return int(used)


def _check(session_w3: Web3, verifier: Contract, chunk_writer: Contract, meter: Contract, program: Program,
           inputs: list[np.ndarray]) -> tuple[int, int]:
    """Asserts mirror equality and bound >= measured on every input; returns (bound, worst measured)."""
    data = encode(program)
    chunks = write_chunks(session_w3, chunk_writer, data)
    gas, n_in, n_out = _bound(verifier, chunks)
    mirror = gas_bound.execution_bound(program, len(data), len(chunks))
    assert (gas, n_in, n_out) == (mirror.total, mirror.input_length, mirror.output_length)
    worst = 0
    for x in inputs:
        used = _measure(verifier, meter, chunks, encode_tensor(np.asarray(x).reshape(program.input_shape),
                                                                program.input_width))
        assert used <= gas, f"measured {used} > bound {gas} on input {np.asarray(x).reshape(-1)[:8]}..."
        worst = max(worst, used)
    return gas, worst


def _all_inputs(program: Program, seed: int = 0) -> list[np.ndarray]:
    shape, w = program.input_shape, program.input_width
    return [np.zeros(shape, dtype=np.int64), *extreme_inputs(shape, w), *random_inputs(shape, w, 2, seed),
            *adversarial_inputs(program)]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_models(session_w3: Web3, verifier: Contract, chunk_writer: Contract, meter: Contract,
                        name: str) -> None:
    program = decode(program_bytes(name))
    gas, worst = _check(session_w3, verifier, chunk_writer, meter, program, _all_inputs(program))
    assert gas <= 1.5 * worst


@pytest.mark.parametrize(
    ("m", "k", "n", "w", "in_w"),
    [(1, 256, 256, 1, 1), (1, 256, 256, 1, 2), (1, 256, 256, 1, 4), (1, 256, 256, 1, 8), (1, 200, 130, 2, 4),
     (1, 200, 130, 2, 8), (2, 100, 33, 4, 8), (1, 64, 70, 8, 8), (3, 40, 300, 1, 8), (1, 1500, 20, 1, 8)],
)
def test_matmul_kernel_paths(session_w3: Web3, verifier: Contract, chunk_writer: Contract, meter: Contract,
                             m: int, k: int, n: int, w: int, in_w: int) -> None:
    """Every lane level and flush regime of the packed kernel, activations at the width's ends (every limb
    of 2^63 - 1 is full, so each level queues and flushes as often as it can)."""
    program = single_matmul(m, k, n, w, in_w)
    lo, hi = width_range(in_w)
    inputs = _all_inputs(program)
    inputs.append(np.full(program.input_shape, -hi, dtype=np.int64))
    gas, worst = _check(session_w3, verifier, chunk_writer, meter, program, inputs)
    assert gas <= 1.5 * worst


def _mlp(widths: list[int], relu: bool, seed: int = 1) -> Program:
    """The benchmark MLP shape: int8 weights, int32 bias, Div rescale, optional ReLU, ArgMax."""
    rng = np.random.default_rng(seed)
    shapes: list[tuple[int, ...]] = [(1, widths[0])]
    consts: list[Constant] = []
    ops: list[Op] = []

    def tensor(shape: tuple[int, ...]) -> int:
        shapes.append(shape)
        return len(shapes) - 1

    def const(values: np.ndarray, width: int) -> int:
        tid = tensor(tuple(values.shape))
        consts.append(Constant(tid, width, values))
        return tid

    zero = const(np.zeros((1,), dtype=np.int64), 1)
    x = 0
    for i in range(len(widths) - 1):
        k, n = widths[i], widths[i + 1]
        y = tensor((1, n))
        ops.append(Op(Opcode.MATMUL, (x, const(rng.integers(-128, 128, size=(k, n)), 1)), y))
        z = tensor((1, n))
        ops.append(Op(Opcode.ADD, (y, const(rng.integers(-(2**15), 2**15, size=(n,)), 4)), z))
        if i == len(widths) - 2:
            x = z
            break
        q = tensor((1, n))
        ops.append(Op(Opcode.DIV, (z, const(np.array([1 << int(round(6 + 0.5 * math.log2(k)))]), 4)), q))
        if relu:
            r = tensor((1, n))
            ops.append(Op(Opcode.MAX, (q, zero), r))
            q = r
        x = q
    out = tensor((1,))
    ops.append(Op(Opcode.ARGMAX, (x,), out, (1, 0, 0)))
    return Program(1, 4, tuple(shapes), 0, out, tuple(consts), tuple(ops))


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("widths", [[64, 64, 10], [256, 256, 256, 256], [784, 128, 10]])
def test_mlps(session_w3: Web3, verifier: Contract, chunk_writer: Contract, meter: Contract, widths: list[int],
              relu: bool) -> None:
    program = _mlp(widths, relu)
    gas, worst = _check(session_w3, verifier, chunk_writer, meter, program, _all_inputs(program, seed=3))
    if not relu:
        # Without ReLU no activation is zero: the bound is within 1.5x of a real worst case. With ReLU
        # the kernel skips the zeros the ReLU makes and no input need open every unit, so the ratio to
        # the measured inputs can be higher (reported by the bench, not asserted).
        assert gas <= 1.5 * worst


def test_chained_matmuls_bound(session_w3: Web3, verifier: Contract, chunk_writer: Contract,
                               meter: Contract) -> None:
    """The issue's shape (one weight matrix reused by chained MatMuls), small enough to run here; the
    activations grow to int64 after two layers, so every later layer runs all four lane levels."""
    program = chained_matmuls(4, 64)
    _check(session_w3, verifier, chunk_writer, meter, program, _all_inputs(program))


@settings(SETTINGS, max_examples=60)
@given(programs())
def test_fuzzed_programs(session_w3: Web3, verifier: Contract, chunk_writer: Contract, meter: Contract,
                         case: tuple[Program, int]) -> None:
    program, seed = case
    if max(math.prod(s) for s in program.shapes) > 4096:
        return
    _check(session_w3, verifier, chunk_writer, meter, program, _all_inputs(program, seed))


def test_malformed_program_has_no_bound(session_w3: Web3, verifier: Contract, chunk_writer: Contract) -> None:
    chunks = write_chunks(session_w3, chunk_writer, b"IOP1" + bytes(40))
    assert getattr(call(verifier.functions.executionGasBound(chunks)), "name", None) == "MalformedProgram"
