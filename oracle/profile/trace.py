"""State commitments of the interactive dispute game (docs/protocol.md §6, "Dispute game (v2)").

Mirrors ``contracts/dispute/StateMerkle.sol`` bit for bit (tests compare the two on anvil):

- a tensor is encoded at 8 bytes per element (big-endian two's complement int64, row-major); its hash
  is the Merkle root over keccak256 of its 2048-byte chunks (the last one shorter), an odd level padded
  with 32 zero bytes (one chunk: the chunk's hash);
- the state after ``k`` steps is the Merkle root of a tree with one leaf per tensor id (``2**depth``
  leaves, ``depth = max(1, ceil(log2(#tensors)))``): a tensor's hash once computed (the input from the
  start), zero otherwise; while a tiled MatMul runs, its output's leaf is the hash of its partial sum
  (zero before its first tile). Constants stay zero: a step reads them from the program.

A step is an op, or a tile of a MatMul (:mod:`oracle.profile.tiles`). :class:`Trace` runs the reference
interpreter (:func:`oracle.profile.reference.run_op`, the spec the verifier's kernels match; a tile is
``run_op`` on the slices, added with int64 wrap) and answers everything a party of the game needs: state
roots, Merkle proofs, the output tensor, the one-step proof. ``tamper`` builds the trace of a lying
operator (one op's output altered, every later step computed from it), ``tile_tamper`` one that lies in
a partial sum (the state after one tile altered): what a dishonest node would consistently defend.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from eth_utils.crypto import keccak

from oracle.profile.codec import IntArray, decode_tensor, encode_tensor, numel, width_range
from oracle.profile.opcodes import Opcode
from oracle.profile.program import Op, Program
from oracle.profile.reference import run_op
from oracle.profile.tiles import TX_GAS_CAP, Tile, depth, packed, tiles_of
from oracle.profile.tiles import plan as tile_plan

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


def _chunk_levels(data: bytes) -> list[list[bytes]]:
    level = [keccak(data[i:i + CHUNK_BYTES]) for i in range(0, len(data), CHUNK_BYTES)]
    levels = [level]
    while len(level) > 1:
        padded = level + [ZERO] if len(level) % 2 else level
        level = [keccak(padded[i] + padded[i + 1]) for i in range(0, len(padded), 2)]
        levels.append(level)
    return levels


def chunk_range(data: bytes, start: int, end: int) -> tuple[int, bytes, list[bytes]]:
    """Bytes ``[start, end)`` of an encoded tensor as ``StateMerkle.rangeRoot`` takes them: the index of
    the first chunk holding them, those whole chunks, and the range proof (per level, the left neighbour
    if the range starts at an odd index, then the right one if it ends at an even index that is not the
    level's last)."""
    first, last = start // CHUNK_BYTES, (max(end, start + 1) - 1) // CHUNK_BYTES
    cover = data[first * CHUNK_BYTES:(last + 1) * CHUNK_BYTES]
    siblings: list[bytes] = []
    for level in _chunk_levels(data)[:-1]:
        if first & 1:
            siblings.append(level[first - 1])
        if not last & 1 and last + 1 < len(level):
            siblings.append(level[last + 1])
        first, last = first >> 1, last >> 1
    return start // CHUNK_BYTES, cover, siblings


def range_root(cover: bytes, first: int, length: int, siblings: Sequence[bytes]) -> bytes:
    """``StateMerkle.rangeRoot``: the hash of a ``length``-byte tensor from chunks ``first...`` and a range proof."""
    size = (length + CHUNK_BYTES - 1) // CHUNK_BYTES
    level = [keccak(cover[i:i + CHUNK_BYTES]) for i in range(0, len(cover), CHUNK_BYTES)]
    last = first + len(level) - 1
    it = iter(siblings)
    while size > 1:
        left = next(it) if first & 1 else ZERO
        right = next(it) if not last & 1 and last + 1 < size else ZERO
        full = ([left] if first & 1 else []) + level + ([right] if not last & 1 else [])
        level = [keccak(full[i] + full[i + 1]) for i in range(0, len(full), 2)]
        first, last, size = first >> 1, last >> 1, (size + 1) >> 1
    return level[0]


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
    """Arguments of ``DisputeGame.step``: per op input its bytes at 8 a element (a tile: the chunks holding
    its slice; a constant: empty), state proof and range proof; the output leaf and its state proof; for a
    tile, the chunks of the partial sum it adds to (``out_chunks``) and their range proof (``ranges[2]``);
    the program's tile plan, packed (checked against the one fixed when the game opened)."""

    operands: list[bytes]
    proofs: list[list[bytes]]
    out_leaf: bytes
    out_proof: list[bytes]
    out_chunks: bytes = b""
    ranges: list[list[bytes]] = field(default_factory=list)
    plan: list[int] = field(default_factory=list)

    def as_tuple(self) -> tuple[Any, ...]:
        return (self.operands, self.proofs, self.out_leaf, self.out_proof, self.out_chunks, self.ranges, self.plan)


TileTamper = Callable[[int, IntArray], IntArray]


@dataclass
class Trace:
    """Every state of one execution of ``program`` on ``x`` (optionally tampered: see module doc), its
    MatMuls split by ``plan`` (default: :func:`oracle.profile.tiles.plan` for the EIP-7825 cap)."""

    program: Program
    x: IntArray
    tamper: Tamper | None = None
    tile_tamper: TileTamper | None = None
    plan: list[tuple[int, int]] | None = None
    values: dict[int, IntArray] = field(init=False)
    steps: list[tuple[int, Tile | None]] = field(init=False)  # step -> (op index, its tile or None)

    def __post_init__(self) -> None:
        p = self.program
        if self.plan is None:
            self.plan = tile_plan(p, TX_GAS_CAP)
        env: dict[int, IntArray] = {c.tensor_id: c.values for c in p.constants}
        env[p.input_id] = np.asarray(self.x, dtype=np.int64).reshape(p.input_shape)
        self.steps = []
        self._partial: dict[int, IntArray] = {}  # tile step -> the partial sum after it
        events: list[tuple[int, int, IntArray]] = [(0, p.input_id, env[p.input_id])]  # (state, tensor, value)
        for i, op in enumerate(p.ops):
            tiles = tiles_of(p, i, self.plan[i])
            if tiles == [None]:
                out = run_op(op.opcode, [env[t] for t in op.inputs], op.attrs, p.shapes[op.output])
            else:
                out = self._run_tiles(op, p.shapes[op.output], tiles, env)
            if self.tamper is not None:
                out = np.asarray(self.tamper(i, out), dtype=np.int64).reshape(p.shapes[op.output])
            self.steps.extend((i, tile) for tile in tiles)
            if tiles != [None]:
                self._partial[len(self.steps) - 1] = out
            env[op.output] = out
            events.append((len(self.steps), op.output, out))
        for s, out in self._partial.items():
            events.append((s + 1, p.ops[self.steps[s][0]].output, out))
        self.values = env
        self._events = sorted(((s, t, tensor_hash(tensor_bytes(v))) for s, t, v in events), key=lambda e: e[0])
        self.depth = depth(len(p.shapes))
        self._roots: dict[int, bytes] = {}

    def _run_tiles(self, op: Op, shape: tuple[int, ...], tiles: list[Tile | None],
                   env: dict[int, IntArray]) -> IntArray:
        acc = np.zeros(shape, dtype=np.int64)
        for j, tile in enumerate(tiles):
            assert tile is not None
            rows = (tile.r1 - tile.r0, *shape[1:])
            if op.opcode is Opcode.MATMUL:
                a, b = (env[t] for t in op.inputs)
                prod = run_op(op.opcode, [a[tile.r0:tile.r1, tile.k0:tile.k1], b[tile.k0:tile.k1]], (), rows)
            else:  # an elementwise row block: inputs of the output's shape sliced, broadcast constants whole
                ins = [env[t][tile.r0:tile.r1] if env[t].shape == shape else env[t] for t in op.inputs]
                prod = run_op(op.opcode, ins, op.attrs, rows)
            acc = acc.copy()
            with np.errstate(over="ignore"):
                acc[tile.r0:tile.r1] += prod
            s = len(self.steps) + j
            if self.tile_tamper is not None:
                acc = np.asarray(self.tile_tamper(s, acc), dtype=np.int64).reshape(shape)
            self._partial[s] = acc
        return acc

    @classmethod
    def from_input_bytes(cls, program: Program, data: bytes, tamper: Tamper | None = None,
                         tile_tamper: TileTamper | None = None) -> Trace:
        return cls(program, decode_tensor(data, program.input_shape, program.input_width), tamper, tile_tamper)

    @property
    def num_steps(self) -> int:
        """Steps the game bisects over (states ``0 .. num_steps``)."""
        return len(self.steps)

    @property
    def num_ops(self) -> int:
        """The number of steps (the game's name from before tiles: an op or a tile each)."""
        return len(self.steps)

    def leaves(self, k: int) -> list[bytes]:
        """Leaves of the state after ``k`` steps."""
        out = [ZERO] * (1 << self.depth)
        for s, t, h in self._events:
            if s > k:
                break
            out[t] = h
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
        """The one-step proof of step ``lo`` (an op or a MatMul tile) against this trace's state ``lo``."""
        p = self.program
        i, tile = self.steps[lo]
        op = p.ops[i]
        consts = p.constant_map()
        leaves = self.leaves(lo)
        assert self.plan is not None
        sp = StepProof([], [], leaves[op.output], self.proof(lo, op.output), plan=packed(p, self.plan))
        out_shape = p.shapes[op.output]
        if tile is None:
            slices = [(t, 0, numel(p.shapes[t])) for t in op.inputs]
        elif tile.k1 == 0:
            n = numel(out_shape) // out_shape[0]  # elements of an output row
            slices = [(t, tile.r0 * n, (tile.r1 - tile.r0) * n) if tuple(p.shapes[t]) == tuple(out_shape)
                      else (t, 0, numel(p.shapes[t])) for t in op.inputs]
        else:
            k, n = p.shapes[op.inputs[0]][1], p.shapes[op.inputs[1]][1]
            slices = [(op.inputs[0], tile.r0 * k + tile.k0, (tile.r1 - tile.r0) * (tile.k1 - tile.k0)),
                      (op.inputs[1], tile.k0 * n, (tile.k1 - tile.k0) * n)]
        for t, start, count in slices:
            if t in consts:
                sp.operands.append(b"")
                sp.proofs.append([])
                sp.ranges.append([])
                continue
            _, cover, siblings = chunk_range(tensor_bytes(self.values[t]), start * 8, (start + count) * 8)
            sp.operands.append(cover)
            sp.proofs.append(self.proof(lo, t))
            sp.ranges.append(siblings)
        if tile is not None:
            before = self._partial[lo - 1] if lo > 0 and self.steps[lo - 1][0] == i else None
            rows = np.zeros(p.shapes[op.output], dtype=np.int64) if before is None else before
            _, sp.out_chunks, siblings = chunk_range(tensor_bytes(rows), tile.r0 * n * 8, tile.r1 * n * 8)
            sp.ranges.append(siblings)
        return sp


def perturb_at(op_index: int, delta: int = 1 << 20) -> Tamper:
    """A lie: op ``op_index``'s first output element plus ``delta`` (later ops computed from it)."""

    def tamper(i: int, out: IntArray) -> IntArray:
        if i != op_index:
            return out
        lied = np.array(out, dtype=np.int64, copy=True).reshape(-1)
        lied[0] += delta
        return lied.reshape(out.shape)

    return tamper


def perturb_partial(step: int, index: int, delta: int = 1 << 20) -> TileTamper:
    """A lie in a partial sum: element ``index`` (row-major) of the state after tile step ``step`` plus
    ``delta`` (later tiles add to it, later ops are computed from it)."""

    def tamper(s: int, partial: IntArray) -> IntArray:
        if s != step:
            return partial
        lied = np.array(partial, dtype=np.int64, copy=True).reshape(-1)
        lied[index] += delta
        return lied.reshape(partial.shape)

    return tamper

