"""Helpers for the verifier tests: build programs, run them on-chain and with the reference, compare.

Programs are built with ``oracle.profile.program`` (the format's own encoder) and judged by
``oracle.profile.reference`` (the executable spec); the verifier must return the reference's exact
output bytes, or revert with the custom error the situation calls for.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from eth_abi import decode as abi_decode
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract

from oracle.chain import artifacts
from oracle.chain.artifacts import _type_str
from oracle.chain.reverts import decode_revert_data
from oracle.errors import ContractRevert
from oracle.profile import reference
from oracle.profile.codec import IntArray, Shape, encode_tensor, narrowest_width, width_range
from oracle.profile.opcodes import Opcode, argmax_shape, broadcast_shape, matmul_shape, onnx_perm
from oracle.profile.program import Constant, Op, Program, encode

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
MAX_CHUNK = 24_575  # DataChunks.MAX_CHUNK
#: eth_call gas for conformance calls: far above any test program, below anvil's block limit.
CALL_GAS = 90_000_000


def deploy(w3: Web3, name: str) -> Contract:
    art = artifacts.load(name)
    tx = w3.eth.contract(abi=art.abi, bytecode=art.bytecode).constructor().transact({"from": w3.eth.accounts[0]})
    receipt = w3.eth.wait_for_transaction_receipt(tx)
    assert receipt["status"] == 1
    return w3.eth.contract(address=receipt["contractAddress"], abi=art.abi)


def call(fn: Any) -> Any:
    """Runs a contract call; a revert comes back as the decoded :class:`ContractRevert` (not raised).

    Straight ``eth_call`` through the provider: web3's call pipeline costs ~10 ms a call, the node ~2 ms,
    and the property tests make thousands of calls.
    """
    data = fn._encode_transaction_data()
    resp = fn.w3.provider.make_request("eth_call", [{"to": fn.address, "data": data, "gas": hex(CALL_GAS)}, "latest"])
    if "error" in resp:
        err = resp["error"]
        raw = err.get("data") if isinstance(err, dict) else None
        if isinstance(raw, dict):
            raw = raw.get("data")
        if not raw:
            raise AssertionError(f"call failed without revert data: {err}")
        return decode_revert_data(raw)
    types = [_type_str(o) for o in fn.abi["outputs"]]
    values = abi_decode(types, bytes(HexBytes(resp["result"])))
    return values[0] if len(values) == 1 else values


def reverted(result: Any, name: str, *args: Any) -> bool:
    """Whether ``result`` (from :func:`call`) is the custom error ``name`` with exactly ``args``."""
    return (
        isinstance(result, ContractRevert)
        and result.name == name
        and (not args or tuple(result.args_decoded) == tuple(args))
    )


def expect_revert(result: Any, name: str, *args: Any) -> None:
    assert isinstance(result, ContractRevert), f"expected {name}{args}, the call returned {result!r}"
    assert result.name == name, f"expected {name}{args}, got {result}"
    if args:
        assert tuple(result.args_decoded) == tuple(args), f"expected {name}{args}, got {result}"


def ref_bytes(program: Program, input_bytes: bytes) -> bytes:
    """The reference's canonical output (total: an output outside its width saturates)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # the reference must wrap silently, never warn
        return reference.run_bytes(program, input_bytes)


def assert_conforms(verifier: Contract, program: Program, x: IntArray) -> bytes:
    """Runs ``program`` on ``x`` on-chain and asserts the verifier matches the reference exactly."""
    data = encode(program)
    inp = encode_tensor(np.asarray(x).reshape(program.input_shape), program.input_width)
    got = call(verifier.functions.execute(data, inp))
    want = ref_bytes(program, inp)
    assert not isinstance(got, ContractRevert), f"verifier reverted {got} where the reference returns {want.hex()}"
    assert bytes(got) == want, f"verifier {bytes(got).hex()} != reference {want.hex()}"
    return want


def random_input(program: Program, rng: np.random.Generator) -> IntArray:
    lo, hi = width_range(program.input_width)
    return rng.integers(lo, hi, size=program.input_shape, endpoint=True, dtype=np.int64)


# --------------------------------------------------------------------------------------------------
# Building programs by hand
# --------------------------------------------------------------------------------------------------


