"""Python mirror of the on-chain proof-gas bound (``IntegerVerifier.executionGasBound``).

The registry refuses an ``EXACT`` model whose fraud proof could exceed the per-transaction gas cap, so it
needs, at registration, an upper bound on the gas of ``executeStored`` that holds for **every** input of
the declared width. It is computed from the program alone (shapes, widths, op attributes, and the
divisors' magnitudes), never from a sample input:

- **Memory.** Every allocation the verifier makes depends on shapes only (the buffer pool recycles by
  length, the kernels' scratch by shape), so the bound replays the interpreter's allocations, pool
  included, and prices the exact high-water mark (3 gas a word plus words^2 / 512).
- **Compute.** Each kernel costs at most a per-element price times its element counts. The only
  data-dependent kernel cost is MatMul's: zero activations are skipped (so the bound assumes none is
  zero) and an activation of more than 16w bits (w = weight width) takes one lane level per 16w-bit limb,
  and lane flushes come sooner. So the bound carries a magnitude analysis: a bound on |value| (as a bit
  count) for every tensor, from the input width, constant widths and each op's rule (MatMul adds the bits
  and log2 K, Add one bit, Div by a constant subtracts log2 of its smallest |divisor|, Clip gives its
  bounds, ...), and charges each MatMul for the lane levels and flushes its operand's magnitude allows.

The prices were measured on anvil (prague) with worst-case inputs and carry a margin; the tests in
``tests/verifier/test_gas_bound.py`` check the bound against measured gas on extreme, random and
adversarial inputs. This module must stay identical to the Solidity (a test compares them).
"""

from __future__ import annotations

from dataclasses import dataclass

from oracle.profile.codec import numel
from oracle.profile.opcodes import Opcode
from oracle.profile.program import Program

#: Bytes per program chunk (``DataChunks.MAX_CHUNK``).
MAX_CHUNK = 24_575

# ---- Prices (gas). Mirrored in contracts/verifier/GasBound.sol; keep both in step. ----
PRICES: dict[str, int] = {
    "BASE": 5_000,
    "PER_CHUNK": 11_617,
    "PER_PROGRAM_WORD": 0,
    "PER_TENSOR": 200,
    "PER_DIM": 988,
    "PER_CONST": 4_142,
    "PER_CONST_ELEMENT_SCAN": 5,
    "PER_OP": 1_500,
    "PER_OP_INPUT": 9_736,
    "PER_ATTR": 414,
    "PER_POOL_PROBE": 173,
    "PER_INPUT_ELEMENT": 124,
    "PER_OUTPUT_ELEMENT": 165,
    "PER_UNPACK_ELEMENT": 40,
    "ALIAS_OP": 300,
    "PER_ADD_ELEMENT": 85,
    "PER_SUB_ELEMENT": 96,
    "PER_MUL_ELEMENT": 128,
    "PER_DIV_ELEMENT": 170,
    "PER_MAX_ELEMENT": 110,
    "PER_MIN_ELEMENT": 147,
    "PER_BINARY_ROW": 739,
    "PER_CLIP_ELEMENT": 186,
    "PER_TRANSPOSE_ELEMENT": 62,
    "PER_TRANSPOSE_ROW": 89,
    "PER_ARGMAX_IN_ELEMENT": 114,
    "PER_ARGMAX_OUT_ELEMENT": 130,
    "PER_GATHER_INDEX": 150,
    "PER_GATHER_ELEMENT": 60,
    "PER_TRANSPOSE_ND_ELEMENT": 60,
    "PER_TRANSPOSE_ND_ROW": 150,
    "MM_PER_ROW": 1_000,
    "MM_PER_ACTIVATION": 75,
    "MM_PER_PUSH": 550,
    "MM_PER_ENTRY_WORD_1": 203,
    "MM_PER_ENTRY_WORD_2": 204,
    "MM_PER_ENTRY_WORD_4": 307,
    "MM_PER_FLUSH": 500,
    "MM_PER_FLUSH_WORD_1": 2_562,
    "MM_PER_FLUSH_WORD_2": 2_627,
    "MM_PER_FLUSH_WORD_4": 1_401,
    "MM8_PER_ACTIVATION": 238,
    "MM8_PER_QUAD": 295,
    "MM8_PER_COLUMN_REM": 81,
    "MM8_PER_OUTPUT": 63,
    "MMW_PER_ACTIVATION": 60,
    "MMW_PER_MAC": 145,
    "MMW_PER_OUTPUT": 40,
}

