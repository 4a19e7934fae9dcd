// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IExactVerifier} from "../interfaces/IExactVerifier.sol";
import {TensorKernels} from "./TensorKernels.sol";

/// @notice One decoded op.
struct Op {
    uint256 opcode;
    uint256[] inputs; // tensor ids
    uint256 output; // tensor id
    int256[] attrs; // i64 attributes, sign-extended
}

/// @notice A decoded, fully validated program. Constants are not copied: they point into the program bytes.
struct Program {
    uint256 inputWidth;
    uint256 outputWidth;
    uint256 inputId;
    uint256 outputId;
    uint256[][] shapes; // by tensor id
    uint256[] constData; // by tensor id: memory address of the packed values, 0 if not a constant
    uint256[] constWidth; // by tensor id: storage width of a constant
    Op[] ops;
}

/// @title ProgramDecoder
/// @notice Parses and validates v1 program bytes (docs/integer-profile.md, all integers big-endian) with
/// the rules of `oracle.profile.program.decode`: a program is accepted here iff the reference accepts it.
/// @dev Errors: a structural fault (bad magic or width, truncation, trailing bytes, an id out of range,
/// undefined or defined twice, a wrong operand or attribute count, an illegal attribute, a constant Div
/// divisor with a zero element, a tensor nobody defines) reverts `MalformedProgram(offset)` with the
/// byte offset of the offending field (of the op, for op-level rules; the program length for a tensor
/// left undefined); an unknown opcode reverts `UnsupportedOpcode`; operand shapes that do not fit the op
/// revert `ShapeMismatch(opIndex)`. Everything is checked before any op runs, so a bad program fails cheaply.
library ProgramDecoder {
    uint256 internal constant MAGIC = 0x494F5031; // "IOP1"

    // Definition state of a tensor id while decoding.
    uint256 private constant UNDEFINED = 0;
    uint256 private constant DEFINED = 1;
    uint256 private constant CONSTANT = 2;

    /// @dev Reads the `n`-byte big-endian unsigned integer at `off`, reverting if it runs past `len`.
    function _read(uint256 base, uint256 len, uint256 off, uint256 n) private pure returns (uint256 v) {
        if (off + n > len) revert IExactVerifier.MalformedProgram(off);
        assembly ("memory-safe") {
            v := shr(sub(256, shl(3, n)), mload(add(base, off)))
        }
    }

    function decode(bytes memory prog) internal pure returns (Program memory p) {
        uint256 base;
        assembly ("memory-safe") {
            base := add(prog, 0x20)
        }
        uint256 len = prog.length;
        if (_read(base, len, 0, 4) != MAGIC) revert IExactVerifier.MalformedProgram(0);
        p.inputWidth = _read(base, len, 4, 1);
        if (!TensorKernels.isWidth(p.inputWidth)) revert IExactVerifier.MalformedProgram(4);
        p.outputWidth = _read(base, len, 5, 1);
        if (!TensorKernels.isWidth(p.outputWidth)) revert IExactVerifier.MalformedProgram(5);
        uint256 numTensors = _read(base, len, 6, 2);
        // Each tensor entry takes at least one byte: a count the remaining bytes cannot hold is refused
        // before anything is allocated for it (a corrupted count must fail cheaply, not run out of memory).
        if (numTensors == 0 || 8 + numTensors > len) revert IExactVerifier.MalformedProgram(6);
        uint256 off = 8;

        p.shapes = new uint256[][](numTensors);
        for (uint256 t; t < numTensors; ++t) {
            uint256 rank = _read(base, len, off, 1);
            if (rank > TensorKernels.MAX_RANK) revert IExactVerifier.MalformedProgram(off);
            ++off;
            uint256[] memory shape = new uint256[](rank);
            for (uint256 i; i < rank; ++i) {
                shape[i] = _read(base, len, off, 4);
                if (shape[i] == 0) revert IExactVerifier.MalformedProgram(off);
                off += 4;
            }
            p.shapes[t] = shape;
        }

        p.inputId = _read(base, len, off, 2);
        if (p.inputId >= numTensors) revert IExactVerifier.MalformedProgram(off);
        p.outputId = _read(base, len, off + 2, 2);
        if (p.outputId >= numTensors) revert IExactVerifier.MalformedProgram(off + 2);
        off += 4;
        uint256[] memory state = new uint256[](numTensors);
        state[p.inputId] = DEFINED;

        p.constData = new uint256[](numTensors);
        p.constWidth = new uint256[](numTensors);
        uint256 numConsts = _read(base, len, off, 2);
        off += 2;
        for (uint256 c; c < numConsts; ++c) {
            uint256 tid = _read(base, len, off, 2);
            if (tid >= numTensors || state[tid] != UNDEFINED) revert IExactVerifier.MalformedProgram(off);
            uint256 width = _read(base, len, off + 2, 1);
            if (!TensorKernels.isWidth(width)) revert IExactVerifier.MalformedProgram(off + 2);
            off += 3;
            uint256 size = TensorKernels.numel(p.shapes[tid]) * width;
            if (off + size > len) revert IExactVerifier.MalformedProgram(off);
            state[tid] = CONSTANT;
            p.constData[tid] = base + off;
            p.constWidth[tid] = width;
            off += size;
        }

        uint256 numOps = _read(base, len, off, 2);
        // Every op takes at least 7 bytes (opcode, nIn, one input id, output id, nAttr): as for tensors.
        if (off + 2 + 7 * numOps > len) revert IExactVerifier.MalformedProgram(off);
        off += 2;
        p.ops = new Op[](numOps);
        for (uint256 i; i < numOps; ++i) {
            off = _decodeOp(p, state, base, len, off, i);
        }
        if (off != len) revert IExactVerifier.MalformedProgram(off);
        for (uint256 t; t < numTensors; ++t) {
            if (state[t] == UNDEFINED) revert IExactVerifier.MalformedProgram(len);
        }
    }

    /// @dev Decodes and validates op `index` starting at `start`; returns the offset after it.
    function _decodeOp(
        Program memory p,
        uint256[] memory state,
        uint256 base,
        uint256 len,
        uint256 start,
        uint256 index
    )
        private
        pure
        returns (uint256 off)
    {
        Op memory op = p.ops[index];
        uint256 numTensors = state.length;
        op.opcode = _read(base, len, start, 1);
        if (!TensorKernels.supported(op.opcode)) revert IExactVerifier.UnsupportedOpcode(uint8(op.opcode));
        (uint256 nIn, uint256 nAttr) = TensorKernels.arity(op.opcode);
        if (_read(base, len, start + 1, 1) != nIn) revert IExactVerifier.MalformedProgram(start + 1);
        off = start + 2;

        op.inputs = new uint256[](nIn);
        uint256[][] memory inShapes = new uint256[][](nIn);
        for (uint256 j; j < nIn; ++j) {
            uint256 tid = _read(base, len, off, 2);
            if (tid >= numTensors || state[tid] == UNDEFINED) revert IExactVerifier.MalformedProgram(off);
            op.inputs[j] = tid;
            inShapes[j] = p.shapes[tid];
            off += 2;
        }
        op.output = _read(base, len, off, 2);
        if (op.output >= numTensors || state[op.output] != UNDEFINED) revert IExactVerifier.MalformedProgram(off);
        off += 2;
        if (_read(base, len, off, 1) != nAttr) revert IExactVerifier.MalformedProgram(off);
        ++off;
        op.attrs = new int256[](nAttr);
        for (uint256 j; j < nAttr; ++j) {
            uint256 raw = _read(base, len, off, 8);
            int256 v;
            assembly ("memory-safe") {
                v := signextend(7, raw)
            }
            op.attrs[j] = v;
            off += 8;
        }

        _validateOp(p, state, op, inShapes, start, index);
        state[op.output] = DEFINED;
    }

    /// @dev The shape and attribute rules of a decoded op, and Div's non-zero constant divisor.
    function _validateOp(
        Program memory p,
        uint256[] memory state,
        Op memory op,
        uint256[][] memory inShapes,
        uint256 start,
        uint256 index
    ) private pure {
        uint256 status = TensorKernels.checkOp(op.opcode, inShapes, op.attrs, p.shapes[op.output]);
        if (status == TensorKernels.CHECK_ATTRS) revert IExactVerifier.MalformedProgram(start);
        if (status == TensorKernels.CHECK_SHAPE) revert IExactVerifier.ShapeMismatch(index);
        if (op.opcode == TensorKernels.OP_DIV) {
            // A constant divisor has no zero element; a computed one may (Div is total: x / 0 is 0).
            uint256 d = op.inputs[1];
            if (state[d] == CONSTANT && !_allNonZero(p.constData[d], p.constWidth[d], TensorKernels.numel(p.shapes[d]))) {
                revert IExactVerifier.MalformedProgram(start);
            }
        }
    }

    /// @dev Whether none of `count` packed elements of `w` bytes at `src` is zero.
    function _allNonZero(uint256 src, uint256 w, uint256 count) private pure returns (bool ok) {
        assembly ("memory-safe") {
            ok := 1
            let sh := sub(256, shl(3, w))
            for { let end := add(src, mul(count, w)) } lt(src, end) { src := add(src, w) } {
                if iszero(shr(sh, mload(src))) {
                    ok := 0
                    break
                }
            }
        }
    }
}
