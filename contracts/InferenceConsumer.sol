// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IInferenceConsumer} from "./interfaces/IInferenceConsumer.sol";
import {IInferenceOracle} from "./interfaces/IInferenceOracle.sol";
import {IOracleViews} from "./interfaces/IOracleViews.sol";

/// @title InferenceConsumer
/// @notice Base contract for dApps that use the oracle. Inherit it, call `_requestInference` with the
/// model's fee, and implement `_onInferenceResult`. Only the oracle can deliver results. Keep the callback
/// within the gas you request: if it runs out or reverts the request is still settled (the operator is
/// paid) and the output stays provable through `ORACLE.isAttestedOutput`.
abstract contract InferenceConsumer is IInferenceConsumer {
    /// @notice The oracle this consumer trusts.
    IInferenceOracle public immutable ORACLE;

    /// @notice A result (or ETH) was delivered by someone other than the oracle.
    error OnlyOracle(address caller);
    /// @notice The request is neither expired nor refunded: its fee is not owed back.
    error FeeNotRefundable(uint256 requestId, IInferenceOracle.Status status);
    /// @notice Paying a reclaimed fee to its recipient failed.
    error FeeTransferFailed(address to, uint256 amount);

    constructor(IInferenceOracle oracle) {
        ORACLE = oracle;
    }

    /// @inheritdoc IInferenceConsumer
    function onInferenceResult(uint256 requestId, bytes calldata output) external {
        if (msg.sender != address(ORACLE)) revert OnlyOracle(msg.sender);
        _onInferenceResult(requestId, output);
    }

    /// @notice Requests `modelId` on `input`, paying `fee` from this contract's balance: the model's fee plus the
    /// callback deposit (`ORACLE.quoteRequest(modelId, callbackGasLimit, gasPrice)` for a committed gas price;
    /// the callback is skipped at settlement if that price is below the base fee then).
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

    /// @notice Pays the fee of `requestId` (a request of model `modelId`, with its fee in ETH, that expired
    /// unanswered) to `to`,
    /// the person who paid for it. The oracle refunds an expired request's fee to its requester, this
    /// contract; this refunds it (if nobody has yet), pulls this contract's credits in, and forwards the
    /// model's fee and the request's callback deposit. The caller must make sure each request is reclaimed once (e.g. delete its record first).
    /// @dev Credits are pooled: every credit this contract holds is a refunded fee owed to someone, and a
    /// model's fee never changes (model versions are immutable), so each reclaim pays exactly what was paid.
    function _reclaimFee(uint256 requestId, uint32 modelId, address payable to) internal returns (uint256 fee) {
        IOracleViews views = IOracleViews(address(ORACLE));
        IInferenceOracle.Status status = views.statusOf(requestId);
        if (status == IInferenceOracle.Status.Expired) ORACLE.refund(requestId);
        else if (status != IInferenceOracle.Status.Refunded) revert FeeNotRefundable(requestId, status);
        if (views.creditsOf(address(this)) != 0) ORACLE.withdraw(payable(address(this)));
        // What was paid: the model's fee and the callback deposit, both refunded by the oracle.
        fee = ORACLE.getModel(modelId).fee
            + views.callbackGasCharged(views.getRequest(requestId).callbackGasLimit) * views.callbackGasPriceOf(requestId);
        (bool ok,) = to.call{value: fee}("");
        if (!ok) revert FeeTransferFailed(to, fee);
    }

    /// @notice Accepts only the oracle's credit withdrawals (see `_reclaimFee`).
    receive() external payable virtual {
        if (msg.sender != address(ORACLE)) revert OnlyOracle(msg.sender);
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
