// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IInferenceOracle} from "./interfaces/IInferenceOracle.sol";
import {IModelRegistry} from "./interfaces/IModelRegistry.sol";
import {IOperatorStaking} from "./interfaces/IOperatorStaking.sol";
import {IOracleViews} from "./interfaces/IOracleViews.sol";
import {OracleStorage} from "./OracleStorage.sol";

/// @title OracleLens
/// @notice The oracle's read-only views (`IOracleViews`). The oracle creates it and runs its code with
/// DELEGATECALL from its fallback, so every function here reads the oracle's storage through the layout both
/// inherit from `OracleStorage`. Called directly (not through the oracle) it reads its own empty storage.
/// @dev Must stay read-only: no storage write, call, contract creation, log or self-destruct
/// (tests/contracts/test_lens.py reads its bytecode), since under DELEGATECALL a `view` is not enforced.
contract OracleLens is IOracleViews, OracleStorage {
    /// @dev The oracle's `CHALLENGE_WINDOW` and `REQUEST_TIMEOUT` (immutables live in code, not storage).
    uint256 private immutable CHALLENGE_WINDOW;
    uint256 private immutable REQUEST_TIMEOUT;

    constructor(uint256 challengeWindow, uint256 requestTimeout) {
        CHALLENGE_WINDOW = challengeWindow;
        REQUEST_TIMEOUT = requestTimeout;
    }

    /// @inheritdoc IOracleViews
    function statusOf(uint256 requestId) external view returns (IInferenceOracle.Status) {
        Request memory request = _requests[requestId];
        if (request.requester == address(0)) return IInferenceOracle.Status.None;
        return _status(request, _results[requestId]);
    }

    /// @inheritdoc IOracleViews
    function getRequest(uint256 requestId) external view returns (IInferenceOracle.RequestView memory view_) {
        Request memory request = _requests[requestId];
        if (request.requester == address(0)) revert IInferenceOracle.UnknownRequest(requestId);
        Result memory result = _results[requestId];
        view_ = IInferenceOracle.RequestView({
            requester: request.requester,
            modelId: request.modelId,
            callbackGasLimit: request.callbackGasLimit,
            requestedAt: request.requestedAt,
            operator: _operatorAt[result.operatorId],
            submittedAt: result.submittedAt,
            outputHash: bytes32(result.outputHash),
            callbackSucceeded: result.flags & FLAG_CALLBACK_OK != 0,
            status: _status(request, result)
        });
    }

    /// @inheritdoc IOracleViews
    function quoteRequest(uint32 modelId, uint24 callbackGasLimit, uint256 gasPrice) external view returns (uint256) {
        (, , uint256 value) = priceOf(modelId, callbackGasLimit, gasPrice);
        return value;
    }

    /// @inheritdoc IOracleViews
    function priceOf(uint32 modelId, uint24 callbackGasLimit, uint256 gasPrice)
        public
        view
        returns (address feeToken, uint256 fee, uint256 value)
    {
        ModelCore memory model = _modelCore[modelId];
        if (model.inputLength == 0) revert IModelRegistry.UnknownModel(modelId);
        fee = model.fee;
        if (model.flags & MODEL_TOKEN_FEE != 0) feeToken = _feeToken[modelId];
        else value = fee;
        // The committed price is a whole number of GAS_PRICE_UNIT: rounded up.
        value += _callbackGasCharged(callbackGasLimit) * ((gasPrice + GAS_PRICE_UNIT - 1) / GAS_PRICE_UNIT)
            * GAS_PRICE_UNIT;
    }

    /// @inheritdoc IOracleViews
    function callbackGasCharged(uint24 callbackGasLimit) external pure returns (uint256) {
        return _callbackGasCharged(callbackGasLimit);
    }

    /// @inheritdoc IOracleViews
    function callbackGasPriceOf(uint256 requestId) external view returns (uint256) {
        return uint256(_requests[requestId].callbackGasPrice) * GAS_PRICE_UNIT;
    }

    /// @inheritdoc IOracleViews
    function isAttestedOutput(uint256 requestId, bytes calldata output) external view returns (bool) {
        bytes24 stored = _results[requestId].outputHash;
        return stored != bytes24(0) && stored == bytes24(keccak256(output));
    }

    /// @inheritdoc IOracleViews
    function getModel(uint32 modelId) external view returns (IModelRegistry.Model memory) {
        ModelCore memory core = _modelCore[modelId];
        if (core.inputLength == 0) revert IModelRegistry.UnknownModel(modelId);
        ModelMeta storage meta = _modelMeta[modelId];
        return IModelRegistry.Model({
            owner: meta.owner,
            retired: core.flags & MODEL_RETIRED != 0,
            mode: core.mode,
            fee: core.fee,
            bond: core.bond,
            inputLength: core.inputLength,
            outputLength: core.outputLength,
            onnxHash: meta.onnxHash,
            programCommitment: meta.programCommitment,
            uri: meta.uri,
            feeToken: _feeToken[modelId]
        });
    }

    /// @inheritdoc IOracleViews
    function programChunks(uint32 modelId) external view returns (address[] memory) {
        if (_modelCore[modelId].inputLength == 0) revert IModelRegistry.UnknownModel(modelId);
        return _modelMeta[modelId].programChunks;
    }

    /// @inheritdoc IOracleViews
    function modelCount() external view returns (uint32) {
        return _modelCount;
    }

    /// @inheritdoc IOracleViews
    function stakeOf(address operator) external view returns (IOperatorStaking.StakeInfo memory) {
        StakeSlot memory s = _stakes[operator];
        PendingSlot memory p = _pending[operator];
        return IOperatorStaking.StakeInfo({
            staked: s.staked, locked: s.locked, pending: p.amount, withdrawableAt: p.withdrawableAt
        });
    }

    /// @inheritdoc IOracleViews
    function freeStake(address operator) external view returns (uint256) {
        StakeSlot memory s = _stakes[operator];
        return s.staked - s.locked;
    }

    /// @inheritdoc IOracleViews
    function maxAssignmentWeight() external view returns (uint256) {
        return _maxAssignmentWeight;
    }

    /// @inheritdoc IOracleViews
    function creditsOf(address account) external view returns (uint256) {
        return _credits[account] + _stakes[account].credits;
    }

    /// @inheritdoc IOracleViews
    function tokenCreditsOf(address account, address token) external view returns (uint256) {
        return _tokenCredits[token][account];
    }

    /// @inheritdoc IOracleViews
    function computeRequestId(uint64 nonce, bytes calldata input) external pure returns (uint256) {
        return _requestId(nonce, keccak256(input));
    }

    function _status(Request memory request, Result memory result) private view returns (IInferenceOracle.Status) {
        if (result.submittedAt == 0) {
            if (result.flags & FLAG_REFUNDED != 0) return IInferenceOracle.Status.Refunded;
            return block.timestamp < request.requestedAt + REQUEST_TIMEOUT
                ? IInferenceOracle.Status.Pending
                : IInferenceOracle.Status.Expired;
        }
        if (result.flags & FLAG_FRAUD != 0) return IInferenceOracle.Status.FraudProven;
        if (result.flags & FLAG_FINALIZED != 0) return IInferenceOracle.Status.Finalized;
        return block.timestamp < result.submittedAt + CHALLENGE_WINDOW
            ? IInferenceOracle.Status.Submitted
            : IInferenceOracle.Status.Finalizable;
    }
}
