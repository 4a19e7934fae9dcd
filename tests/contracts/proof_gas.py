"""Helpers for proof-gas tests: register a program, open a wrong result, measure its challenge.

A challenge is measured the way a challenger pays for it: ``eth_estimateGas`` of the ``challenge``
transaction (the smallest gas limit that succeeds, intrinsic and calldata included), and the transaction is
then sent with exactly the registered bound as its gas limit, which must succeed. The verifier's own share
is measured with ``GasMeter`` (``gasleft()`` around the call), free of calldata pricing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD

from oracle.chain import artifacts
from oracle.chain.tx import deploy
from oracle.chain.types import Mode, ModelSpec
from oracle.profile import gas_bound
from oracle.profile.codec import IntArray, encode_tensor, width_range
from oracle.profile.opcodes import Opcode
from oracle.profile.program import Constant, Op, Program, encode
from oracle.profile.reference import run_all, run_bytes

FEE = 10**15
BOND = 4 * FEE
TX_GAS_CAP = 16_777_216


@dataclass
class Registered:
    model_id: int
    program: Program
    data: bytes
    chunks: list[str]
    bound: int  # proofGasBound
    callback_cap: int


class ProofGas:
    """Registers programs on a deployed oracle and measures challenges of wrong results."""

    def __init__(self, w3: Web3, oracle: Contract, owner: str, operator: str, user: str, challenger: str) -> None:
        self.w3, self.oracle = w3, oracle
        self.owner, self.operator, self.user, self.challenger = owner, operator, user, challenger
        art = artifacts.load("GasMeter")
        self.meter = w3.eth.contract(address=deploy(w3, art.abi, art.bytecode, owner), abi=art.abi)
        v = artifacts.load("IntegerVerifier")
        self.verifier = w3.eth.contract(address=oracle.functions.VERIFIER().call(), abi=v.abi)

    def _ok(self, fn: object, sender: str, value: int = 0, gas: int = 30_000_000) -> dict:
        tx = fn.transact({"from": sender, "value": value, "gas": gas})  # type: ignore[attr-defined]
        receipt = self.w3.eth.wait_for_transaction_receipt(tx)
        assert receipt["status"] == 1, f"transaction failed: {receipt}"
        return receipt

    def write(self, data: bytes) -> list[str]:
        chunks = []
        for start in range(0, len(data), gas_bound.MAX_CHUNK):
            receipt = self._ok(self.oracle.functions.writeProgramChunk(data[start:start + gas_bound.MAX_CHUNK]),
                               self.owner)
            ev = self.oracle.events.ProgramChunkWritten().process_receipt(receipt, errors=DISCARD)
            chunks.append(ev[0]["args"]["chunk"])
        return chunks

    def spec(self, program: Program, data: bytes) -> tuple:
        n_in = int(np.prod(program.input_shape)) * program.input_width
        n_out = int(np.prod(program.output_shape)) * program.output_width
        return ModelSpec(onnx_hash=b"\x22" * 32, fee=FEE, bond=BOND, input_length=n_in, output_length=n_out,
                         mode=Mode.EXACT, uri="file:///gas.onnx",
                         program_commitment=Web3.keccak(data)).as_tuple()

    def register_fn(self, program: Program) -> tuple[object, list[str], bytes]:
        data = encode(program)
        chunks = self.write(data)
        return self.oracle.functions.registerModel(self.spec(program, data), chunks), chunks, data

    def register(self, program: Program) -> Registered:
        fn, chunks, data = self.register_fn(program)
        receipt = self._ok(fn, self.owner)
        mid = int(self.oracle.events.ModelRegistered().process_receipt(receipt, errors=DISCARD)[0]["args"]["modelId"])
        bound, cap = self.oracle.functions.proofGasBound(mid).call()
        return Registered(mid, program, data, chunks, int(bound), int(cap))

    def open_wrong(self, reg: Registered, x: bytes, callback: Contract | None = None, callback_gas: int = 0) -> int:
        """A request on input ``x`` answered with a wrong output; returns the request id."""
        if callback is None:
            receipt = self._ok(self.oracle.functions.requestInference(reg.model_id, x, callback_gas), self.user,
                               value=FEE)
        else:
            # The callback is paid for (twice the base fee), so the proof transaction really runs it.
            base = int(self.w3.eth.get_block("latest")["baseFeePerGas"])
            value = self.oracle.functions.quoteRequest(reg.model_id, callback_gas, 2 * base).call()
            receipt = self._ok(callback.functions.request(reg.model_id, x, callback_gas), self.user, value=value)
        rid = int(self.oracle.events.InferenceRequested().process_receipt(receipt, errors=DISCARD)[0]["args"]
                  ["requestId"])
        right = run_bytes(reg.program, x)
        wrong = bytes(b ^ 0x01 for b in right)
        self._ok(self.oracle.functions.submitResult(rid, wrong), self.operator)
        return rid

    def challenge_gas(self, rid: int, x: bytes) -> int:
        """estimateGas of the challenge: the smallest gas limit with which it succeeds."""
        return int(self.oracle.functions.challenge(rid, x).estimate_gas({"from": self.challenger,
                                                                         "gas": 99_000_000}))

    def challenge_with(self, rid: int, x: bytes, gas: int) -> dict:
        tx = self.oracle.functions.challenge(rid, x).transact({"from": self.challenger, "gas": gas})
        return self.w3.eth.wait_for_transaction_receipt(tx)

    def exec_gas(self, reg: Registered, x: bytes) -> int:
        data = self.verifier.functions.executeStored(reg.chunks, x)._encode_transaction_data()
        ok, used = self.meter.functions.measure(self.verifier.address, data).call({"gas": 99_000_000})
        assert ok
        return int(used)


# ---- Programs and inputs -------------------------------------------------------------------------


def extreme_inputs(shape: tuple[int, ...], width: int) -> list[IntArray]:
    """Inputs at the ends of the width: alternating, all max, all min, all -max (no zero anywhere)."""
    lo, hi = width_range(width)
    n = int(np.prod(shape))
    alt = np.array([hi if i % 2 == 0 else lo for i in range(n)], dtype=np.int64)
    return [alt.reshape(shape), np.full(shape, hi, dtype=np.int64), np.full(shape, lo, dtype=np.int64),
            np.full(shape, -hi, dtype=np.int64)]


def random_inputs(shape: tuple[int, ...], width: int, count: int, seed: int) -> list[IntArray]:
    lo, hi = width_range(width)
    rng = np.random.default_rng(seed)
    return [rng.integers(lo, hi + 1, size=shape) for _ in range(count)]


def _matmul_work(program: Program, x: IntArray) -> int:
    """Non-zero MatMul activations times output columns: the work the kernel cannot skip on ``x``."""
    outs = run_all(program, x)
    env: dict[int, IntArray] = {program.input_id: np.asarray(x)}
    env.update({op.output: out for op, out in zip(program.ops, outs, strict=True)})
    consts = program.constant_map()
    work = 0
    for op in program.ops:
        if op.opcode is Opcode.MATMUL:
            a = consts[op.inputs[0]].values if op.inputs[0] in consts else env[op.inputs[0]]
            work += int(np.count_nonzero(a)) * program.shapes[op.inputs[1]][-1]
    return work


def adversarial_inputs(program: Program, iterations: int = 300, seed: int = 0) -> list[IntArray]:
    """Inputs searched to keep MatMul activations non-zero (the kernel skips zeros, so a ReLU network is
    cheapest when its units are closed): starting from the first layer's input aligned with the sign of
    its weights' column sums (and its negation), a local search flips coordinates to the width's ends or
    random values and keeps every change that does not lower the unskippable work (reference interpreter)."""
    if not any(op.opcode is Opcode.MATMUL for op in program.ops):
        return []
    lo, hi = width_range(program.input_width)
    consts = program.constant_map()
    shape = program.input_shape
    rng = np.random.default_rng(seed)
    starts = [rng.integers(lo, hi + 1, size=shape)]
    for op in program.ops:
        if op.opcode is Opcode.MATMUL and op.inputs[0] == program.input_id and op.inputs[1] in consts:
            w = consts[op.inputs[1]].values
            s = np.sign(w.sum(axis=1))
            s[s == 0] = 1
            x = np.broadcast_to(np.where(s > 0, hi, lo).astype(np.int64).reshape(1, -1), shape).copy()
            starts += [x, np.where(x == hi, lo, hi)]
            break
    out = []
    n = int(np.prod(shape))
    for start in starts:
        best = np.asarray(start, dtype=np.int64).copy()
        best_work = _matmul_work(program, best)
        for _ in range(iterations):
            cand = best.copy().reshape(-1)
            idx = rng.integers(0, n, size=int(rng.integers(1, 9)))
            cand[idx] = rng.choice([lo, hi, int(rng.integers(lo, hi + 1))], size=idx.size)
            cand = cand.reshape(shape)
            work = _matmul_work(program, cand)
            if work >= best_work:
                best, best_work = cand, work
        out.append(best)
    return out


def encode_input(program: Program, x: IntArray) -> bytes:
    return encode_tensor(np.asarray(x).reshape(program.input_shape), program.input_width)


def single_matmul(m: int, k: int, n: int, weight_width: int, input_width: int, seed: int = 0,
                  output_width: int = 8) -> Program:
    lo, hi = width_range(weight_width)
    w = np.random.default_rng(seed).integers(lo, hi + 1, size=(k, n))
    return Program(input_width, output_width, ((m, k), (k, n), (m, n)), 0, 2, (Constant(1, weight_width, w),),
                   (Op(Opcode.MATMUL, (0, 1), 2),))


def chained_matmuls(depth: int, width: int, seed: int = 0) -> Program:
    """One ``width x width`` int8 weight matrix reused by ``depth`` chained MatMuls (int8 input)."""
    w = np.random.default_rng(seed).integers(-128, 128, size=(width, width))
    shapes: list[tuple[int, ...]] = [(1, width), (width, width)]
    ops = []
    cur = 0
    for _ in range(depth):
        shapes.append((1, width))
        ops.append(Op(Opcode.MATMUL, (cur, 1), len(shapes) - 1))
        cur = len(shapes) - 1
    return Program(1, 8, tuple(shapes), 0, cur, (Constant(1, 1, w),), tuple(ops))


def matmul_with_callback_cap(low: int, high: int) -> Program:
    """The smallest ``[1,k] x [k,1024]`` int8 MatMul (k a multiple of 10) whose registered callback gas
    cap (predicted by the Python mirror) lies in ``[low, high]``: a model whose proof nearly fills the cap."""
    from oracle.profile.program import encode

    for k in range(1000, 2000, 10):
        program = single_matmul(1, k, 1024, 1, 1)
        cap = gas_bound.callback_gas_cap(program, len(encode(program)))
        if cap is not None and low <= cap <= high:
            return program
    raise AssertionError("no MatMul size has a callback cap in range")
