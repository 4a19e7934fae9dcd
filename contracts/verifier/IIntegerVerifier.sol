// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IExactVerifier} from "../interfaces/IExactVerifier.sol";

/// @title IIntegerVerifier
/// @notice The integer-profile verifier (docs/integer-profile.md): whole programs through `IExactVerifier`,
/// plus every op kernel callable on its own. The interactive fraud proof (protocol §6, v2) bisects a
/// disputed execution down to one op and re-executes only that op with `runOp`; a whole-program
/// `execute` runs exactly the same kernels, so the two can never disagree.
/// @dev Arithmetic results are reduced to int64 (two's complement wrap) after every op, exactly like the
/// numpy reference interpreter. For compiled programs this never changes a value (the compiler's
/// interval analysis proves nothing overflows); it makes the verifier agree with the reference even for
/// a program or operand that does overflow, so an honest operator cannot be slashed by such a case.
interface IIntegerVerifier is IExactVerifier {
    /// @notice One operand of `runOp`: a tensor in the canonical encoding of the program format.
    struct Operand {
        uint32[] shape; // dims, rank 0-4, every dim >= 1
        uint8 width; // bytes per element: 1, 2, 4 or 8
        bytes data; // numel(shape) * width bytes: big-endian two's complement, row-major
    }

    /// @notice `runOp` operand `index` has a bad width, rank or dimension, or data of the wrong length.
    error InvalidOperand(uint256 index);
    /// @notice `runOp` got the wrong number of operands or attributes for `opcode`, or an attribute out
    /// of its range (Clip min > max, ArgMax axis/flags, Cast width).
    error InvalidAttributes(uint8 opcode);

    /// @notice Evaluates a single op exactly like one step of `execute` (and like the reference's `run_op`).
    /// @param opcode the op, numbered as in the program format (1 MatMul ... 18 TransposeND).
    /// @param inputs the operands in program order; a MatMul weight operand is read in its packed form,
    /// so narrow widths make big MatMuls cheap.
    /// @param attrs the op's i64 attributes (Clip: min, max; ArgMax: axis, keepdims, select_last_index;
    /// Cast: target width; ReduceSum, ReduceMax: axis, keepdims; TransposeND: the rank-4 permutation).
    /// @param outShape the op's output shape, as the program's tensor table would give it; checked
    /// against the operands (ShapeMismatch(0) if it is not the shape the op produces).
    /// @return output the output elements in row-major order, each an int64.
    function runOp(uint8 opcode, Operand[] calldata inputs, int64[] calldata attrs, uint32[] calldata outShape)
        external
        pure
        returns (int64[] memory output);
}
