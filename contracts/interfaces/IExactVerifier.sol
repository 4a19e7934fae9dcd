// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IExactVerifier
/// @notice Executes an integer-profile program (docs/integer-profile.md) inside the EVM with exactly the
/// semantics of the reference interpreter (`oracle.profile.reference`). The inference oracle calls it to
/// re-execute a challenged `EXACT` result; the program (weights included) lives on-chain in data chunks
/// written once at registration, so no challenge has to carry it.
interface IExactVerifier {
    /// @notice The program bytes are not a valid v1 program (bad magic, truncated, ids out of range, ...).
    error MalformedProgram(uint256 offset);
    /// @notice The input is not `numel(input) * inputWidth` bytes long.
    error InputLengthMismatch(uint256 expected, uint256 actual);
    /// @notice The program uses an opcode this verifier does not implement.
    error UnsupportedOpcode(uint8 opcode);
    /// @notice An op's operand shapes do not fit the op (e.g. MatMul inner dimensions differ).
    error ShapeMismatch(uint256 opIndex);

    /// @notice Runs `program` on the canonical `input` and returns the canonical output bytes.
    function execute(bytes calldata program, bytes calldata input) external pure returns (bytes memory output);

    /// @notice Same as `execute`, reading the program from data chunks (see `DataChunks`).
    /// @param chunks addresses of the data contracts whose code, concatenated, is the program.
    function executeStored(address[] calldata chunks, bytes calldata input) external view returns (bytes memory output);

    /// @notice An upper bound on the gas `executeStored(chunks, input)` uses, valid for every `input` of
    /// the program's canonical input length, computed from the program alone (never from a sample input),
    /// and the program's canonical input and output lengths. Reverts like `execute` for a malformed program.
    /// @dev The bound covers the verifier's own call frame (what a caller must forward to it), not the
    /// caller's cost of the CALL itself.
    function executionGasBound(address[] calldata chunks)
        external
        view
        returns (uint256 gas, uint256 inputLength, uint256 outputLength);
}
