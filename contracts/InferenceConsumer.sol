// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IFeeToken} from "./interfaces/IFeeToken.sol";
import {IInferenceConsumer} from "./interfaces/IInferenceConsumer.sol";
import {IInferenceOracle} from "./interfaces/IInferenceOracle.sol";
import {IOracleViews} from "./interfaces/IOracleViews.sol";

/// @title InferenceConsumer
/// @notice Base contract for dApps that use the oracle. Inherit it, call `_requestInference` with the
/// request's ETH value, and implement `_onInferenceResult`. Only the oracle can deliver results. Keep the
/// callback within the gas you request: if it runs out or reverts the request is still settled (the operator
/// is paid) and the output stays provable through `ORACLE.isAttestedOutput`.
///
/// Fees in an ERC-20. A model's fee may be in a token fixed at its registration (`priceOf` returns it). For
/// such a model call `_requestInferenceInToken` instead: it pays the fee from THIS contract's token balance: it approves the oracle
/// for exactly the fee, the oracle pulls it, and any allowance left (by a token that does not spend
/// allowances as ERC-20 says) is set back to 0, so the oracle is never left able to pull more. The ETH sent
/// is then only the callback deposit. Collect the fee from your user before (e.g. `transferFrom` the user
/// to this contract) or sponsor it: a function that requests for anyone without collecting lets anyone spend
/// your token balance. Refunds and rewards of token models are credited to this contract in the token
/// (`_reclaimFee` forwards a refunded one, `_withdrawOracleTokenCredits` withdraws them).
abstract contract InferenceConsumer is IInferenceConsumer {
    /// @notice The oracle this consumer trusts.
    IInferenceOracle public immutable ORACLE;

    /// @notice A result (or ETH) was delivered by someone other than the oracle.
    error OnlyOracle(address caller);
    /// @notice The request is neither expired nor refunded: its fee is not owed back.
    error FeeNotRefundable(uint256 requestId, IInferenceOracle.Status status);
    /// @notice The request was made by another account: its refund is not this contract's to forward.
    error NotOurRequest(uint256 requestId, address requester);
    /// @notice Paying a reclaimed fee to its recipient failed.
    error FeeTransferFailed(address to, uint256 amount);
    /// @notice This contract holds `balance` of the model's fee token, less than the `fee` a request costs.
    error FeeTokenBalanceTooLow(address token, uint256 balance, uint256 fee);
    /// @notice The fee token refused an `approve` or `transfer` (reverted or returned false).
    error FeeTokenCallFailed(address token);
    /// @notice The model's fee is in the ERC-20 `feeToken`; this dApp takes its fees in ETH only.
    error TokenFeeModel(uint32 modelId, address feeToken);
    /// @notice `requestId`'s refund was already paid on by `_reclaimFee`.
    error FeeAlreadyReclaimed(uint256 requestId);

    /// @dev Requests whose refund `_reclaimFee` paid on: credits are pooled, so a second payment would come
    /// out of other requests' refunds.
    mapping(uint256 requestId => bool) private _feeReclaimed;

    constructor(IInferenceOracle oracle) {
        ORACLE = oracle;
    }

    /// @inheritdoc IInferenceConsumer
    function onInferenceResult(uint256 requestId, bytes calldata output) external {
        if (msg.sender != address(ORACLE)) revert OnlyOracle(msg.sender);
        _onInferenceResult(requestId, output);
    }

    /// @notice Requests `modelId`, a model whose fee is in ETH, on `input`, sending `value` wei from this
    /// contract's balance: the fee plus the callback deposit, `ORACLE.quoteRequest(modelId, callbackGasLimit,
    /// gasPrice)` for a committed gas price (the callback is skipped at settlement if that price is below the
    /// base fee then). For a model whose fee is in an ERC-20 use `_requestInferenceInToken` (here the oracle
    /// would find no allowance to pull the fee with, and the token would revert).
    function _requestInference(uint32 modelId, bytes memory input, uint24 callbackGasLimit, uint256 value)
        internal
        returns (uint256 requestId)
    {
        return ORACLE.requestInference{value: value}(modelId, input, callbackGasLimit);
    }

    /// @notice Requests `modelId` on `input`, paying its fee in the model's ERC-20 from this contract's token
    /// balance and sending `value` wei, the callback deposit only (`priceOf(...).value`; 0 with no callback).
    /// It approves the oracle for exactly the fee and sets any allowance the token left back to 0. An ETH-fee
    /// model works too (then `value` is the fee plus the deposit, as in `_requestInference`), at the cost of
    /// the fee-asset lookup (~5,200 gas: a view served by the oracle's lens, a cold account).
    function _requestInferenceInToken(uint32 modelId, bytes memory input, uint24 callbackGasLimit, uint256 value)
        internal
        returns (uint256 requestId)
    {
        (address token, uint256 fee) = _feeOf(modelId);
        if (token == address(0)) return ORACLE.requestInference{value: value}(modelId, input, callbackGasLimit);
        uint256 balance = IFeeToken(token).balanceOf(address(this));
        if (balance < fee) revert FeeTokenBalanceTooLow(token, balance, fee);
        // The allowance is 0 here (every request leaves it so), so a plain approve works even for tokens
        // that refuse to change a non-zero allowance.
        _callToken(token, abi.encodeCall(IFeeToken.approve, (address(ORACLE), fee)));
        requestId = ORACLE.requestInference{value: value}(modelId, input, callbackGasLimit);
        // The oracle pulled exactly `fee` (it reverts otherwise); a standard token has spent the allowance.
        if (IFeeToken(token).allowance(address(this), address(ORACLE)) != 0) {
            _callToken(token, abi.encodeCall(IFeeToken.approve, (address(ORACLE), 0)));
        }
    }

    /// @notice The fee asset of `modelId` (address(0): ETH) and its fee in that asset.
    function _feeOf(uint32 modelId) internal view returns (address token, uint256 fee) {
        (token, fee,) = IOracleViews(address(ORACLE)).priceOf(modelId, 0, 0);
    }

    /// @notice Withdraws this contract's ETH oracle credits (refunds of expired requests) to `to`.
    function _withdrawOracleCredits(address payable to) internal {
        ORACLE.withdraw(to);
    }

    /// @notice Withdraws this contract's oracle credits in the ERC-20 `token` (refunded fees of token-fee
    /// models) to `to`.
    function _withdrawOracleTokenCredits(address token, address to) internal {
        ORACLE.withdrawToken(token, to);
    }

    /// @notice Pays back what this contract paid for `requestId`, a request it made that expired unanswered,
    /// to `to`, the person who paid for it: the model's fee in its asset (`token`, address(0) for ETH) and
    /// the callback `deposit` in ETH. The oracle refunds an expired request to its requester, this contract;
    /// this refunds it (if nobody has yet), pulls this contract's credits in, and forwards both amounts.
    /// Each request is paid back once: a second call reverts with `FeeAlreadyReclaimed` (the credits are
    /// pooled, so it would otherwise pay out of other requests' refunds). The caller still decides who `to`
    /// is: check that the caller is the one who paid, as the examples do.
    /// @dev Credits are pooled per asset: every credit this contract holds is a refunded fee owed to someone,
    /// and a model's fee and fee token never change (model versions are immutable), so each reclaim pays
    /// exactly what was paid.
    function _reclaimFee(uint256 requestId, address payable to)
        internal
        returns (address token, uint256 fee, uint256 deposit)
    {
        if (_feeReclaimed[requestId]) revert FeeAlreadyReclaimed(requestId);
        _feeReclaimed[requestId] = true;
        IOracleViews views = IOracleViews(address(ORACLE));
        IInferenceOracle.Status status = views.statusOf(requestId);
        if (status == IInferenceOracle.Status.Expired) ORACLE.refund(requestId);
        else if (status != IInferenceOracle.Status.Refunded) revert FeeNotRefundable(requestId, status);
        IInferenceOracle.RequestView memory request = views.getRequest(requestId);
        if (request.requester != address(this)) revert NotOurRequest(requestId, request.requester);
        (token, fee) = _feeOf(request.modelId);
        deposit = views.callbackGasCharged(request.callbackGasLimit) * views.callbackGasPriceOf(requestId);
        if (views.creditsOf(address(this)) != 0) ORACLE.withdraw(payable(address(this)));
        uint256 eth = deposit;
        if (token == address(0)) {
            eth += fee;
        } else {
            if (views.tokenCreditsOf(address(this), token) != 0) ORACLE.withdrawToken(token, address(this));
            _callToken(token, abi.encodeCall(IFeeToken.transfer, (to, fee)));
        }
        if (eth != 0) {
            (bool ok,) = to.call{value: eth}("");
            if (!ok) revert FeeTransferFailed(to, eth);
        }
    }

    /// @dev Calls the fee token; accepts a `true` return or none (pre-standard tokens), like SafeERC20.
    function _callToken(address token, bytes memory data) private {
        (bool ok, bytes memory ret) = token.call(data);
        if (!ok || (ret.length == 0 ? token.code.length == 0 : !abi.decode(ret, (bool)))) {
            revert FeeTokenCallFailed(token);
        }
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
