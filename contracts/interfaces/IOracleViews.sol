// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IInferenceOracle} from "./IInferenceOracle.sol";
import {IModelRegistry} from "./IModelRegistry.sol";
import {IOperatorStaking} from "./IOperatorStaking.sol";

/// @title IOracleViews
/// @notice The oracle's read-only views of requests, prices and credits. They are served at the oracle's own
/// address (its fallback runs the `OracleLens` code with DELEGATECALL, on the oracle's storage), so a caller
/// reads `IOracleViews(oracle)` exactly as it calls `IInferenceOracle(oracle)`; they live in another contract
/// only to keep the oracle under the EIP-170 code-size limit.
interface IOracleViews {
    /// @notice The exact `msg.value` of a request of `modelId` with `callbackGasLimit` callback gas at a committed
    /// callback gas price of `gasPrice` wei: the fee (only when it is in ETH; see `priceOf`) plus
    /// `callbackGasCharged(callbackGasLimit) * gasPrice`.
    function quoteRequest(uint32 modelId, uint24 callbackGasLimit, uint256 gasPrice) external view returns (uint256);

    /// @notice Gas units a request with `callbackGasLimit` pays for: the limit, the 1/64 the caller must hold
    /// back (EIP-150) and the fixed cost of calling back (0 when `callbackGasLimit` is 0).
    function callbackGasCharged(uint24 callbackGasLimit) external pure returns (uint256);

    /// @notice The callback gas price `requestId`'s requester committed to (0: none; the callback is skipped
    /// unless the base fee is 0).
    function callbackGasPriceOf(uint256 requestId) external view returns (uint256);

    /// @notice Derived status of a request.
    function statusOf(uint256 requestId) external view returns (IInferenceOracle.Status);

    /// @notice A request with its result and derived status.
    function getRequest(uint256 requestId) external view returns (IInferenceOracle.RequestView memory);

    /// @notice True when `output` is the attested output of `requestId` (results stay provable on-chain).
    function isAttestedOutput(uint256 requestId, bytes calldata output) external view returns (bool);

    /// @notice Returns a model version.
    function getModel(uint32 modelId) external view returns (IModelRegistry.Model memory);

    /// @notice Returns the program chunks of an `EXACT` model (empty for `ATTESTED`).
    function programChunks(uint32 modelId) external view returns (address[] memory);

    /// @notice Number of registered model versions (the latest id).
    function modelCount() external view returns (uint32);

    /// @notice Returns `operator`'s stake.
    function stakeOf(address operator) external view returns (IOperatorStaking.StakeInfo memory);

    /// @notice Stake not backing any open attestation (`staked - locked`).
    function freeStake(address operator) external view returns (uint256);

    /// @notice Free stake above this draws no more assignment weight: an operator is assigned with a
    /// probability proportional to `min(freeStake, maxAssignmentWeight)` (a deploy parameter).
    function maxAssignmentWeight() external view returns (uint256);

    /// @notice Withdrawable ETH credits of `account` (fees of ETH models, rewards, refunds, callback deposits).
    function creditsOf(address account) external view returns (uint256);

    /// @notice Withdrawable credits of `account` in the ERC-20 `token` (ETH credits: `creditsOf`).
    function tokenCreditsOf(address account, address token) external view returns (uint256);

    /// @notice The request id that `nonce` and `input` produce (see the id scheme in `IInferenceOracle`).
    function computeRequestId(uint64 nonce, bytes calldata input) external pure returns (uint256);

    /// @notice The full price of a request of `modelId` with `callbackGasLimit` callback gas at a committed
    /// callback gas price of `gasPrice` wei: `feeToken` (address(0): ETH) and the `fee` in it, and the exact
    /// `msg.value` (the fee when it is in ETH, plus the callback deposit, which is always ETH). A token fee
    /// is pulled with `transferFrom`: approve the oracle for `fee` first.
    function priceOf(uint32 modelId, uint24 callbackGasLimit, uint256 gasPrice)
        external
        view
        returns (address feeToken, uint256 fee, uint256 value);
}
