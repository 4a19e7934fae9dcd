// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IInferenceConsumer} from "./interfaces/IInferenceConsumer.sol";
import {IInferenceOracle} from "./interfaces/IInferenceOracle.sol";

/// @title InferenceConsumer
/// @notice Base contract for dApps that use the oracle. Inherit it, call `_requestInference` with the
/// model's fee, and implement `_onInferenceResult`. Only the oracle can deliver results. Keep the callback
/// within the gas you request: if it runs out or reverts the request is still settled (the operator is
/// paid) and the output stays provable through `ORACLE.isAttestedOutput`.
abstract contract InferenceConsumer is IInferenceConsumer {
    /// @notice The oracle this consumer trusts.
    IInferenceOracle public immutable ORACLE;

    /// @notice A result was delivered by someone other than the oracle.
    error OnlyOracle(address caller);

    constructor(IInferenceOracle oracle) {
        ORACLE = oracle;
    }

    /// @inheritdoc IInferenceConsumer
    function onInferenceResult(uint256 requestId, bytes calldata output) external {
        if (msg.sender != address(ORACLE)) revert OnlyOracle(msg.sender);
        _onInferenceResult(requestId, output);
    }

    /// @notice Requests `modelId` on `input`, paying `fee` from this contract's balance.
    function _requestInference(uint32 modelId, bytes memory input, uint24 callbackGasLimit, uint256 fee)
        internal
        returns (uint256 requestId)
    {
        return ORACLE.requestInference{value: fee}(modelId, input, callbackGasLimit);
    }

    /// @notice Withdraws this contract's oracle credits (refunds of expired requests) to `to`.
    function _withdrawOracleCredits(address payable to) internal {
        ORACLE.withdraw(to);
    }

    /// @notice Called with the final output of a request this contract made.
    function _onInferenceResult(uint256 requestId, bytes calldata output) internal virtual;

    /// @notice Reads a canonical output element of `width` bytes at `index` as a signed integer.
    function _outputElement(bytes calldata output, uint256 index, uint256 width) internal pure returns (int256 v) {
        uint256 start = index * width;
        uint256 raw;
        for (uint256 i; i < width; ++i) {
            raw = (raw << 8) | uint8(output[start + i]);
        }
        // Sign-extend from `width` bytes (two's complement, big-endian).
        uint256 bits = width * 8;
        if (bits < 256 && raw >> (bits - 1) == 1) raw |= type(uint256).max << bits;
        v = int256(raw);
    }
}
