// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IInferenceConsumer
/// @notice Implemented by contracts that receive inference results. The oracle calls it once per request,
/// after settlement (or after a proven fraud, with the corrected output), with exactly the gas the
/// requester asked for. Whatever the callback does, settlement has already happened: a revert or an
/// out-of-gas here changes no balance and blocks nothing.
interface IInferenceConsumer {
    /// @notice Receives the final output of `requestId`.
    function onInferenceResult(uint256 requestId, bytes calldata output) external;
}
