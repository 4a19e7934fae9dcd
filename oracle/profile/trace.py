"""State commitments of the interactive dispute game (docs/protocol.md §6, "Dispute game (v2)").

Mirrors ``contracts/dispute/StateMerkle.sol`` bit for bit (tests compare the two on anvil):

- a tensor is encoded at 8 bytes per element (big-endian two's complement int64, row-major); its hash
  is the Merkle root over keccak256 of its 2048-byte chunks (the last one shorter), an odd level padded
  with 32 zero bytes (one chunk: the chunk's hash);
- the state after ``k`` ops is the Merkle root of a tree with one leaf per tensor id (``2**depth`` leaves,
  ``depth = max(1, ceil(log2(#tensors)))``): a tensor's hash once computed (the input from the start),
  zero otherwise. Constants stay zero: a step reads them from the program.

:class:`Trace` runs the reference interpreter (:func:`oracle.profile.reference.run_op`, the spec the
verifier's kernels match) and answers everything a party of the game needs: state roots, Merkle proofs,
the output tensor, the one-step proof's operands. ``tamper`` builds the trace of a lying operator (one
op's output altered, every later op computed from it): what a dishonest node would consistently defend.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from eth_utils.crypto import keccak

from oracle.profile.program import IntArray, Program, decode_tensor, encode_tensor, width_range
from oracle.profile.reference import run_op

CHUNK_BYTES = 2048
ZERO = bytes(32)


def tensor_bytes(values: IntArray | Sequence[int]) -> bytes:
    """The 8-byte big-endian encoding of a tensor's elements (row-major)."""
    return np.asarray(values, dtype=np.int64).astype(">i8").tobytes()


def tensor_hash(data: bytes) -> bytes:
    """Chunked Merkle hash of an encoded tensor (``StateMerkle.tensorHash``)."""
    if not data:
        return keccak(b"")
    level = [keccak(data[i:i + CHUNK_BYTES]) for i in range(0, len(data), CHUNK_BYTES)]
    while len(level) > 1:
        if len(level) % 2:
            level.append(ZERO)
        level = [keccak(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def depth(num_tensors: int) -> int:
    d = 1
    while (1 << d) < num_tensors:
        d += 1
    return d


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    level = list(leaves)
    while len(level) > 1:
        level = [keccak(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def merkle_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Siblings of leaf ``index``, bottom-up (``StateMerkle.rootOf``)."""
    proof = []
    level = list(leaves)
    while len(level) > 1:
        proof.append(level[index ^ 1])
        level = [keccak(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
        index >>= 1
    return proof


def root_of(leaf: bytes, index: int, proof: Sequence[bytes]) -> bytes:
    h = leaf
    for k, sibling in enumerate(proof):
        h = keccak(h + sibling) if (index >> k) & 1 == 0 else keccak(sibling + h)
    return h


def saturated_output(program: Program, values: IntArray) -> bytes:
    """The canonical output bytes an attestation commits to for the output tensor ``values``."""
    lo, hi = width_range(program.output_width)
    return encode_tensor(np.clip(np.asarray(values, dtype=np.int64), lo, hi), program.output_width)


Tamper = Callable[[int, IntArray], IntArray]


@dataclass
class StepProof:
    """Arguments of ``DisputeGame.step`` (operands as 8-byte tensors, constants empty)."""

    operands: list[bytes]
    proofs: list[list[bytes]]
    out_leaf: bytes
    out_proof: list[bytes]

    def as_tuple(self) -> tuple[Any, ...]:
        return (self.operands, self.proofs, self.out_leaf, self.out_proof)


@dataclass
class Trace:
    """Every state of one execution of ``program`` on ``x`` (optionally tampered: see module doc)."""

    program: Program
    x: IntArray
    tamper: Tamper | None = None
    values: dict[int, IntArray] = field(init=False)
    computed_at: dict[int, int] = field(init=False)  # tensor id -> state index from which its leaf is set
    _leaf: dict[int, bytes] = field(init=False)

    def __post_init__(self) -> None:
        p = self.program
        env: dict[int, IntArray] = {c.tensor_id: c.values for c in p.constants}
        env[p.input_id] = np.asarray(self.x, dtype=np.int64).reshape(p.input_shape)
        self.computed_at = {p.input_id: 0}
        for i, op in enumerate(p.ops):
            out = run_op(op.opcode, [env[t] for t in op.inputs], op.attrs, p.shapes[op.output])
            if self.tamper is not None:
                out = np.asarray(self.tamper(i, out), dtype=np.int64).reshape(p.shapes[op.output])
            env[op.output] = out
            self.computed_at[op.output] = i + 1
        self.values = env
        self._leaf = {t: tensor_hash(tensor_bytes(env[t])) for t in self.computed_at}
        self.depth = depth(len(p.shapes))
        self._roots: dict[int, bytes] = {}

    @classmethod
    def from_input_bytes(cls, program: Program, data: bytes, tamper: Tamper | None = None) -> Trace:
        return cls(program, decode_tensor(data, program.input_shape, program.input_width), tamper)

    @property
    def num_ops(self) -> int:
        return len(self.program.ops)

    def leaves(self, k: int) -> list[bytes]:
        """Leaves of the state after ``k`` ops."""
        out = [ZERO] * (1 << self.depth)
        for t, at in self.computed_at.items():
            if at <= k:
                out[t] = self._leaf[t]
        return out

    def root(self, k: int) -> bytes:
        if k not in self._roots:
            self._roots[k] = merkle_root(self.leaves(k))
        return self._roots[k]

    def proof(self, k: int, tensor_id: int) -> list[bytes]:
        return merkle_proof(self.leaves(k), tensor_id)

    def output_values(self) -> bytes:
        return tensor_bytes(self.values[self.program.output_id])

    def output_bytes(self) -> bytes:
        """The attested output this trace implies."""
        return saturated_output(self.program, self.values[self.program.output_id])

    def step_proof(self, lo: int) -> StepProof:
        """The one-step proof of op ``lo`` against this trace's state ``lo``."""
        p = self.program
        op = p.ops[lo]
        consts = p.constant_map()
        operands: list[bytes] = []
        proofs: list[list[bytes]] = []
        for t in op.inputs:
            if t in consts:
                operands.append(b"")
                proofs.append([])
            else:
                operands.append(tensor_bytes(self.values[t]))
                proofs.append(self.proof(lo, t))
        leaves = self.leaves(lo)
        return StepProof(operands, proofs, leaves[op.output], self.proof(lo, op.output))


def perturb_at(op_index: int, delta: int = 1 << 20) -> Tamper:
    """A lie: op ``op_index``'s first output element plus ``delta`` (later ops computed from it)."""

    def tamper(i: int, out: IntArray) -> IntArray:
        if i != op_index:
            return out
        lied = np.array(out, dtype=np.int64, copy=True).reshape(-1)
        lied[0] += delta
        return lied.reshape(out.shape)

    return tamper
