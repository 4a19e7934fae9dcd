"""The dispute game's tile plan (docs/protocol.md §6, "Tiles"): computed here, verified on-chain by
``contracts/dispute/StepGasBound.sol`` (``checkPlan``, through ``DisputeGame.fixPlan``).

A game step is one op, or one tile of a MatMul ``[m, k] x [k, n]``: rows ``[r0, r0 + rb)`` by K block
``[k0, k0 + kb)``, whose product is added (int64, wrapping) to those rows of the op's partial-sum output.
Per MatMul the plan takes the largest tile whose step bound (the same ``GasBound`` replay and prices as
the registry's whole-program bound) fits the cap: all of K and as many rows as fit, else one row and as
much of K as fits, so every operand slice is contiguous. The contract accepts only this plan (it checks that
each entry fits and one more row or K element would not), and tests keep the bounds of both equal.
"""

from __future__ import annotations

from dataclasses import dataclass

from oracle.profile import gas_bound
from oracle.profile.codec import numel
from oracle.profile.gas_bound import DECODE_FEATURES, MAX_CHUNK, PRICES, execution_features, matmul_gas, scratch_words
from oracle.profile.opcodes import Opcode
from oracle.profile.program import Op, Program, encode

TX_GAS_CAP = gas_bound.DEFAULT_TX_GAS_CAP  # EIP-7825

STEP_FIXED_GAS = 150_000
STEP_GAS_PER_ELEMENT = 250
STEP_GAS_PER_PROOF_LEVEL = 3_000
STEP_GAS_PER_CONST_WORD = 30
PLAN_GAS_PER_ENTRY = 1_400
ROW_GAS_PER_ELEMENT = 400
ROW_GAS_PER_ROW = 1_000
ROW_GAS_FIXED = 20_000
ROW_GAS_PER_CONST = 100
CHUNK_BYTES = 2048
CHUNK_ELEMENTS = CHUNK_BYTES // 8
PER_UNPACK_ELEMENT = PRICES["PER_UNPACK_ELEMENT"]


def depth(num_tensors: int) -> int:
    """Depth of the state tree (``StateMerkle.depth``)."""
    d = 1
    while (1 << d) < num_tensors:
        d += 1
    return d


def _levels(num_chunks: int) -> int:
    b = 0
    while (1 << b) < num_chunks:
        b += 1
    return b


@dataclass(frozen=True)
class Tile:
    """One step's share of a MatMul: rows ``[r0, r1)``, K ``[k0, k1)``."""

    r0: int
    r1: int
    k0: int
    k1: int


@dataclass(frozen=True)
class _Ctx:
    cap: int
    base: int
    frame_words: int
    depth: int
    bits: list[int]


def _step_gas(c: _Ctx, op_gas: int, elements: int, const_words: int, levels: int, scratch: int) -> int:
    gas = (c.base + 40 * (1_024 + elements * 8 + levels * 32) + (op_gas * 64 + 62) // 63
           + elements * STEP_GAS_PER_ELEMENT + const_words * STEP_GAS_PER_CONST_WORD
           + levels * STEP_GAS_PER_PROOF_LEVEL)
    words = c.frame_words + 2 * const_words + 3 * elements
    scratch += const_words + 3 * elements + 1_000
    return gas + 3 * words + words * words // 512 + 3 * scratch + scratch * scratch // 512


def _tile_gas(c: _Ctx, p: Program, op: Op, rb: int, kb: int) -> int:
    a, b = op.inputs
    consts = p.constant_map()
    n = p.shapes[b][1]
    wb = consts[b].width if b in consts else 8
    t = [3 * rb * n + 2 * CHUNK_ELEMENTS, 3 * c.depth + 2 * _chunk_levels(p, op.output), 0, 0]
    for x, count, unpacked in ((a, rb * kb, True), (b, kb * n, False)):
        if x in consts:
            t[2] += (count * consts[x].width + 31) // 32 + 1
            continue
        t[0] += count + 2 * CHUNK_ELEMENTS
        t[1] += 2 * _chunk_levels(p, x)
        if unpacked:
            t[3] += count
    op_gas = matmul_gas(rb, kb, n, wb, c.bits[a]) + t[3] * PER_UNPACK_ELEMENT
    return _step_gas(c, op_gas, t[0], t[2], t[1], scratch_words(n, wb) + rb * kb)


def tileable_matmul(p: Program, op: Op) -> bool:
    """A 2-D MatMul (``[M, K] x [K, N]``) is split in tiles; a batched one (rank 3) is one step
    (``StepGasBound._tileableMatMul``)."""
    return op.opcode is Opcode.MATMUL and len(p.shapes[op.inputs[0]]) == 2 and len(p.shapes[op.inputs[1]]) == 2


def row_tileable(p: Program, op: Op) -> bool:
    """An elementwise op (Add ... Clip) whose every input has its output's shape (sliced by rows) or is a
    constant broadcasting along rows (taken whole): split in row blocks (``StepGasBound._rowTileable``)."""
    out = p.shapes[op.output]
    if not Opcode.ADD <= op.opcode <= Opcode.CLIP or not out:
        return False
    consts = p.constant_map()
    for t in op.inputs:
        s = p.shapes[t]
        if tuple(s) == tuple(out):
            continue
        if t not in consts or (len(s) >= len(out) and s[0] != 1):
            return False
    return True


