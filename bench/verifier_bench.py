"""Gas of the on-chain fraud proof: `IntegerVerifier.executeStored` re-running a whole integer MLP.

Figures (``eth_estimateGas`` of ``executeStored`` on anvil, so the 21,000 intrinsic gas and calldata
are included; the program is stored as data chunks exactly as the registry stores it):

- ``fraudproof.gas_per_mac``: gas / multiply-accumulates for a 256-256-256-256 MLP with int8 weights
  (MatMul -> Add int32 bias -> Div 2^s rescale -> ReLU per hidden layer, ArgMax at the end), averaged
  over random int8 inputs. About half the hidden activations are zero after ReLU and cost nothing.
- ``fraudproof.gas_per_mac_dense``: the same network without ReLU, so every activation is non-zero
  (the kernel's cost when nothing can be skipped).
- ``fraudproof.gas_per_mac_worst``: one 256x256 int8 MatMul whose activations are all int64 extremes
  (each is split into four 16-bit limbs, and every lane level flushes repeatedly): the kernel's worst
  case, which bounds the gas of a challenge whatever the input.
- ``fraudproof.max_macs_30m``: the largest MACs of such an MLP (three square layers, width searched)
  whose full ``executeStored`` fits 30M gas; ``fraudproof.max_width_30m`` is that width.
- ``fraudproof.gas_30m_at_max``: the gas of that largest execution.
- ``fraudproof.bound_over_measured_min`` / ``_max``: the registry's static bound on ``executeStored``
  (``IntegerVerifier.executionGasBound``, computed from the program alone) over the worst gas measured on
  all-zero, extreme, random and adversarial inputs, over the shipped models, MLPs, every MatMul kernel
  path and fuzzed programs. The minimum must be >= 1 (the bound never under-estimates).
- ``fraudproof.max_macs_per_tx_worst``: MACs of the largest square int8 MatMul (``[1,n] x [n,n]``, int8
  input) that the registry accepts under the 16,777,216-gas transaction cap, i.e. whose proof fits on
  every input; ``fraudproof.max_width_per_tx`` is that n and ``fraudproof.gas_per_tx_at_max`` its
  measured worst-case ``executeStored`` gas (all activations at the int8 extremes).

Run ``python bench/verifier_bench.py`` (starts its own anvil) or call ``run(w3)`` from a harness.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
from web3 import Web3

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from oracle.chain import artifacts  # noqa: E402
from oracle.profile.codec import encode_tensor
from oracle.profile.opcodes import Opcode
from oracle.profile.program import Constant, Op, Program, encode
from oracle.profile.reference import run_bytes  # noqa: E402

BLOCK_BUDGET = 30_000_000
TX_GAS_CAP = 16_777_216
CHUNK = 24_575  # DataChunks.MAX_CHUNK
#: Chunk addresses used with anvil_setCode: far from anything anvil deploys.
_CHUNK_BASE = 0x7E51F1E000000000000000000000000000000000


def mlp_program(widths: list[int], *, relu: bool = True, seed: int = 0) -> tuple[Program, int]:
    """A quantised MLP ``widths[0] -> ... -> widths[-1]`` with int8 weights; returns it and its MACs.

    Hidden layers: MatMul (int8) -> Add (int32 bias) -> Div (2^s, keeps activations near int8 range)
    -> Max(., 0). The last layer: MatMul -> Add -> ArgMax (output width 4).
    """
    rng = np.random.default_rng(seed)
    shapes: list[tuple[int, ...]] = [(1, widths[0])]
    consts: list[Constant] = []
    ops: list[Op] = []

    def tensor(shape: tuple[int, ...]) -> int:
        shapes.append(shape)
        return len(shapes) - 1

    def const(values: np.ndarray, width: int) -> int:
        tid = tensor(tuple(values.shape))
        consts.append(Constant(tid, width, values.astype(np.int64)))
        return tid

    zero = const(np.zeros((1,), dtype=np.int64), 1)
    x, macs = 0, 0
    layers = len(widths) - 1
    for i in range(layers):
        k, n = widths[i], widths[i + 1]
        w = const(rng.integers(-128, 128, size=(k, n)), 1)
        b = const(rng.integers(-(2**15), 2**15, size=(n,)), 4)
        y = tensor((1, n))
        ops.append(Op(Opcode.MATMUL, (x, w), y))
        z = tensor((1, n))
        ops.append(Op(Opcode.ADD, (y, b), z))
        macs += k * n
        if i == layers - 1:
            x = z
            break
        # Rescale so activations stay in the same range layer after layer (std of a sum of k products).
        shift = int(round(6 + 0.5 * math.log2(k)))
        d = const(np.array([1 << shift]), 4)
        q = tensor((1, n))
        ops.append(Op(Opcode.DIV, (z, d), q))
        if relu:
            r = tensor((1, n))
            ops.append(Op(Opcode.MAX, (q, zero), r))
            x = r
        else:
            x = q
    out = tensor((1,))
    ops.append(Op(Opcode.ARGMAX, (x,), out, (1, 0, 0)))
    prog = Program(1, 4, tuple(shapes), 0, out, tuple(consts), tuple(ops))
    return prog, macs


def _single_matmul(k: int, n: int, seed: int = 6) -> tuple[Program, int]:
    """``[1,k] x [k,n]`` with int8 weights, int64 input and output (nothing else in the program)."""
    w = np.random.default_rng(seed).integers(-128, 128, size=(k, n))
    prog = Program(8, 8, ((1, k), (k, n), (1, n)), 0, 2, (Constant(1, 1, w),), (Op(Opcode.MATMUL, (0, 1), 2),))
    return prog, k * n


class _Harness:
    """A deployed verifier plus program chunks placed with ``anvil_setCode`` (fast for megabytes)."""

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3
        art = artifacts.load("IntegerVerifier")
        sender = w3.eth.accounts[0]
        tx = w3.eth.contract(abi=art.abi, bytecode=art.bytecode).constructor().transact({"from": sender})
        receipt = w3.eth.wait_for_transaction_receipt(tx)
        self.verifier = w3.eth.contract(address=receipt["contractAddress"], abi=art.abi)
        self.sender = sender
        self._next = 0

    def store(self, data: bytes) -> list[str]:
        """Writes ``data`` as DataChunks-layout chunks (a STOP byte, then the payload)."""
        chunks = []
        for i in range(0, len(data), CHUNK):
            self._next += 1
            addr = Web3.to_checksum_address(f"0x{_CHUNK_BASE + self._next:040x}")
            code = b"\x00" + data[i : i + CHUNK]
            resp = self.w3.provider.make_request("anvil_setCode", [addr, "0x" + code.hex()])  # type: ignore[arg-type]
            if "error" in resp:
                raise RuntimeError(f"anvil_setCode failed: {resp['error']}")
            chunks.append(addr)
        return chunks

    def exec_gas(self, chunks: list[str], inp: bytes) -> int:
        """Gas of the verifier's own frame (GasMeter: gasleft() around the call), no calldata pricing."""
        if not hasattr(self, "_meter"):
            art = artifacts.load("GasMeter")
            tx = self.w3.eth.contract(abi=art.abi, bytecode=art.bytecode).constructor().transact({"from": self.sender})
            addr = self.w3.eth.wait_for_transaction_receipt(tx)["contractAddress"]
            self._meter = self.w3.eth.contract(address=addr, abi=art.abi)
        data = self.verifier.functions.executeStored(chunks, inp)._encode_transaction_data()
        ok, used = self._meter.functions.measure(self.verifier.address, data).call({"gas": 99_000_000})
        if not ok:
            raise AssertionError("executeStored reverted")
        return int(used)

    def bound(self, chunks: list[str]) -> int:
        return int(self.verifier.functions.executionGasBound(chunks).call({"gas": 99_000_000})[0])

    def gas(self, chunks: list[str], inp: bytes) -> int | None:
        """``eth_estimateGas`` of executeStored, or None when it does not fit the block."""
        try:
            return int(self.verifier.functions.executeStored(chunks, inp).estimate_gas({"from": self.sender}))
        except Exception:  # noqa: BLE001 - out of gas at the block limit
            return None

    def output(self, chunks: list[str], inp: bytes) -> bytes:
        return bytes(self.verifier.functions.executeStored(chunks, inp).call({"gas": 100_000_000}))