def infer_shape(opcode: Opcode, ins: Sequence[Shape], attrs: Sequence[int]) -> Shape:
    """The output shape an op produces (Reshape and Flatten need it given)."""
    if opcode in (Opcode.ADD, Opcode.SUB, Opcode.MUL, Opcode.DIV, Opcode.MAX, Opcode.MIN):
        out = broadcast_shape(ins[0], ins[1])
        assert out is not None, f"{ins} do not broadcast"
        return out
    if opcode is Opcode.MATMUL:
        mm = matmul_shape(ins[0], ins[1])
        assert mm is not None, f"{ins} do not multiply"
        return mm
    if opcode is Opcode.GATHER:
        return ins[1] + ins[0][1:]
    if opcode in (Opcode.REDUCE_SUM, Opcode.REDUCE_MAX):
        return argmax_shape(ins[0], attrs[0], attrs[1])
    if opcode is Opcode.TRANSPOSE_ND:
        perm = onnx_perm(tuple(attrs), len(ins[0]))
        assert perm is not None, f"bad TransposeND attributes {attrs}"
        return tuple(ins[0][p] for p in perm)
    if opcode is Opcode.TRANSPOSE:
        return (ins[0][1], ins[0][0])
    if opcode is Opcode.ARGMAX:
        return argmax_shape(ins[0], attrs[0], attrs[1])
    return ins[0]


@dataclass
class Builder:
    """Assembles a program tensor by tensor; the input is tensor 0."""

    input_shape: Shape
    input_width: int = 8
    output_width: int = 8
    shapes: list[Shape] = field(default_factory=list)
    consts: list[Constant] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.shapes.append(tuple(self.input_shape))

    def tensor(self, shape: Shape) -> int:
        self.shapes.append(tuple(shape))
        return len(self.shapes) - 1

    def const(self, values: Any, width: int | None = None) -> int:
        arr = np.asarray(values, dtype=np.int64)
        tid = self.tensor(tuple(arr.shape))
        self.consts.append(Constant(tid, width or narrowest_width(arr), arr))
        return tid

    def op(self, opcode: Opcode, inputs: Sequence[int], attrs: Sequence[int] = (), shape: Shape | None = None) -> int:
        out = self.tensor(shape if shape is not None else infer_shape(opcode, [self.shapes[i] for i in inputs], attrs))
        self.ops.append(Op(opcode, tuple(inputs), out, tuple(attrs)))
        return out

    def build(self, output: int | None = None) -> Program:
        out = self.ops[-1].output if output is None else output
        return Program(
            self.input_width,
            self.output_width,
            tuple(self.shapes),
            0,
            out,
            tuple(self.consts),
            tuple(self.ops),
        )


def single_op(
    opcode: Opcode,
    x_shape: Shape,
    operand: Any = None,
    attrs: Sequence[int] = (),
    *,
    width: int | None = None,
    shape: Shape | None = None,
    swap: bool = False,
    input_width: int = 8,
    output_width: int = 8,
) -> Program:
    """A one-op program: input ``x`` (op operand 0, or 1 with ``swap``) and an optional constant."""
    b = Builder(x_shape, input_width, output_width)
    if operand is None:
        b.op(opcode, [0], attrs, shape)
    else:
        c = b.const(operand, width)
        b.op(opcode, [c, 0] if swap else [0, c], attrs, shape)
    return b.build()


# --------------------------------------------------------------------------------------------------
# Chunks
# --------------------------------------------------------------------------------------------------


def write_chunks(w3: Web3, writer: Contract, data: bytes) -> list[str]:
    """Stores ``data`` as DataChunks through the test writer contract (real transactions)."""
    chunks = []
    for i in range(0, len(data), MAX_CHUNK):
        part = data[i : i + MAX_CHUNK]
        tx = writer.functions.write(part).transact({"from": w3.eth.accounts[0], "gas": 8_000_000})
        receipt = w3.eth.wait_for_transaction_receipt(tx)
        assert receipt["status"] == 1
        (event,) = writer.events.ChunkWritten().process_receipt(receipt)
        chunks.append(event["args"]["chunk"])
    return chunks
