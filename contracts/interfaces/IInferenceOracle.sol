// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IModelRegistry} from "./IModelRegistry.sol";
import {IOperatorStaking} from "./IOperatorStaking.sol";

/// @title IInferenceOracle
/// @notice An optimistic inference oracle. The game, in four lines:
///   1. request:  a dApp pays a model's fee and posts an input          -> Pending
///   2. submit:   a staked operator posts the output, locking a bond     -> Submitted (challenge window opens)
///   3. dispute:  inside the window anyone re-executes an EXACT model on-chain; a mismatch slashes the bond,
///                rewards the challenger and delivers the correct output at once  -> FraudProven
///   4. settle:   after the window anyone finalizes: the operator is credited, the consumer called back  -> Finalized
/// With no result before the request deadline the requester reclaims the fee (Expired -> Refunded).
/// Status is derived from stored timestamps and flags, never stored on its own. Challenge is allowed while
/// `block.timestamp < submittedAt + CHALLENGE_WINDOW`; finalize only when `block.timestamp >=` that bound.
///
/// Request ids bind the input: `id = nonce << 192 | uint192(keccak256(abi.encode(nonce, keccak256(input))))`,
/// so a challenger proves which input it re-executes without the oracle storing the input hash.
interface IInferenceOracle is IModelRegistry, IOperatorStaking {
    /// @notice Derived lifecycle status of a request.
    enum Status {
        None, // unknown id
        Pending, // requested, no result yet, deadline not reached
        Expired, // no result by the deadline; the fee can be refunded
        Refunded, // fee returned to the requester
        Submitted, // result posted, challenge window open
        Finalizable, // challenge window over, not yet finalized
        Finalized, // operator paid, consumer called back
        FraudProven // the result was proven wrong; the correct output was delivered
    }

    /// @notice A request as read back (see `getRequest`).
    struct RequestView {
        address requester;
        uint32 modelId;
        uint24 callbackGasLimit;
        uint40 requestedAt;
        address operator; // the assignee (or 0) until a result is submitted, then the attesting operator
        uint40 submittedAt;
        bytes32 outputHash; // the attested output's first 24 bytes of keccak256, zero-padded (0: none)
        bool callbackSucceeded;
        Status status;
    }

    /// @notice Emitted for every request; carries the input so workers and challengers need nothing else.
    /// `assignee` alone may answer until `requestedAt + EXCLUSIVE_PERIOD` (0: anyone, at once).
    event InferenceRequested(
        uint256 indexed requestId,
        uint32 indexed modelId,
        address indexed requester,
        uint96 fee,
        uint24 callbackGasLimit,
        bytes input,
        address assignee
    );
    /// @notice Emitted when an operator attests a result and its bond is locked. The challenge window ends at
    /// this block's timestamp + `CHALLENGE_WINDOW`.
    event ResultSubmitted(uint256 indexed requestId, address indexed operator, bytes output);
    /// @notice Emitted when a result is finalized; `callbackSucceeded` reports the consumer's callback.
    event RequestFinalized(uint256 indexed requestId, address indexed operator, uint96 fee, bool callbackSucceeded);
    /// @notice Emitted when a challenge proves a result wrong.
    event FraudProven(
        uint256 indexed requestId,
        address indexed operator,
        address indexed challenger,
        bytes correctOutput,
        uint256 reward,
        uint256 burned,
        bool callbackSucceeded
    );
    /// @notice Emitted when an expired request's fee is credited back to the requester.
    event RequestRefunded(uint256 indexed requestId, address indexed requester, uint96 fee);
    /// @notice Emitted when an account withdraws its credits.
    event CreditsWithdrawn(address indexed account, address indexed to, uint256 amount);
    /// @notice Emitted when an account withdraws its credits in an ERC-20 fee token.
    event TokenCreditsWithdrawn(address indexed account, address indexed token, address indexed to, uint256 amount);

