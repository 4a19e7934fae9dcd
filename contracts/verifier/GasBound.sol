// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Op, Program} from "./ProgramDecoder.sol";
import {TensorKernels} from "./TensorKernels.sol";
import {MatMulKernels} from "./MatMulKernels.sol";

/// @title GasBound
/// @notice An upper bound on the gas `IntegerVerifier.executeStored` spends on a program, valid for every
/// input of the program's declared width, computed from the program alone (shapes, widths, attributes,
/// divisor magnitudes), never from a sample input. Mirrored by `oracle.profile.gas_bound` (a test keeps
/// the two identical); the prices were measured on anvil with worst-case inputs, with a margin.
/// @dev Two parts:
///  - memory: every allocation of the interpreter depends on shapes only, so this replays them (the
///    buffer pool included) and prices the exact high-water mark (3 gas a word + words^2 / 512);
///  - compute: per-element prices times element counts. MatMul is the only kernel whose cost depends on
///    the data (zeros are skipped; an activation wider than 16w bits takes one lane level per 16w-bit
///    limb, w = weight width, and lane flushes come sooner), so a magnitude analysis bounds |x| of every
///    tensor as a bit count and each MatMul is charged for the levels and flushes its operand allows.
library GasBound {
    uint256 internal constant MAX_BITS = 63;

    // ---- Prices (gas); see oracle/profile/gas_bound.py ----
    uint256 internal constant BASE = 5_000;
    uint256 internal constant PER_CHUNK = 11_617;
    uint256 internal constant PER_PROGRAM_WORD = 0;
    uint256 internal constant PER_TENSOR = 200;
    uint256 internal constant PER_DIM = 988;
    uint256 internal constant PER_CONST = 4_142;
    uint256 internal constant PER_CONST_ELEMENT_SCAN = 5;
    uint256 internal constant PER_OP = 1_500;
    uint256 internal constant PER_OP_INPUT = 9_736;
    uint256 internal constant PER_ATTR = 414;
    uint256 internal constant PER_POOL_PROBE = 173;
    uint256 internal constant PER_INPUT_ELEMENT = 124;
    uint256 internal constant PER_OUTPUT_ELEMENT = 165;
    uint256 internal constant PER_UNPACK_ELEMENT = 40;
    uint256 internal constant ALIAS_OP = 300;
    uint256 internal constant PER_ADD_ELEMENT = 85;
    uint256 internal constant PER_SUB_ELEMENT = 96;
    uint256 internal constant PER_MUL_ELEMENT = 128;
    uint256 internal constant PER_DIV_ELEMENT = 170;
    uint256 internal constant PER_MAX_ELEMENT = 110;
    uint256 internal constant PER_MIN_ELEMENT = 147;
    uint256 internal constant PER_BINARY_ROW = 739;
    uint256 internal constant PER_CLIP_ELEMENT = 186;
    uint256 internal constant PER_TRANSPOSE_ELEMENT = 62;
    uint256 internal constant PER_TRANSPOSE_ROW = 89;
    uint256 internal constant PER_ARGMAX_IN_ELEMENT = 114;
    uint256 internal constant PER_ARGMAX_OUT_ELEMENT = 130;
    uint256 internal constant PER_GATHER_INDEX = 150;
    uint256 internal constant PER_GATHER_ELEMENT = 60;
    uint256 internal constant PER_TRANSPOSE_ND_ELEMENT = 60;
    uint256 internal constant PER_TRANSPOSE_ND_ROW = 150;
    uint256 internal constant MM_PER_ROW = 1_000;
    uint256 internal constant MM_PER_ACTIVATION = 75;
    uint256 internal constant MM_PER_PUSH = 550;
    uint256 internal constant MM_PER_ENTRY_WORD_1 = 203;
    uint256 internal constant MM_PER_ENTRY_WORD_2 = 204;
    uint256 internal constant MM_PER_ENTRY_WORD_4 = 307;
    uint256 internal constant MM_PER_FLUSH = 500;
    uint256 internal constant MM_PER_FLUSH_WORD_1 = 2_562;
    uint256 internal constant MM_PER_FLUSH_WORD_2 = 2_627;
    uint256 internal constant MM_PER_FLUSH_WORD_4 = 1_401;
    uint256 internal constant MM8_PER_ACTIVATION = 238;
    uint256 internal constant MM8_PER_QUAD = 295;
    uint256 internal constant MM8_PER_COLUMN_REM = 81;
    uint256 internal constant MM8_PER_OUTPUT = 63;
    uint256 internal constant MMW_PER_ACTIVATION = 60;
    uint256 internal constant MMW_PER_MAC = 145;
    uint256 internal constant MMW_PER_OUTPUT = 40;

    /// @dev Working state of the replay (kept in memory: far more values than stack slots).
    struct State {
        uint256 gas;
        uint256 mem; // words allocated
        uint256[] bits; // by tensor: |x| <= 2^bits
        uint256[] root; // by tensor: the tensor owning its buffer (alias ops share)
        uint256[] lastUse; // by root: 1-based index of the last op reading it; max = never released
        bool[] packed; // by tensor: a constant or an alias of one
        uint256[] pool; // lengths of the free buffers, in pool order
        uint256 poolCount;
    }

    /// @notice Upper bound on the gas of `executeStored` for `p` (decoded from `programLength` bytes in
    /// `nChunks` chunks) on any input of its width.
    function executionBound(Program memory p, uint256 programLength, uint256 nChunks)
        internal
        pure
        returns (uint256)
    {
        (State memory s,) = _replay(p, programLength, nChunks, new bool[](0));
        return _total(s, p);
    }

    /// @dev Replays the program (`executionBound` without its output part); `b` as `opBounds` returns it
    /// when `tiled` has an entry per op (empty: not computed).
    function _replay(Program memory p, uint256 programLength, uint256 nChunks, bool[] memory tiled)
        private
        pure
        returns (State memory s, uint256[4] memory b)
    {
        uint256 nT = p.shapes.length;
        s.bits = new uint256[](nT);
        s.root = new uint256[](nT);
        s.lastUse = new uint256[](nT);
        s.packed = new bool[](nT);
        s.pool = new uint256[](nT);
        _fixed(s, p, programLength, nChunks);
        b[0] = s.gas;
        _liveness(s, p);
        uint256 numOps = p.ops.length;
        bool perOp = tiled.length == numOps;
        for (uint256 i; i < numOps; ++i) {
            uint256 before = s.gas;
            _op(s, p, i);
            if (perOp && !tiled[i]) _stepMax(p, i, s.gas - before, b);
        }
    }

    /// @dev The output part, and the bound from the replayed state.
    function _total(State memory s, Program memory p) private pure returns (uint256) {
        uint256 countOut = TensorKernels.numel(p.shapes[p.outputId]);
        if (s.packed[p.outputId]) {
            s.mem += 1 + countOut;
            s.gas += countOut * PER_UNPACK_ELEMENT;
        }
        uint256 outWords = (countOut * p.outputWidth + 31) / 32;
        s.mem += 2 * (2 + outWords); // the output bytes (and spill word), their ABI encoding
        s.gas += countOut * PER_OUTPUT_ELEMENT;
        return s.gas + 3 * s.mem + (s.mem * s.mem) / 512;
    }

    /// @notice The per-op parts of `executionBound`, for the dispute game's one-step proof (protocol §6 v2),
    /// which decodes the program like a whole run and then evaluates a single op on operands that arrive
    /// packed at 8 bytes an element (constants: packed as in the program). Returns, maximised over the
    /// ops not `tiled` (the game splits those in tiles and bounds each itself, a MatMul's with `matmulGas`): [0] the
    /// decoding part of the bound (same replay, prices and magnitude analysis), [1] one op's compute bound
    /// plus the unpacking of its non-constant operands, [2] its non-constant operand plus output elements
    /// (what a step hashes and passes as calldata), [3] the words of its constant operands (copied out of
    /// the program and passed to `runOp`); and `bits`, every tensor's magnitude bound (|x| <= 2^bits).
    function opBounds(Program memory p, uint256 programLength, uint256 nChunks, bool[] memory tiled)
        internal
        pure
        returns (uint256[4] memory b, uint256[] memory bits, uint256 total)
    {
        State memory s;
        (s, b) = _replay(p, programLength, nChunks, tiled);
        bits = s.bits;
        total = _total(s, p); // last: it adds the output's words to the replayed state
    }

    /// @dev Raises `b` [1..3] (see `opBounds`) to op `i`'s, whose compute bound is `gas`.
    function _stepMax(Program memory p, uint256 i, uint256 gas, uint256[4] memory b) private pure {
        (uint256 elements, uint256 constWords) = _stepOperands(p, i);
        gas += (elements - TensorKernels.numel(p.shapes[p.ops[i].output])) * PER_UNPACK_ELEMENT;
        if (gas > b[1]) b[1] = gas;
        if (elements > b[2]) b[2] = elements;
        if (constWords > b[3]) b[3] = constWords;
    }

    /// @notice Compute bound of an `[m, k] x [k, n]` MatMul whose activations have at most `ba` bits, its
    /// weights read packed at width `w` (1, 2, 4 or 8: the kernels of `_matmul`), activations not unpacked.
    function matmulGas(uint256 m, uint256 k, uint256 n, uint256 w, uint256 ba) internal pure returns (uint256) {
        if (w == 8) {
            return m
                * (k * (MM8_PER_ACTIVATION + (n / 4) * MM8_PER_QUAD + (n % 4) * MM8_PER_COLUMN_REM) + n * MM8_PER_OUTPUT);
        }
        return _laneKernel(m, k, n, w, ba);
    }

    /// @dev Non-constant operand plus output elements of op `i`, and the words of its constant operands.
    function _stepOperands(Program memory p, uint256 i) private pure returns (uint256 elements, uint256 constWords) {
        Op memory op = p.ops[i];
        elements = TensorKernels.numel(p.shapes[op.output]);
        for (uint256 j; j < op.inputs.length; ++j) {
            uint256 t = op.inputs[j];
            uint256 n = TensorKernels.numel(p.shapes[t]);
            if (p.constData[t] != 0) constWords += (n * p.constWidth[t] + 31) / 32 + 1;
            else elements += n;
        }
    }

    /// @dev Reading, decoding, the environment, the input and the bookkeeping arrays.
    function _fixed(State memory s, Program memory p, uint256 programLength, uint256 nChunks) private pure {
        uint256 nT = p.shapes.length;
        uint256 dims;
        uint256 nConsts;
        for (uint256 t; t < nT; ++t) {
            dims += p.shapes[t].length;
            s.root[t] = t;
            if (p.constData[t] != 0) {
                ++nConsts;
                s.packed[t] = true;
                s.bits[t] = 8 * p.constWidth[t] - 1;
            }
        }
        uint256 programWords = (programLength + 31) / 32;
        s.gas = BASE + nChunks * PER_CHUNK + programWords * PER_PROGRAM_WORD + nT * PER_TENSOR + dims * PER_DIM
            + nConsts * PER_CONST;
        uint256 numOps = p.ops.length;
        s.mem = 4 + (1 + nChunks) + (1 + programWords) + 8 + (1 + nT) * 4 + nT + dims + 1 + 5 * numOps;
        for (uint256 i; i < numOps; ++i) {
            Op memory op = p.ops[i];
            s.mem += 2 * (1 + op.inputs.length) + 1 + op.attrs.length;
            s.gas += PER_OP + op.inputs.length * PER_OP_INPUT + op.attrs.length * PER_ATTR;
        }
        s.mem += 1 + 5 * nT + 5 * nConsts;
        uint256 countIn = TensorKernels.numel(p.shapes[p.inputId]);
        s.mem += 5 + countIn;
        s.gas += countIn * PER_INPUT_ELEMENT;
        s.mem += 2 * (1 + nT) + 3 + nT; // liveness arrays, the pool
        s.bits[p.inputId] = 8 * p.inputWidth - 1;
    }

    /// @dev `IntegerVerifier._liveness`, and which tensors are (aliases of) packed constants.
    function _liveness(State memory s, Program memory p) private pure {
        uint256 numOps = p.ops.length;
        for (uint256 i; i < numOps; ++i) {
            Op memory op = p.ops[i];
            for (uint256 j; j < op.inputs.length; ++j) {
                s.lastUse[s.root[op.inputs[j]]] = i + 1;
            }
            if (TensorKernels.isAlias(op.opcode)) {
                s.root[op.output] = s.root[op.inputs[0]];
                s.packed[op.output] = s.packed[op.inputs[0]];
            }
        }
        s.lastUse[s.root[p.outputId]] = type(uint256).max;
    }

    /// @dev `TensorKernels.take`: charges the probes, and the fresh words when no free buffer fits.
    function _take(State memory s, uint256 len) private pure {
        uint256 n = s.poolCount;
        for (uint256 i; i < n; ++i) {
            if (s.pool[i] == len) {
                s.pool[i] = s.pool[n - 1];
                s.poolCount = n - 1;
                s.gas += (i + 1) * PER_POOL_PROBE;
                return;
            }
        }
        s.gas += n * PER_POOL_PROBE;
        s.mem += 1 + len;
    }

    function _give(State memory s, uint256 len) private pure {
        if (s.poolCount < s.pool.length) s.pool[s.poolCount++] = len;
    }

    /// @dev `IntegerVerifier._release`.
    function _release(State memory s, Program memory p, Op memory op, uint256 i) private pure {
        for (uint256 j; j < op.inputs.length; ++j) {
            uint256 r = s.root[op.inputs[j]];
            if (s.lastUse[r] == i + 1) {
                s.lastUse[r] = 0;
                if (p.constData[r] == 0) _give(s, TensorKernels.numel(p.shapes[r]));
            }
        }
    }

    function _op(State memory s, Program memory p, uint256 i) private pure {
        Op memory op = p.ops[i];
        uint256 code = op.opcode;
        s.mem += 1 + 5 * op.inputs.length + 4; // operand array (default structs), the output struct
        bool inPlace = TensorKernels.isInPlace(code);
        if (inPlace) _release(s, p, op, i);
        uint256 a = op.inputs[0];
        if (TensorKernels.isAlias(code)) {
            s.bits[op.output] = s.bits[a];
            s.gas += ALIAS_OP;
            return;
        }
        uint256[] memory outShape = p.shapes[op.output];
        uint256 outN = TensorKernels.numel(outShape);
        _take(s, outN);
        uint256 bits;
        if (code == TensorKernels.OP_MATMUL) {
            bits = _matmul(s, p, op);
        } else if (code <= TensorKernels.OP_MIN) {
            bits = _binary(s, p, op, outShape, outN);
        } else if (code == TensorKernels.OP_GATHER) {
            // Packed data is read in place; packed indices are unpacked. An element of a row of data.
            uint256 idxN = TensorKernels.numel(p.shapes[op.inputs[1]]);
            if (s.packed[op.inputs[1]]) {
                s.mem += 1 + idxN;
                s.gas += idxN * PER_UNPACK_ELEMENT;
            }
            s.gas += idxN * PER_GATHER_INDEX + outN * PER_GATHER_ELEMENT;
            bits = _operandBits(s, p, a);
        } else {
            uint256 inN = TensorKernels.numel(p.shapes[a]);
            if (s.packed[a]) {
                s.mem += 1 + inN;
                s.gas += inN * PER_UNPACK_ELEMENT;
            }
            if (code == TensorKernels.OP_CLIP) {
                s.gas += outN * PER_CLIP_ELEMENT;
                bits = _clog2(_max(_abs(op.attrs[0]), _abs(op.attrs[1])));
            } else if (code == TensorKernels.OP_TRANSPOSE) {
                s.gas += outN * PER_TRANSPOSE_ELEMENT + p.shapes[a][0] * PER_TRANSPOSE_ROW;
                bits = s.bits[a];
            } else if (code == TensorKernels.OP_TRANSPOSE_ND) {
                uint256 last = outShape.length == 0 ? 1 : outShape[outShape.length - 1];
                s.gas += outN * PER_TRANSPOSE_ND_ELEMENT + (outN / last) * PER_TRANSPOSE_ND_ROW;
                bits = s.bits[a];
            } else {
                // The reduction kernel: ArgMax (an index along the axis), ReduceSum, ReduceMax.
                s.gas += inN * PER_ARGMAX_IN_ELEMENT + outN * PER_ARGMAX_OUT_ELEMENT;
                uint256 len = p.shapes[a][uint256(op.attrs[0])];
                bits = code == TensorKernels.OP_ARGMAX
                    ? _clog2(len - 1)
                    : code == TensorKernels.OP_REDUCE_SUM ? s.bits[a] + _clog2(len) : s.bits[a];
            }
        }
        s.bits[op.output] = bits > MAX_BITS ? MAX_BITS : bits;
        if (!inPlace) _release(s, p, op, i);
    }

    function _matmul(State memory s, Program memory p, Op memory op) private pure returns (uint256 bits) {
        (uint256 a, uint256 b) = (op.inputs[0], op.inputs[1]);
        uint256[] memory bShape = p.shapes[b];
        uint256 rb = bShape.length;
        (uint256 k, uint256 n) = (bShape[rb - 2], bShape[rb - 1]);
        // All rows of A (batched or not) against K x N.
        uint256 m = TensorKernels.numel(p.shapes[a]) / k;
        uint256 ba = s.bits[a];
        bits = ba + s.bits[b] + _clog2(k);
        if (s.packed[a]) {
            s.mem += 1 + m * k;
            s.gas += m * k * PER_UNPACK_ELEMENT;
        }
        if (s.packed[b] && rb == 3) {
            // A rank-3 constant B is unpacked and takes the word kernel.
            uint256 bN = TensorKernels.numel(bShape);
            s.mem += 1 + bN;
            s.gas += bN * PER_UNPACK_ELEMENT;
        }
        if (!s.packed[b] || rb == 3) {
            s.gas += m * (k * (MMW_PER_ACTIVATION + n * MMW_PER_MAC) + n * MMW_PER_OUTPUT);
            return bits;
        }
        uint256 w = p.constWidth[s.root[b]];
        uint256 scratch = MatMulKernels.scratchWords(n, w);
        _take(s, scratch);
        _give(s, scratch);
        s.gas += matmulGas(m, k, n, w, ba);
    }

    /// @dev The lane kernel (weights of width 1, 2, 4) with activations of at most `ba` bits.
    function _laneKernel(uint256 m, uint256 k, uint256 n, uint256 w, uint256 ba) private pure returns (uint256) {
        uint256 limbBits = 16 * w;
        uint256 levels = ba / limbBits + 1;
        uint256 totalLevels = (MAX_BITS + limbBits - 1) / limbBits;
        if (levels > totalLevels) levels = totalLevels;
        uint256 limbMax = (1 << limbBits) - 1;
        if (ba < limbBits && (1 << ba) < limbMax) limbMax = 1 << ba;
        // Flushes per row and level: the queued sum passes the lane limit 2^(24w) - 1 after at least
        // (limit - limbMax + 1) of it, plus the end of the row.
        uint256 flushes = levels + levels * ((k * limbMax) / ((1 << (24 * w)) - limbMax));
        uint256 words = 2 * ((n * w + 63) / 64);
        (uint256 entryWord, uint256 flushWord) = w == 1
            ? (MM_PER_ENTRY_WORD_1, MM_PER_FLUSH_WORD_1)
            : w == 2 ? (MM_PER_ENTRY_WORD_2, MM_PER_FLUSH_WORD_2) : (MM_PER_ENTRY_WORD_4, MM_PER_FLUSH_WORD_4);
        return m
            * (MM_PER_ROW + k * MM_PER_ACTIVATION + k * levels * (MM_PER_PUSH + words * entryWord)
                + flushes * (MM_PER_FLUSH + words * flushWord));
    }

    function _binary(State memory s, Program memory p, Op memory op, uint256[] memory outShape, uint256 outN)
        private
        pure
        returns (uint256 bits)
    {
        uint256 code = op.opcode;
        (uint256 ba, uint256 bb) = (_operandBits(s, p, op.inputs[0]), _operandBits(s, p, op.inputs[1]));
        s.mem += 16;
        uint256 rows = outShape.length == 0 ? 1 : outN / outShape[outShape.length - 1];
        uint256 perElement = code == TensorKernels.OP_ADD
            ? PER_ADD_ELEMENT
            : code == TensorKernels.OP_SUB
                ? PER_SUB_ELEMENT
                : code == TensorKernels.OP_MUL
                    ? PER_MUL_ELEMENT
                    : code == TensorKernels.OP_DIV ? PER_DIV_ELEMENT : code == TensorKernels.OP_MAX ? PER_MAX_ELEMENT : PER_MIN_ELEMENT;
        s.gas += outN * perElement + rows * PER_BINARY_ROW;
        if (code == TensorKernels.OP_ADD || code == TensorKernels.OP_SUB) return _max(ba, bb) + 1;
        if (code == TensorKernels.OP_MUL) return ba + bb;
        if (code == TensorKernels.OP_DIV) {
            // A computed divisor: |a / d| <= |a| (x / 0 = 0). A constant one is non-zero (checked when
            // decoded): |a / d| <= |a| / min|d|.
            uint256 d = op.inputs[1];
            if (p.constData[d] == 0) return ba;
            uint256 count = TensorKernels.numel(p.shapes[d]);
            s.gas += count * PER_CONST_ELEMENT_SCAN;
            uint256 smallest = _smallestMagnitude(p.constData[d], p.constWidth[d], count);
            uint256 shift = _log2floor(smallest);
            return ba > shift ? ba - shift : 0;
        }
        return _max(ba, bb); // Max, Min
    }

    /// @dev Magnitude of an elementwise operand: a constant (a bias, a divisor) counts with its actual
    /// largest |x| (scanned here, at registration), anything else with the analysis so far.
    function _operandBits(State memory s, Program memory p, uint256 t) private pure returns (uint256) {
        if (!s.packed[t]) return s.bits[t];
        uint256 r = s.root[t];
        return _clog2(_largestMagnitude(p.constData[r], p.constWidth[r], TensorKernels.numel(p.shapes[r])));
    }

    /// @dev max |x| over `count` packed elements of `w` bytes at memory address `src`.
    function _largestMagnitude(uint256 src, uint256 w, uint256 count) private pure returns (uint256 largest) {
        assembly ("memory-safe") {
            let sh := sub(256, shl(3, w))
            for { let end := add(src, mul(count, w)) } lt(src, end) { src := add(src, w) } {
                let x := sar(sh, mload(src))
                let m := sar(255, x)
                x := sub(xor(x, m), m)
                if gt(x, largest) { largest := x }
            }
        }
    }

    /// @dev min |x| over `count` packed elements of `w` bytes at memory address `src`.
    function _smallestMagnitude(uint256 src, uint256 w, uint256 count) private pure returns (uint256 smallest) {
        smallest = type(uint256).max;
        assembly ("memory-safe") {
            let sh := sub(256, shl(3, w))
            for { let end := add(src, mul(count, w)) } lt(src, end) { src := add(src, w) } {
                let x := sar(sh, mload(src))
                let m := sar(255, x)
                x := sub(xor(x, m), m)
                if lt(x, smallest) { smallest := x }
            }
        }
    }

    function _abs(int256 x) private pure returns (uint256) {
        return x < 0 ? uint256(-x) : uint256(x);
    }

    function _max(uint256 x, uint256 y) private pure returns (uint256) {
        return x > y ? x : y;
    }

    /// @dev Smallest b with v <= 2^b (0 for v <= 1).
    function _clog2(uint256 v) private pure returns (uint256 b) {
        while (b < 256 && (uint256(1) << b) < v) ++b;
    }

    /// @dev floor(log2(v)) for v >= 1.
    function _log2floor(uint256 v) private pure returns (uint256 b) {
        while (v > 1) {
            v >>= 1;
            ++b;
        }
    }
}