#: Per-element magnitudes are tracked as bit counts b meaning |x| <= 2^b; int64 needs 63.
MAX_BITS = 63


def _clog2(v: int) -> int:
    """Smallest b >= 0 with v <= 2^b."""
    return max(0, (v - 1).bit_length()) if v > 0 else 0


def scratch_words(cols: int, width: int) -> int:
    """``MatMulKernels.scratchWords``."""
    if width == 8:
        return 0
    words = ((cols * width + 63) // 64) * 2
    levels = (63 + 16 * width - 1) // (16 * width)
    return levels * (0x260 // 32 + words * 4 + 16 * 3)


def memory_gas(words: int) -> int:
    return 3 * words + words * words // 512


@dataclass
class Bound:
    """The bound and its parts (gas)."""

    compute: int
    memory_words: int
    input_length: int
    output_length: int

    @property
    def total(self) -> int:
        return self.compute + memory_gas(self.memory_words)


def _const_bits(c: object) -> int:
    values = c.values.reshape(-1)  # type: ignore[attr-defined]
    return _clog2(int(max(abs(int(v)) for v in values)))


def _matmul_packed(f: dict[str, int], m: int, k: int, n: int, w: int, bits_a: int) -> None:
    limb_bits = 16 * w
    total_levels = (MAX_BITS + limb_bits - 1) // limb_bits
    levels = min(total_levels, bits_a // limb_bits + 1)
    limb_max = min((1 << limb_bits) - 1, 1 << bits_a)
    lim = (1 << (24 * w)) - 1
    mid_flushes = levels * ((k * limb_max) // (lim - limb_max + 1))
    words = 2 * ((n * w + 63) // 64)
    entries = k * levels
    f["MM_PER_ROW"] += m
    f["MM_PER_ACTIVATION"] += m * k
    f["MM_PER_PUSH"] += m * entries
    f[f"MM_PER_ENTRY_WORD_{w}"] += m * entries * words
    f["MM_PER_FLUSH"] += m * (levels + mid_flushes)
    f[f"MM_PER_FLUSH_WORD_{w}"] += m * (levels + mid_flushes) * words


def matmul_gas(m: int, k: int, n: int, w: int, bits_a: int) -> int:
    """``GasBound.matmulGas``: an ``[m, k] x [k, n]`` MatMul, weights packed at width ``w``, activations of
    at most ``bits_a`` bits (not unpacked)."""
    f: dict[str, int] = dict.fromkeys(PRICES, 0)
    _matmul_weights(f, m, k, n, w, bits_a)
    return sum(PRICES[name] * amount for name, amount in f.items())


def _matmul_weights(f: dict[str, int], m: int, k: int, n: int, w: int, bits_a: int) -> None:
    """The features of an ``[m, k] x [k, n]`` MatMul by weights packed at width ``w`` (``GasBound._matmul``)."""
    if w == 8:
        f["MM8_PER_ACTIVATION"] += m * k
        f["MM8_PER_QUAD"] += m * k * (n // 4)
        f["MM8_PER_COLUMN_REM"] += m * k * (n % 4)
        f["MM8_PER_OUTPUT"] += m * n
    else:
        _matmul_packed(f, m, k, n, w, bits_a)


#: The decoding part of the bound (``GasBound.opBounds`` [0]): what is priced before the first op.
DECODE_FEATURES = ("BASE", "PER_CHUNK", "PER_PROGRAM_WORD", "PER_TENSOR", "PER_DIM", "PER_CONST", "PER_OP",
                   "PER_OP_INPUT", "PER_ATTR", "PER_INPUT_ELEMENT")


def execution_features(program: Program, program_length: int, n_chunks: int | None = None,
                       bits_out: list[int] | None = None) -> tuple[dict[str, int], Bound]:
    """Upper bound on the gas ``executeStored`` spends on ``program`` (stored in
    ``ceil(program_length / MAX_CHUNK)`` chunks), for any input of its declared width. ``bits_out``, if
    given, receives every tensor's magnitude bound (``|x| <= 2**bits``)."""
    features: dict[str, int] = dict.fromkeys(PRICES, 0)
    shapes = program.shapes
    t_count = len(shapes)
    if n_chunks is None:
        n_chunks = (program_length + MAX_CHUNK - 1) // MAX_CHUNK
    consts = program.constant_map()
    f = features
    f["BASE"] += 1
    f["PER_CHUNK"] += n_chunks
    f["PER_PROGRAM_WORD"] += (program_length + 31) // 32
    f["PER_TENSOR"] += t_count
    f["PER_DIM"] += sum(len(s) for s in shapes)
    f["PER_CONST"] += len(consts)

    # ---- memory: the interpreter's allocations, in words (see IntegerVerifier / ProgramDecoder) ----
    mem = 4  # Solidity's scratch space and free pointer
    mem += 1 + n_chunks  # the chunk list copied to memory
    mem += 1 + (program_length + 31) // 32  # the program bytes
    mem += 8 + (1 + t_count) * 4 + sum(1 + len(s) for s in shapes)  # Program, shapes, state, constData/Width
    n_ops = len(program.ops)
    mem += 1 + 5 * n_ops  # the op array and its structs
    for op in program.ops:
        mem += 2 * (1 + len(op.inputs)) + 1 + len(op.attrs)
        f["PER_OP"] += 1
        f["PER_OP_INPUT"] += len(op.inputs)
        f["PER_ATTR"] += len(op.attrs)
    mem += 1 + 5 * t_count + 5 * len(consts)  # env, constant tensors
    count_in = numel(program.input_shape)
    mem += 1 + count_in + 4
    f["PER_INPUT_ELEMENT"] += count_in
    mem += 2 * (1 + t_count) + 2 + 1 + t_count  # liveness, pool

    # Magnitudes (bits) of every tensor.
    bits = [0] * t_count
    bits[program.input_id] = 8 * program.input_width - 1
    for c in consts.values():
        bits[c.tensor_id] = 8 * c.width - 1

    # Liveness, exactly as IntegerVerifier._liveness.
    root = list(range(t_count))
    last_use = [0] * t_count
    for i, op in enumerate(program.ops):
        for t in op.inputs:
            last_use[root[t]] = i + 1
        if op.opcode in (Opcode.RESHAPE, Opcode.FLATTEN, Opcode.IDENTITY, Opcode.CAST):
            root[op.output] = root[op.inputs[0]]
    last_use[root[program.output_id]] = -1
    packed = [t in consts for t in range(t_count)]  # a constant, or an alias of one
    for op in program.ops:
        if op.opcode in (Opcode.RESHAPE, Opcode.FLATTEN, Opcode.IDENTITY, Opcode.CAST):
            packed[op.output] = packed[op.inputs[0]]

    pool: list[int] = []  # lengths of free buffers, in pool order
    capacity = t_count

    def take(length: int) -> tuple[int, int]:
        """(probes, fresh words) of TensorKernels.take."""
        for idx, have in enumerate(pool):
            if have == length:
                pool[idx] = pool[-1]
                pool.pop()
                return idx + 1, 0
        return len(pool), 1 + length

    def give(length: int) -> None:
        if len(pool) < capacity:
            pool.append(length)

    def release(i: int, op_inputs: tuple[int, ...]) -> None:
        for t in op_inputs:
            r = root[t]
            if last_use[r] == i + 1:
                last_use[r] = 0
                if r not in consts:
                    give(numel(shapes[r]))

    for i, op in enumerate(program.ops):
        code = op.opcode
        ins = op.inputs
        mem += 1 + 5 * len(ins) + 4  # operand array with default structs, the output struct
        in_place = Opcode.ADD <= code <= Opcode.CLIP
        if in_place:
            release(i, ins)
        out_shape = shapes[op.output]
        out_n = numel(out_shape)
        ba = bits[ins[0]]
        if code in (Opcode.RESHAPE, Opcode.FLATTEN, Opcode.IDENTITY, Opcode.CAST, Opcode.TRANSPOSE):
            bits[op.output] = ba
        if code in (Opcode.RESHAPE, Opcode.FLATTEN, Opcode.IDENTITY, Opcode.CAST):
            f["ALIAS_OP"] += 1
            continue
        probes, fresh = take(out_n)
        f["PER_POOL_PROBE"] += probes
        mem += fresh
        if code is Opcode.MATMUL:
            a, b = ins
            k, n = shapes[b][-2:]
            m = numel(shapes[a]) // k  # every row of A, batched or not
            bb = bits[b]
            bits[op.output] = min(MAX_BITS, ba + bb + _clog2(k))
            if packed[a]:
                mem += 1 + m * k
                f["PER_UNPACK_ELEMENT"] += m * k
            rank3 = len(shapes[b]) == 3
            if packed[b] and rank3:  # a rank-3 constant B is unpacked for the word kernel
                mem += 1 + numel(shapes[b])
                f["PER_UNPACK_ELEMENT"] += numel(shapes[b])
            if packed[b] and not rank3:
                w = consts[root[b]].width
                probes, fresh = take(scratch_words(n, w))
                f["PER_POOL_PROBE"] += probes
                mem += fresh
                give(scratch_words(n, w))
                _matmul_weights(f, m, k, n, w, ba)
            else:
                f["MMW_PER_ACTIVATION"] += m * k
                f["MMW_PER_MAC"] += m * k * n
                f["MMW_PER_OUTPUT"] += m * n
        elif code <= Opcode.MIN:
            # A constant operand (a bias, a divisor) counts with its actual largest magnitude.
            ba, bb = (_const_bits(consts[root[t]]) if packed[t] else bits[t] for t in ins)
            mem += 16
            rows = out_n // out_shape[-1] if out_shape else 1
            f[f"PER_{code.name}_ELEMENT"] += out_n
            f["PER_BINARY_ROW"] += rows
            if code in (Opcode.ADD, Opcode.SUB):
                bits[op.output] = min(MAX_BITS, max(ba, bb) + 1)
            elif code is Opcode.MUL:
                bits[op.output] = min(MAX_BITS, ba + bb)
            elif code is Opcode.DIV and ins[1] not in consts:
                bits[op.output] = ba  # a computed divisor: |a / d| <= |a| (x / 0 = 0)
            elif code is Opcode.DIV:
                divisor = consts[root[ins[1]]]
                smallest = int(min(abs(int(v)) for v in divisor.values.reshape(-1)))
                f["PER_CONST_ELEMENT_SCAN"] += numel(shapes[ins[1]])
                bits[op.output] = max(0, ba - (smallest.bit_length() - 1))
            else:
                bits[op.output] = max(ba, bb)
        elif code is Opcode.GATHER:
            # Packed data (an embedding table) is read in place; packed indices are unpacked.
            idx_n = numel(shapes[ins[1]])
            if packed[ins[1]]:
                mem += 1 + idx_n
                f["PER_UNPACK_ELEMENT"] += idx_n
            f["PER_GATHER_INDEX"] += idx_n
            f["PER_GATHER_ELEMENT"] += out_n
            bits[op.output] = _const_bits(consts[root[ins[0]]]) if packed[ins[0]] else ba
        else:
            if packed[ins[0]]:
                mem += 1 + numel(shapes[ins[0]])
                f["PER_UNPACK_ELEMENT"] += numel(shapes[ins[0]])
            if code is Opcode.CLIP:
                f["PER_CLIP_ELEMENT"] += out_n
                bits[op.output] = _clog2(max(abs(op.attrs[0]), abs(op.attrs[1])))
            elif code is Opcode.TRANSPOSE:
                f["PER_TRANSPOSE_ELEMENT"] += out_n
                f["PER_TRANSPOSE_ROW"] += shapes[ins[0]][0]
            elif code is Opcode.TRANSPOSE_ND:
                f["PER_TRANSPOSE_ND_ELEMENT"] += out_n
                f["PER_TRANSPOSE_ND_ROW"] += out_n // (out_shape[-1] if out_shape else 1)
                bits[op.output] = ba
            else:  # the reduction kernel: ARGMAX, REDUCE_SUM, REDUCE_MAX
                f["PER_ARGMAX_IN_ELEMENT"] += numel(shapes[ins[0]])
                f["PER_ARGMAX_OUT_ELEMENT"] += out_n
                length = shapes[ins[0]][op.attrs[0]]
                if code is Opcode.ARGMAX:
                    bits[op.output] = _clog2(length - 1)
                else:
                    bits[op.output] = ba + _clog2(length) if code is Opcode.REDUCE_SUM else ba
        bits[op.output] = min(bits[op.output], MAX_BITS)
        if not in_place:
            release(i, ins)

    if bits_out is not None:
        bits_out[:] = bits
    count_out = numel(program.output_shape)
    if packed[program.output_id]:
        mem += 1 + count_out
        f["PER_UNPACK_ELEMENT"] += count_out
    out_len = count_out * program.output_width
    mem += 2 + (out_len + 31) // 32  # the output bytes and the spill word
    mem += 2 + (out_len + 31) // 32  # ABI encoding of the return value
    f["PER_OUTPUT_ELEMENT"] += count_out
    gas = sum(PRICES[name] * amount for name, amount in features.items())
    return features, Bound(gas, mem, count_in * program.input_width, out_len)


def execution_bound(program: Program, program_length: int, n_chunks: int | None = None) -> Bound:
    """Upper bound on the gas ``executeStored`` spends on ``program`` (``program_length`` bytes stored in
    ``n_chunks`` chunks, by default ``ceil(program_length / MAX_CHUNK)``), for any input of its width."""
    return execution_features(program, program_length, n_chunks)[1]


# ---- The oracle's side (InferenceOracle._proofGasBound / _checkProgram); keep in step. ----
PROOF_FIXED_GAS = 100_000
PROOF_GAS_PER_CHUNK = 2_400
PROOF_GAS_PER_IO_BYTE = 16
CALLBACK_FIXED_GAS = 20_000
CALLBACK_GAS_RESERVE = 5_000
DEFAULT_TX_GAS_CAP = 16_777_216  # EIP-7825


def proof_gas_bound(program: Program, program_length: int, n_chunks: int | None = None) -> int:
    """``proofGasBound`` the registry stores for ``program``: the gas limit a ``challenge`` of it needs at
    most, on any input, without callback (calldata at 16 gas a byte or the EIP-7623 floor of 40)."""
    if n_chunks is None:
        n_chunks = (program_length + MAX_CHUNK - 1) // MAX_CHUNK
    b = execution_bound(program, program_length, n_chunks)
    calldata = 4 + 3 * 32 + (b.input_length + 31) // 32 * 32
    standard = (21_000 + 16 * calldata + PROOF_FIXED_GAS + PROOF_GAS_PER_CHUNK * n_chunks
                + PROOF_GAS_PER_IO_BYTE * (b.input_length + b.output_length) + (b.total * 64 + 62) // 63)
    return max(standard, 21_000 + 40 * calldata)


def callback_gas_cap(program: Program, program_length: int, n_chunks: int | None = None, *,
                     tx_gas_cap: int = DEFAULT_TX_GAS_CAP, max_callback_gas: int = 1_000_000) -> int | None:
    """The largest callback gas a request for this model may ask for, or None if the registry refuses
    the model (its proof alone exceeds ``tx_gas_cap``). As stored: rounded up to 256 gas, at most
    ``max_callback_gas``."""
    proof = proof_gas_bound(program, program_length, n_chunks)
    if proof > tx_gas_cap:
        return None
    out_len = execution_bound(program, program_length, n_chunks).output_length
    overhead = CALLBACK_FIXED_GAS + CALLBACK_GAS_RESERVE + 2 * PROOF_GAS_PER_IO_BYTE * out_len + 256
    room = tx_gas_cap - proof
    cap = (room - overhead) * 63 // 64 if room > overhead else 0
    cap = min(cap, max_callback_gas)
    stored = 65_535 if cap >= 65_535 << 8 else (cap + 255) >> 8
    return min(stored << 8, max_callback_gas)
