// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {DataChunks} from "../libraries/DataChunks.sol";
import {GasBound} from "../verifier/GasBound.sol";
import {Op, Program, ProgramDecoder} from "../verifier/ProgramDecoder.sol";
import {TensorKernels} from "../verifier/TensorKernels.sol";
import {MatMulKernels} from "../verifier/MatMulKernels.sol";
import {StateMerkle} from "./StateMerkle.sol";

/// @title StepGasBound
/// @notice Checks the tile plan of a program and bounds the gas of any transaction of its dispute game
/// (`DisputeGame.fixPlan`), in a contract of its own for the EIP-170 limit. Mirrored by
/// `oracle.profile.tiles` (a test keeps the two identical).
/// @dev A game step is one op, or one tile of a MatMul: rows `[r0, r0 + rb)` x K block `[k0, k0 + kb)`,
/// whose product is added (int64, wrapping) to those rows of the op's partial-sum output, or one row block
/// of an elementwise op. The plan takes, per MatMul, the largest tile whose step bound fits the cap: all K
/// and as many rows as fit, else one row and as much K as fits (so every operand slice is contiguous); per
/// elementwise op the most rows that fit. The registrant computes it off-chain (`oracle.profile.tiles.plan`)
/// and `checkPlan` verifies it with at most two bound evaluations per op (the entry fits; one more row, or
/// one more K element, would not), so an accepted plan is that one and every step of it fits. A program
/// with a step that cannot fit (one row by one K element, or an op that is not tiled) is refused
/// (`StepGasTooHigh`).
contract StepGasBound {
    /// @notice A step of the program (or `open`) is over the cap under the supplied plan: the game could not
    /// prove it (with the plan's smallest tile, unprovable).
    error StepGasTooHigh(uint256 stepGas, uint256 cap);
    /// @notice The plan has `length` entries; the program has `ops` ops.
    error PlanLengthMismatch(uint256 ops, uint256 length);
    /// @notice Plan entry `entry` of op `op` is not the plan's (`steps << 192 | rb << 96 | kb`, rows and K
    /// within the op, the largest that fit).
    error BadPlanEntry(uint256 op, uint256 entry);

    /// @notice What the game keeps of a program whose plan `checkPlan` accepted.
    struct Checked {
        uint256 execGas; // the verifier's `executionGasBound`
        uint256 inputLength;
        uint256 outputLength;
        uint256 steps; // of the whole game
        uint256 stepGas; // bound on any game transaction's gas
        uint256 depth; // of the state tree
        uint256 inputId;
        uint256 inputWidth;
        uint256 outputId;
        uint256 outputWidth;
    }

    /// @dev Gas of a step outside the program decode and the op, with margin: the transaction's own reads,
    /// writes and events, the settlement in the oracle (slash, burn transfer), the verifier call.
    uint256 private constant STEP_FIXED_GAS = 150_000;
    /// @dev Per operand or output element: hashing, copying, ABI coding in and out of `runOp`, the
    /// wrapping partial-sum add.
    uint256 private constant STEP_GAS_PER_ELEMENT = 250;
    uint256 private constant STEP_GAS_PER_PROOF_LEVEL = 3_000;
    /// @dev Per word of constant operands: copied out of the program, ABI-encoded, copied by the verifier.
    uint256 private constant STEP_GAS_PER_CONST_WORD = 30;
    /// @dev Per op, over the decode part of the bound, in `open`'s bound (it was the plan's replay; `open` now
    /// only reads and hashes the program: a margin kept).
    uint256 private constant PLAN_GAS_PER_OP = 6_000;
    /// @dev `open` per input element: widened to 8 bytes and hashed.
    uint256 private constant OPEN_GAS_PER_INPUT_ELEMENT = 200;
    /// @dev A plan entry in a step's calldata (32 bytes at the floor price), hashed and read.
    uint256 private constant PLAN_GAS_PER_ENTRY = 1_400;
    /// @dev An elementwise row tile's kernel (over `GasBound`'s dearest elementwise price, Clip's 186, and
    /// its per-row price), per output element, row, op and broadcast constant element (read, checked).
    uint256 private constant ROW_GAS_PER_ELEMENT = 400;
    uint256 private constant ROW_GAS_PER_ROW = 1_000;
    uint256 private constant ROW_GAS_FIXED = 20_000;
    uint256 private constant ROW_GAS_PER_CONST = 100;
    /// @dev Elements of one state chunk: a proven slice is widened to whole chunks (at most one more each side).
    uint256 private constant CHUNK_ELEMENTS = StateMerkle.CHUNK_BYTES / 8;

    /// @dev What every step of the program shares.
    struct Ctx {
        uint256 cap;
        uint256 base; // decode, plan check, fixed costs
        uint256 frameWords; // the game frame's words outside the op
        uint256 depth;
        uint256[] bits;
        bool[] tiled; // by op: in tiles or row blocks
    }

    /// @notice Verifies `tiles`, the tile plan of the program in `chunks` under `cap` (per op,
    /// `steps << 192 | rb << 96 | kb`: a MatMul in `steps` tiles of `rb` rows by `kb` K elements, row blocks
    /// outer; an elementwise op in `steps` blocks of `rb` rows, `kb` 0; else `1 << 192`, one step), and
    /// bounds every game transaction under it. Reverts `PlanLengthMismatch`, `BadPlanEntry` (not the plan),
    /// `StepGasTooHigh` (a step over `cap`). One decode and one replay of the program: the verifier's
    /// whole-program bound comes from the same replay.
    function checkPlan(address[] calldata chunks, uint256 cap, uint256[] calldata tiles)
        external
        view
        returns (Checked memory k)
    {
        bytes memory program = DataChunks.read(chunks);
        Program memory p = ProgramDecoder.decode(program);
        uint256 nOps = p.ops.length;
        if (tiles.length != nOps) revert PlanLengthMismatch(nOps, tiles.length);
        (Ctx memory c, uint256 gas, uint256 execGas) = _ctx(p, program.length, chunks.length, cap);
        for (uint256 i; i < nOps; ++i) {
            uint256 g;
            if (!c.tiled[i]) {
                if (tiles[i] != 1 << 192) revert BadPlanEntry(i, tiles[i]);
            } else if (_tileableMatMul(p, p.ops[i])) {
                g = _checkTile(c, p, i, tiles[i]);
            } else {
                g = _checkRows(c, p, i, tiles[i]);
            }
            if (g > gas) gas = g;
            k.steps += tiles[i] >> 192;
        }
        if (gas > cap) revert StepGasTooHigh(gas, cap);
        (k.execGas, k.stepGas, k.depth) = (execGas, gas, c.depth);
        (k.inputId, k.inputWidth, k.outputId, k.outputWidth) = (p.inputId, p.inputWidth, p.outputId, p.outputWidth);
        k.inputLength = TensorKernels.numel(p.shapes[p.inputId]) * p.inputWidth;
        k.outputLength = TensorKernels.numel(p.shapes[p.outputId]) * p.outputWidth;
    }

    /// @notice `InferenceOracle._proofGasBound`: the one-transaction `challenge` bound for a program whose
    /// verifier bound is `execGas` (tests check it against the oracle's stored `proofGasBound`).
    function proofGasBound(uint256 execGas, uint256 nChunks, uint256 inputLength, uint256 outputLength)
        external
        pure
        returns (uint256)
    {
        uint256 calldataBytes = 4 + 3 * 32 + ((inputLength + 31) / 32) * 32;
        uint256 standard = 21_000 + 16 * calldataBytes + 100_000 + 2_400 * nChunks + 16 * (inputLength + outputLength)
            + (execGas * 64 + 62) / 63;
        uint256 floor = 21_000 + 40 * calldataBytes;
        return standard > floor ? standard : floor;
    }

    /// @notice keccak256 of the canonical output encoding at width `w` of 8-byte elements (saturating,
    /// like the verifier): what a defended output must hash to.
    function outputHash(bytes calldata values, uint256 w) external pure returns (bytes32) {
        return keccak256(_saturate(values, w));
    }

    /// @notice The state root before the first step of a game (`DisputeGame.open`): the request's `input`
    /// (`w` bytes an element) widened to 8 bytes an element, as tensor `inputId` of a tree of `depth` levels.
    function inputRoot(bytes calldata input, uint256 w, uint256 inputId, uint256 depth) external pure returns (bytes32) {
        return StateMerkle.singleLeafRoot(StateMerkle.tensorHash(_widen(input, w)), inputId, depth);
    }

    /// @dev The shared parts, which ops are tiled, the bound of the steps that are not tiles (a non-MatMul
    /// op, operands and output whole) and of `open`, and the verifier's whole-program bound.
    function _ctx(Program memory p, uint256 programLength, uint256 nChunks, uint256 cap)
        private
        pure
        returns (Ctx memory c, uint256 gas, uint256 execGas)
    {
        bool[] memory tiled = new bool[](p.ops.length);
        for (uint256 i; i < tiled.length; ++i) {
            tiled[i] = _tileableMatMul(p, p.ops[i]) || _rowTileable(p, p.ops[i]);
        }
        (uint256[4] memory b, uint256[] memory bits, uint256 total) = GasBound.opBounds(p, programLength, nChunks, tiled);
        execGas = total;
        // A step decodes the program but not an input.
        b[0] -= TensorKernels.numel(p.shapes[p.inputId]) * GasBound.PER_INPUT_ELEMENT;
        uint256 words = (programLength + 31) / 32 + 40 * p.shapes.length + 40 * p.ops.length + 2_000;
        // A step checks the plan (calldata) against its hash.
        c = Ctx(cap, 21_000 + STEP_FIXED_GAS + b[0] + p.ops.length * PLAN_GAS_PER_ENTRY, words + p.ops.length,
            StateMerkle.depth(p.shapes.length), bits, tiled);
        gas = _stepGas(c, b[1], b[2], b[3], 4 * c.depth, 0);
        uint256 openGas = _openGas(p, b[0], words);
        if (openGas > gas) gas = openGas;
    }

    /// @dev `open`: the input in calldata (at most 8 bytes an element), the program read and hashed (to find
    /// its fixed plan; priced as a decode, `decodeGas`, and a plan replay: far above), the input widened and
    /// hashed (a word an element covers its memory), in the game's frame and `inputRoot`'s.
    function _openGas(Program memory p, uint256 decodeGas, uint256 words) private pure returns (uint256) {
        uint256 countIn = TensorKernels.numel(p.shapes[p.inputId]);
        words += countIn;
        uint256 openGas = decodeGas + countIn * (GasBound.PER_INPUT_ELEMENT + OPEN_GAS_PER_INPUT_ELEMENT)
            + p.ops.length * PLAN_GAS_PER_OP + 3 * words + (words * words) / 512;
        return 21_000 + STEP_FIXED_GAS + 40 * (1_024 + countIn * 8) + (openGas * 64 + 62) / 63;
    }

    /// @dev A 2-D MatMul ([M, K] x [K, N]) is split in tiles; a batched one (rank 3) is one step.
    function _tileableMatMul(Program memory p, Op memory op) private pure returns (bool) {
        return op.opcode == TensorKernels.OP_MATMUL && p.shapes[op.inputs[0]].length == 2
            && p.shapes[op.inputs[1]].length == 2;
    }

    /// @dev Checks MatMul op `i`'s entry `e` (`[M, K] x [K, N]`): `1 <= rb <= M`, `1 <= kb <= K`, its step
    /// count, and the plan's rule: all K and the most rows (`rb == M`, or `rb + 1` rows do not fit), else
    /// one row and the most K (`kb + 1` does not fit). Returns the tile's step bound (the caller checks it
    /// against the cap, so the entry fits: it is the largest that does, the gas growing with rows and K).
    function _checkTile(Ctx memory c, Program memory p, uint256 i, uint256 e) private pure returns (uint256 g) {
        Op memory op = p.ops[i];
        (uint256 m, uint256 k) = (p.shapes[op.inputs[0]][0], p.shapes[op.inputs[0]][1]);
        (uint256 rb, uint256 kb) = (uint96(e >> 96), uint96(e));
        if (rb == 0 || rb > m || kb == 0 || kb > k) revert BadPlanEntry(i, e);
        if (e != ((((m + rb - 1) / rb) * ((k + kb - 1) / kb)) << 192 | (rb << 96) | kb)) revert BadPlanEntry(i, e);
        bool largest = kb == k ? rb == m || _tileGas(c, p, op, rb + 1, k) > c.cap
            : rb == 1 && _tileGas(c, p, op, 1, kb + 1) > c.cap;
        if (!largest) revert BadPlanEntry(i, e);
        g = _tileGas(c, p, op, rb, kb);
    }

    /// @dev An elementwise op (Add ... Clip) whose every input has its output's shape (sliced by rows) or is
    /// a constant that broadcasts along rows (taken whole): split in row blocks.
    function _rowTileable(Program memory p, Op memory op) private pure returns (bool) {
        uint256[] memory out = p.shapes[op.output];
        if (op.opcode < TensorKernels.OP_ADD || op.opcode > TensorKernels.OP_CLIP || out.length == 0) return false;
        for (uint256 j; j < op.inputs.length; ++j) {
            uint256[] memory s = p.shapes[op.inputs[j]];
            if (keccak256(abi.encode(s)) == keccak256(abi.encode(out))) continue;
            if (p.constData[op.inputs[j]] == 0 || (s.length >= out.length && s[0] != 1)) return false;
        }
        return true;
    }

    /// @dev Checks elementwise op `i`'s entry `e`: `1 <= rb <= m` rows, its step count, `kb` 0, and the most
    /// rows (`rb == m`, or `rb + 1` do not fit). Returns the row block's step bound (see `_checkTile`).
    function _checkRows(Ctx memory c, Program memory p, uint256 i, uint256 e) private pure returns (uint256 g) {
        Op memory op = p.ops[i];
        uint256 m = p.shapes[op.output][0];
        uint256 rb = uint96(e >> 96);
        if (rb == 0 || rb > m || e != (((m + rb - 1) / rb) << 192 | (rb << 96))) revert BadPlanEntry(i, e);
        if (rb < m && _rowGas(c, p, op, rb + 1) <= c.cap) revert BadPlanEntry(i, e);
        g = _rowGas(c, p, op, rb);
    }

    /// @dev Bound of the step of `rb` rows of elementwise `op`: its sliced inputs and output rows proven by
    /// range proofs, broadcast constants whole from the program, the rows by `runOp`.
    function _rowGas(Ctx memory c, Program memory p, Op memory op, uint256 rb) private pure returns (uint256) {
        uint256[] memory out = p.shapes[op.output];
        uint256 els = rb * (TensorKernels.numel(out) / out[0]);
        uint256[4] memory t = [3 * els + 2 * CHUNK_ELEMENTS, 3 * c.depth + 2 * _chunkLevels(p, op.output), 0, 0];
        uint256 constEls;
        for (uint256 j; j < op.inputs.length; ++j) {
            uint256 x = op.inputs[j];
            if (keccak256(abi.encode(p.shapes[x])) == keccak256(abi.encode(out))) {
                _operand(p, t, x, els, true);
            } else {
                constEls += TensorKernels.numel(p.shapes[x]);
                t[2] += (TensorKernels.numel(p.shapes[x]) * p.constWidth[x] + 31) / 32 + 1;
            }
        }
        uint256 opGas = els * ROW_GAS_PER_ELEMENT + rb * ROW_GAS_PER_ROW + ROW_GAS_FIXED + constEls * ROW_GAS_PER_CONST
            + t[3] * GasBound.PER_UNPACK_ELEMENT;
        return _stepGas(c, opGas, t[0], t[2], t[1], 0);
    }

    /// @dev Bound of the step of an `rb` x `kb` tile of MatMul `op`: its operand slices and partial-sum rows
    /// proven by range proofs (widened to whole chunks), the product by `runOp`, the rows added and rehashed.
    function _tileGas(Ctx memory c, Program memory p, Op memory op, uint256 rb, uint256 kb)
        private
        pure
        returns (uint256)
    {
        uint256 n = p.shapes[op.inputs[1]][1];
        uint256 wb = p.constData[op.inputs[1]] != 0 ? p.constWidth[op.inputs[1]] : 8;
        // [elements, proof levels, constant words, unpacked elements]. The partial-sum rows: proven,
        // rehashed, and returned by `runOp`.
        uint256[4] memory t = [3 * rb * n + 2 * CHUNK_ELEMENTS, 3 * c.depth + 2 * _chunkLevels(p, op.output), 0, 0];
        _operand(p, t, op.inputs[0], rb * kb, true);
        _operand(p, t, op.inputs[1], kb * n, false);
        t[3] = GasBound.matmulGas(rb, kb, n, wb, c.bits[op.inputs[0]]) + t[3] * GasBound.PER_UNPACK_ELEMENT;
        return _stepGas(c, t[3], t[0], t[2], t[1], MatMulKernels.scratchWords(n, wb) + rb * kb);
    }

    /// @dev Adds a tile's slice of `count` elements of input `x` to `t` (see `_tileGas`): a constant's words
    /// from the program, else chunks proven by a range proof (and unpacked if `unpacked`).
    function _operand(Program memory p, uint256[4] memory t, uint256 x, uint256 count, bool unpacked) private pure {
        if (p.constData[x] != 0) {
            t[2] += (count * p.constWidth[x] + 31) / 32 + 1;
            return;
        }
        t[0] += count + 2 * CHUNK_ELEMENTS;
        t[1] += 2 * _chunkLevels(p, x);
        if (unpacked) t[3] += count;
    }

    /// @dev Calldata at the EIP-7623 floor price, the op (in the verifier's frame, 63/64), per-element and
    /// proof costs, memory in both frames.
    function _stepGas(Ctx memory c, uint256 opGas, uint256 elements, uint256 constWords, uint256 levels, uint256 scratch)
        private
        pure
        returns (uint256)
    {
        uint256 gas = c.base + 40 * (1_024 + elements * 8 + levels * 32) + (opGas * 64 + 62) / 63
            + elements * STEP_GAS_PER_ELEMENT + constWords * STEP_GAS_PER_CONST_WORD + levels * STEP_GAS_PER_PROOF_LEVEL;
        // Memory: at most 3 words an element in each frame (the 8-byte copies, the verifier's unpacked
        // int256 values and output, the returned int64[] and its encoding).
        uint256 words = c.frameWords + 2 * constWords + 3 * elements;
        scratch += constWords + 3 * elements + 1_000; // the verifier's frame
        return gas + 3 * words + (words * words) / 512 + 3 * scratch + (scratch * scratch) / 512;
    }

    /// @dev Levels of tensor `t`'s chunk tree.
    function _chunkLevels(Program memory p, uint256 t) private pure returns (uint256 l) {
        uint256 n = (TensorKernels.numel(p.shapes[t]) * 8 + StateMerkle.CHUNK_BYTES - 1) / StateMerkle.CHUNK_BYTES;
        while ((uint256(1) << l) < n) ++l;
    }

    /// @dev 8-byte elements to the canonical output encoding at width `w`, saturating (as the verifier).
    function _saturate(bytes calldata values, uint256 w) private pure returns (bytes memory out) {
        uint256 count = values.length / 8;
        out = new bytes(count * w);
        assembly ("memory-safe") {
            let sh := sub(256, shl(3, w))
            let wm1 := sub(w, 1)
            let hi := sub(shl(sub(shl(3, w), 1), 1), 1)
            let dst := add(out, 0x20)
            for { let i := 0 } lt(i, count) { i := add(i, 1) } {
                let x := sar(192, calldataload(add(values.offset, shl(3, i))))
                if iszero(eq(signextend(wm1, x), x)) {
                    switch slt(x, 0)
                    case 0 { x := hi }
                    default { x := not(hi) }
                }
                mstore(add(dst, mul(i, w)), shl(sh, x))
            }
            mstore(0x40, add(mload(0x40), 0x20))
        }
    }

    /// @dev `w`-byte big-endian two's complement elements to 8-byte ones (sign-extended).
    function _widen(bytes calldata input, uint256 w) private pure returns (bytes memory out) {
        uint256 count = input.length / w;
        out = new bytes(count * 8);
        assembly ("memory-safe") {
            let sh := sub(256, shl(3, w))
            let dst := add(out, 0x20)
            for { let i := 0 } lt(i, count) { i := add(i, 1) } {
                let x := sar(sh, calldataload(add(input.offset, mul(i, w))))
                // Write the 8 low bytes at dst + 8i (a full-word store, later stores overwrite the spill).
                mstore(add(dst, shl(3, i)), shl(192, x))
            }
            mstore(0x40, add(mload(0x40), 0x20))
        }
    }

}
