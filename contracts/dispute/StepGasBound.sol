// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {DataChunks} from "../libraries/DataChunks.sol";
import {GasBound} from "../verifier/GasBound.sol";
import {Program, ProgramDecoder} from "../verifier/ProgramDecoder.sol";
import {StateMerkle} from "./StateMerkle.sol";

/// @title StepGasBound
/// @notice The static gas bound of any transaction of a dispute game (`DisputeGame.stepGasBound`), in a
/// contract of its own for the EIP-170 limit. The step is the game's largest transaction: it decodes the
/// program like a whole run, proves and hashes one op's operands and output, and runs that op; `open`
/// decodes the same program and hashes the input (far less than an op); the other moves are O(depth).
contract StepGasBound {
    /// @dev Gas of a step outside the program decode and the op, with margin: the transaction's own reads,
    /// writes and events, the settlement in the oracle (slash, burn transfer), the verifier call.
    uint256 private constant STEP_FIXED_GAS = 150_000;
    /// @dev Per operand or output element: hashing, copying, ABI coding in and out of `runOp`.
    uint256 private constant STEP_GAS_PER_ELEMENT = 500;
    uint256 private constant STEP_GAS_PER_PROOF_LEVEL = 3_000;
    /// @dev Per word of constant operands: copied out of the program, ABI-encoded, copied by the verifier.
    uint256 private constant STEP_GAS_PER_CONST_WORD = 30;

    /// @notice Built from `GasBound`'s prices: the decode part, the largest op (scaled by 64/63: it runs
    /// in the verifier's call frame), per-element costs, the Merkle proofs, calldata at the EIP-7623
    /// floor price, and memory in both frames.
    function stepGasBound(address[] calldata chunks) external view returns (uint256) {
        bytes memory program = DataChunks.read(chunks);
        Program memory p = ProgramDecoder.decode(program);
        uint256[4] memory b = GasBound.opBounds(p, program.length, chunks.length);
        (uint256 maxEl, uint256 constWords) = (b[2], b[3]);
        uint256 d = StateMerkle.depth(p.shapes.length);
        uint256 calldataBytes = 1_024 + maxEl * 8 + 4 * (d + 4) * 32;
        // This frame: the program, its decoding, the constants copied and ABI-encoded for `runOp`, the
        // operands and the returned output; the verifier's frame: the operands copied, unpacked, the output.
        uint256 words = (program.length + 31) / 32 + 40 * p.shapes.length + 40 * p.ops.length + 2 * constWords
            + 4 * maxEl + 2_000;
        uint256 verifierWords = constWords + 4 * maxEl + 1_000;
        return 21_000 + 40 * calldataBytes + STEP_FIXED_GAS + b[0] + (b[1] * 64 + 62) / 63
            + maxEl * STEP_GAS_PER_ELEMENT + constWords * STEP_GAS_PER_CONST_WORD + 4 * d * STEP_GAS_PER_PROOF_LEVEL
            + 3 * words + (words * words) / 512 + 3 * verifierWords + (verifierWords * verifierWords) / 512;
    }
}