def _inputs(width: int, count: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [encode_tensor(rng.integers(-128, 128, size=(1, width)), 1) for _ in range(count)]


def _gas_per_mac(h: _Harness, prog: Program, macs: int, samples: int, seed: int) -> float:
    data = encode(prog)
    chunks = h.store(data)
    total = 0
    for inp in _inputs(prog.input_shape[1], samples, seed):
        if h.output(chunks, inp) != run_bytes(prog, inp):
            raise AssertionError("verifier output differs from the reference interpreter")
        gas = h.gas(chunks, inp)
        if gas is None:
            raise AssertionError("benchmark MLP does not fit the block gas limit")
        total += gas
    return total / samples / macs


def _bound_cases() -> list[Program]:
    """Shipped models, MLPs, every MatMul kernel path, fuzzed programs (the tests' generator)."""
    from hypothesis import given, settings

    from oracle.profile.models import program_bytes
    from oracle.profile.program import decode
    from tests.contracts.proof_gas import chained_matmuls, single_matmul
    from tests.verifier.test_verifier_properties import SETTINGS, programs

    cases = [decode(program_bytes(n)) for n in ("digits", "breast_cancer", "credit_risk")]
    cases += [mlp_program(w, relu=r, seed=1)[0] for w in ([64, 64, 10], [256, 256, 256, 256], [784, 128, 10])
              for r in (False, True)]
    cases += [single_matmul(*a) for a in [(1, 256, 256, 1, 1), (1, 256, 256, 1, 2), (1, 256, 256, 1, 4),
                                           (1, 256, 256, 1, 8), (1, 200, 130, 2, 8), (2, 100, 33, 4, 8),
                                           (1, 64, 70, 8, 8), (3, 40, 300, 1, 8)]]
    cases.append(chained_matmuls(4, 64))
    fuzzed: list[Program] = []

    @settings(SETTINGS, max_examples=40)
    @given(programs())
    def collect(case: tuple[Program, int]) -> None:
        if max(math.prod(s) for s in case[0].shapes) <= 4096:
            fuzzed.append(case[0])

    collect()
    return cases + fuzzed


def _worst_inputs(prog: Program) -> list[bytes]:
    from tests.contracts.proof_gas import adversarial_inputs, extreme_inputs, random_inputs

    shape, w = prog.input_shape, prog.input_width
    xs = [np.zeros(shape, dtype=np.int64), *extreme_inputs(shape, w), *random_inputs(shape, w, 2, 0),
          *adversarial_inputs(prog)]
    return [encode_tensor(np.asarray(x).reshape(shape), w) for x in xs]


def bound_figures(h: _Harness) -> dict[str, float]:
    ratios = []
    for prog in _bound_cases():
        chunks = h.store(encode(prog))
        bound = h.bound(chunks)
        worst = max(h.exec_gas(chunks, x) for x in _worst_inputs(prog))
        ratios.append(bound / worst)
    from oracle.profile import gas_bound
    from tests.contracts.proof_gas import single_matmul

    def accepted(n: int) -> bool:
        prog = single_matmul(1, n, n, 1, 1)
        data = encode(prog)
        e = gas_bound.execution_bound(prog, len(data)).total
        chunks = (len(data) + CHUNK - 1) // CHUNK
        # InferenceOracle._proofGasBound for this model (n-byte input, 8n-byte output).
        proof = (21_000 + 16 * (100 + (n + 31) // 32 * 32) + 100_000 + 2_400 * chunks + 16 * (n + 8 * n)
                 + (e * 64 + 62) // 63)
        return proof <= TX_GAS_CAP

    n = 16
    while accepted(n + 16):
        n += 16
    prog = single_matmul(1, n, n, 1, 1)
    chunks = h.store(encode(prog))
    lo, hi = -128, 127
    worst_in = [encode_tensor(np.array([[hi if i % 2 == 0 else lo for i in range(n)]]), 1),
                encode_tensor(np.full((1, n), hi), 1)]
    worst = max(h.exec_gas(chunks, x) for x in worst_in)
    return {
        "fraudproof.bound_over_measured_min": round(min(ratios), 3),
        "fraudproof.bound_over_measured_max": round(max(ratios), 3),
        "fraudproof.bound_cases": float(len(ratios)),
        "fraudproof.max_macs_per_tx_worst": float(n * n),
        "fraudproof.max_width_per_tx": float(n),
        "fraudproof.gas_per_tx_at_max": float(worst),
    }


def run(w3: Web3) -> dict[str, float]:
    h = _Harness(w3)
    figures = bound_figures(h)
    prog, macs = mlp_program([256, 256, 256, 256], seed=1)
    per_mac = _gas_per_mac(h, prog, macs, samples=5, seed=2)
    dense, dense_macs = mlp_program([256, 256, 256, 256], relu=False, seed=1)
    per_mac_dense = _gas_per_mac(h, dense, dense_macs, samples=3, seed=3)

    worst_prog, worst_macs = _single_matmul(256, 256)
    chunks = h.store(encode(worst_prog))
    extremes = np.where(np.arange(256) % 2 == 0, 2**63 - 1, -(2**63)).reshape(1, 256)
    worst_in = encode_tensor(extremes, 8)
    if h.output(chunks, worst_in) != run_bytes(worst_prog, worst_in):
        raise AssertionError("verifier output differs from the reference interpreter")
    worst_gas = h.gas(chunks, worst_in)
    assert worst_gas is not None
    per_mac_worst = worst_gas / worst_macs

    # Largest square 3-layer MLP under 30M gas: gas grows monotonically with the width, so bisect on
    # multiples of 16 (one random input per width; the spread between inputs is ~1%).
    def fits(width: int) -> int | None:
        p, _ = mlp_program([width] * 4, seed=4)
        chunks = h.store(encode(p))
        gas = h.gas(chunks, _inputs(width, 1, 5)[0])
        return gas if gas is not None and gas <= BLOCK_BUDGET else None

    lo, hi = 16, 4096  # lo fits, hi does not (the bracket is checked below)
    lo_gas = fits(lo)
    if lo_gas is None or fits(hi) is not None:
        raise AssertionError("30M-gas search bracket is wrong")
    while hi - lo > 16:
        mid = (lo + hi) // 32 * 16
        g = fits(mid)
        if g is None:
            hi = mid
        else:
            lo, lo_gas = mid, g
    return {
        "fraudproof.gas_per_mac": round(per_mac, 3),
        "fraudproof.gas_per_mac_dense": round(per_mac_dense, 3),
        "fraudproof.gas_per_mac_worst": round(per_mac_worst, 3),
        "fraudproof.max_macs_30m": float(3 * lo * lo),
        "fraudproof.max_width_30m": float(lo),
        "fraudproof.gas_30m_at_max": float(lo_gas),
        **figures,
    }


def main() -> None:
    from oracle.chain.devnet import Devnet

    with Devnet() as devnet:
        w3 = Web3(Web3.HTTPProvider(devnet.url, request_kwargs={"timeout": 300}))
        results: dict[str, Any] = run(w3)
    for key, value in results.items():
        print(f"{key:32s} {value:,.3f}")


if __name__ == "__main__":
    main()