def _row_gas(c: _Ctx, p: Program, op: Op, rb: int) -> int:
    out = p.shapes[op.output]
    consts = p.constant_map()
    els = rb * (numel(out) // out[0])
    t = [3 * els + 2 * CHUNK_ELEMENTS, 3 * c.depth + 2 * _chunk_levels(p, op.output), 0, 0]
    const_els = 0
    for x in op.inputs:
        if tuple(p.shapes[x]) == tuple(out):
            if x in consts:
                t[2] += (els * consts[x].width + 31) // 32 + 1
            else:
                t[0] += els + 2 * CHUNK_ELEMENTS
                t[1] += 2 * _chunk_levels(p, x)
                t[3] += els
        else:
            const_els += numel(p.shapes[x])
            t[2] += (numel(p.shapes[x]) * consts[x].width + 31) // 32 + 1
    op_gas = (els * ROW_GAS_PER_ELEMENT + rb * ROW_GAS_PER_ROW + ROW_GAS_FIXED + const_els * ROW_GAS_PER_CONST
              + t[3] * PER_UNPACK_ELEMENT)
    return _step_gas(c, op_gas, t[0], t[2], t[1], 0)


def _row_tile(c: _Ctx, p: Program, op: Op) -> int:
    m = p.shapes[op.output][0]
    if _row_gas(c, p, op, m) <= c.cap:
        return m
    lo, hi = 1, m
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _row_gas(c, p, op, mid) <= c.cap:
            lo = mid
        else:
            hi = mid
    return lo


def _chunk_levels(p: Program, t: int) -> int:
    return _levels((numel(p.shapes[t]) * 8 + CHUNK_BYTES - 1) // CHUNK_BYTES)


def _largest(c: _Ctx, p: Program, op: Op, limit: int, k: int, rows: bool) -> int:
    lo, hi = 0, limit
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _tile_gas(c, p, op, mid if rows else 1, k if rows else mid) <= c.cap:
            lo = mid
        else:
            hi = mid
    return lo


def _ctx(program: Program, cap: int, program_length: int | None = None) -> _Ctx:
    length = len(encode(program)) if program_length is None else program_length
    n_chunks = (length + MAX_CHUNK - 1) // MAX_CHUNK
    bits: list[int] = []
    features, _ = execution_features(program, length, n_chunks, bits_out=bits)
    # A step decodes the program but not an input.
    b0 = sum(PRICES[name] * features[name] for name in DECODE_FEATURES if name != "PER_INPUT_ELEMENT")
    n_ops, n_t = len(program.ops), len(program.shapes)
    words = (length + 31) // 32 + 40 * n_t + 40 * n_ops + 2_000
    # A step checks the plan (calldata) against the hash fixed at open.
    return _Ctx(cap, 21_000 + STEP_FIXED_GAS + b0 + n_ops * PLAN_GAS_PER_ENTRY, words + n_ops, depth(n_t), bits)


def plan(program: Program, cap: int = TX_GAS_CAP, program_length: int | None = None) -> list[tuple[int, int]]:
    """Per op, ``(rb, kb)`` of its tiles for a MatMul, ``(rb, 0)`` for an elementwise op in row blocks,
    ``(0, 0)`` for an op that is one step: the plan ``StepGasBound.checkPlan`` accepts. A MatMul whose one-row,
    one-K tile does not fit gets ``(1, 1)`` (a row block: ``(1, 0)``): ``fixPlan`` refuses such a program."""
    c = _ctx(program, cap, program_length)
    out: list[tuple[int, int]] = []
    for op in program.ops:
        if not tileable_matmul(program, op):
            out.append((_row_tile(c, program, op), 0) if row_tileable(program, op) else (0, 0))
            continue
        rb, kb = program.shapes[op.inputs[0]]
        if _tile_gas(c, program, op, rb, kb) > cap:
            rb = _largest(c, program, op, rb, kb, True)
            if rb == 0:
                rb, kb = 1, _largest(c, program, op, kb, kb, False)
            kb = max(kb, 1)
        out.append((rb, kb))
    return out


def step_gas_bound(program: Program, op_index: int, cap: int = TX_GAS_CAP) -> int:
    """The bound the plan gave the tiles (or row blocks) of op ``op_index`` (a MatMul or a tiled elementwise op)."""
    c = _ctx(program, cap)
    op = program.ops[op_index]
    rb, kb = plan(program, cap)[op_index]
    if tileable_matmul(program, op):
        return _tile_gas(c, program, op, rb, kb)
    assert kb == 0 and rb > 0, "not a tiled op"
    return _row_gas(c, program, op, rb)


def tiles_of(program: Program, op_index: int, entry: tuple[int, int]) -> list[Tile | None]:
    """The steps of op ``op_index`` under plan ``entry``: its tiles, row blocks outer (``[None]``: one step;
    an elementwise op's row blocks have ``k0 == k1 == 0``)."""
    rb, kb = entry
    if rb == 0:
        return [None]
    if kb == 0:
        m = program.shapes[program.ops[op_index].output][0]
        return [Tile(r0, min(m, r0 + rb), 0, 0) for r0 in range(0, m, rb)]
    m, k = program.shapes[program.ops[op_index].inputs[0]]
    return [Tile(r0, min(m, r0 + rb), k0, min(k, k0 + kb)) for r0 in range(0, m, rb) for k0 in range(0, k, kb)]


def packed(program: Program, entries: list[tuple[int, int]]) -> list[int]:
    """The plan as ``DisputeGame.fixPlan`` takes it (``steps << 192 | rb << 96 | kb``; one step: ``1 << 192``)."""
    return [(len(tiles_of(program, i, e)) << 192) | (e[0] << 96) | e[1] for i, e in enumerate(entries)]