    /// @notice `msg.value` must equal the model's fee.
    error IncorrectFee(uint256 expected, uint256 sent);
    /// @notice The input is not the model's declared input length.
    error InputLengthMismatch(uint256 expected, uint256 actual);
    /// @notice The output is not the model's declared output length.
    error OutputLengthMismatch(uint256 expected, uint256 actual);
    /// @notice The requested callback gas exceeds the model's cap (`proofGasBound`: MAX_CALLBACK_GAS, or
    /// less for an EXACT model whose proof transaction leaves less room under TX_GAS_CAP).
    error CallbackGasTooHigh(uint256 requested, uint256 maximum);
    /// @notice No request with this id exists.
    error UnknownRequest(uint256 requestId);
    /// @notice The request is reserved for its assignee until `until` (exclusive period); answer after it.
    error NotAssigned(uint256 requestId, address assignee, uint256 until);
    /// @notice The request already has a result (first valid submission wins).
    error AlreadySubmitted(uint256 requestId);
    /// @notice The request's deadline has passed (no more submissions).
    error RequestExpired(uint256 requestId, uint256 deadline);
    /// @notice The request's deadline has not passed yet (no refund).
    error RequestNotExpired(uint256 requestId, uint256 deadline);
    /// @notice The request was already refunded.
    error AlreadyRefunded(uint256 requestId);
    /// @notice The request has no result to finalize or challenge.
    error NotSubmitted(uint256 requestId);
    /// @notice The challenge window is still open (finalize only when `now >= deadline`).
    error ChallengeWindowOpen(uint256 requestId, uint256 deadline);
    /// @notice The challenge window is closed (challenge only when `now < deadline`).
    error ChallengeWindowClosed(uint256 requestId, uint256 deadline);
    /// @notice The request is already finalized (or resolved by a proven fraud).
    error AlreadyFinalized(uint256 requestId);
    /// @notice The output given does not match the attested output's hash.
    error OutputMismatch(uint256 requestId);
    /// @notice The input given is not the request's input.
    error InputMismatch(uint256 requestId);
    /// @notice Only `EXACT` models can be challenged on-chain.
    error NotChallengeable(uint32 modelId);
    /// @notice Re-execution reproduced the attested output: the result is correct.
    error ResultIsCorrect(uint256 requestId);
    /// @notice Batch arrays differ in length.
    error LengthMismatch();
    /// @notice Too little gas was forwarded to give the callback its exact gas limit; retry with more gas.
    error InsufficientGasForCallback(uint256 required);
    /// @notice Deployment parameters are inconsistent (zero periods, unbonding not longer than the challenge
    /// window, bond ratio below 3 (at 2 a self-challenge would cost nothing), callback gas cap of 2^24 or more).
    error InvalidParameters();
    /// @notice The caller has no credits.
    error NoCredits(address account);
    /// @notice The oracle received `received` instead of the `expected` fee: fee-on-transfer (or otherwise
    /// non-standard) tokens are refused.
    error FeeTokenShortfall(address token, uint256 expected, uint256 received);
    /// @notice The callback deposit implies a gas price above 2^48 - 1 wei.
    error CallbackGasPriceTooHigh(uint256 gasPrice);

    /// @notice Requests an inference of `modelId` on `input`. `msg.value` must equal
    /// `quoteRequest(modelId, callbackGasLimit, gasPrice)` for the callback gas price `gasPrice` the requester
    /// commits to: the model's fee plus `callbackGasCharged(callbackGasLimit) * gasPrice`. The callback runs at
    /// settlement only if `gasPrice >= block.basefee` then; whoever settles is paid that deposit for running it.
    /// An unused deposit (callback skipped, request refunded) is credited back to the requester.
    /// @param callbackGasLimit gas given to `requester.onInferenceResult` at settlement (0: no callback).
    /// @return requestId the request's id.
    function requestInference(uint32 modelId, bytes calldata input, uint24 callbackGasLimit)
        external
        payable
        returns (uint256 requestId);

    /// @notice Attests `output` for a pending request, locking the model's bond from the caller's free stake.
    /// During the request's exclusive period only its assignee may (`NotAssigned`); after it, anyone staked.
    function submitResult(uint256 requestId, bytes calldata output) external;

    /// @notice Submits several results; requests that are no longer pending (unknown, answered by someone
    /// else, expired or refunded) or still reserved for another assignee are skipped instead of reverting the batch. An item the caller could have
    /// checked itself still reverts the batch: an output of the wrong length (`OutputLengthMismatch`) or a bond
    /// beyond the caller's free stake (`InsufficientFreeStake`; see `freeStake`).
    /// @return submitted how many results were accepted.
    function submitResults(uint256[] calldata requestIds, bytes[] calldata outputs) external returns (uint256 submitted);

    /// @notice Settles a result after its challenge window: credits the fee to the operator, unlocks the bond,
    /// then calls the consumer with exactly its requested gas. The callback cannot block or undo settlement.
    /// @param output the attested output (from `ResultSubmitted`); checked against its stored hash.
    function finalize(uint256 requestId, bytes calldata output) external;

    /// @notice Finalizes several results; ones that cannot be finalized (unknown or unanswered, already
    /// finalized or fraud-proven, still in their window, or given an output that is not the attested one) are
    /// skipped instead of reverting the batch. A callback given too little gas reverts, as in `finalize`.
    /// @return finalized how many were finalized.
    function finalizeBatch(uint256[] calldata requestIds, bytes[] calldata outputs) external returns (uint256 finalized);

    /// @notice Disputes an `EXACT` result by re-executing the model on-chain. On mismatch: the bond is
    /// slashed, `msg.sender` is credited half the bond plus the fee, the other half is burned, and the correct
    /// output is finalized and delivered at once. On match: reverts with `ResultIsCorrect`.
    /// @param input the request's input (from `InferenceRequested`); checked against the request id.
    function challenge(uint256 requestId, bytes calldata input) external;

    /// @notice Credits the fee of an expired, unanswered request back to its requester (exactly once).
    function refund(uint256 requestId) external;

    /// @notice Sends the caller's credits (fees, rewards, refunds) to `to`.
    function withdraw(address payable to) external;

    /// @notice Sends the caller's credits in the ERC-20 `token` (fees, rewards, refunds of token-fee models)
    /// to `to`.
    function withdrawToken(address token, address to) external;

}
