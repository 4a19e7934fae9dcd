// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IDisputeOracle} from "./dispute/IDisputeOracle.sol";
import {IExactVerifier} from "./interfaces/IExactVerifier.sol";
import {IInferenceConsumer} from "./interfaces/IInferenceConsumer.sol";
import {IInferenceOracle} from "./interfaces/IInferenceOracle.sol";
import {ModelRegistry} from "./ModelRegistry.sol";
import {OracleLens} from "./OracleLens.sol";
import {OperatorStaking} from "./OperatorStaking.sol";
import {ProgramChecker} from "./ProgramChecker.sol";

/// @title InferenceOracle
/// @notice Optimistic inference oracle with staked attestations and on-chain fraud proofs for integer
/// models. See `IInferenceOracle` for the game; this contract adds the storage layout and the money flows:
///  - fees are escrowed at request and paid exactly once: to the operator (finalize), to a successful
///    challenger (fraud) or back to the requester (refund); all payouts are pull-payment credits;
///  - a bond of the model's `bond` is locked from the operator's stake per attestation, released at
///    finalize, slashed on fraud: half to the challenger, half burned;
///  - the consumer callback runs last, with exactly its requested gas, and its outcome moves no money.
contract InferenceOracle is IInferenceOracle, IDisputeOracle, ModelRegistry, OperatorStaking {
    using SafeERC20 for IERC20;

    /// @notice Seconds a result can be challenged after submission.
    uint256 public immutable CHALLENGE_WINDOW;
    /// @notice Seconds after a request during which a result may be submitted; afterwards it can be refunded.
    uint256 public immutable REQUEST_TIMEOUT;
    /// @notice Seconds after a request during which only its assignee may answer (0: no assignment).
    uint256 public immutable EXCLUSIVE_PERIOD;
    /// @notice Per-transaction gas cap (EIP-7825: 16,777,216 on Ethereum since Osaka). Every `challenge`
    /// of an EXACT model, consumer callback included, fits it on every input: models whose proof-gas bound
    /// does not fit are refused at registration, and a request's callback gas is limited per model.
    uint256 public immutable TX_GAS_CAP;
    /// @notice The on-chain re-execution engine for EXACT models.
    IExactVerifier public immutable VERIFIER;
    /// @inheritdoc IDisputeOracle
    address public immutable DISPUTE_GAME;
    /// @notice The registration-time check of EXACT programs (deployed by this constructor).
    ProgramChecker public immutable PROGRAM_CHECKER;
    /// @notice The code of the read-only views (`IOracleViews`, deployed by this constructor): the fallback runs
    /// it on this contract's storage. It has no state-changing instruction (a test reads its bytecode).
    address public immutable LENS;

    /// @notice Where burned halves of slashed bonds go (no key can move funds from it).
    address public constant BURN_ADDRESS = 0x000000000000000000000000000000000000dEaD;

    /// @dev A batch finalizes an item only with this much gas left beyond what its callback needs (the
    /// item's reads and writes before the callback), so `_callback`'s own check never reverts the batch.
    uint256 private constant FINALIZE_ITEM_GAS = 40_000;
    /// @dev Draws of the assignment's rejection sampling; when all are rejected the request has no assignee.
    uint256 private constant ASSIGN_DRAWS = 4;

    /// @param verifier the EXACT-mode re-execution engine.
    /// @param challengeWindow seconds a result stays challengeable (e.g. 1 hour; minutes on a devnet).
    /// @param requestTimeout seconds an operator has to answer (e.g. 1 hour).
    /// @param exclusivePeriod seconds only a request's assignee may answer (e.g. 1 minute; 0: none); below
    /// `requestTimeout`.
    /// @param unbondingPeriod seconds before unstaked funds can be withdrawn; must exceed the window.
    /// @param minOperatorStake stake an operator needs to be listed for assignment (at least 1 wei).
    /// @param maxAssignmentWeight free stake above this draws no more assignment weight (at least
    /// `minOperatorStake`, below 2^80).
    /// @param minBondRatio bond >= minBondRatio * fee for every model (protocol default 4).
    /// @param maxCallbackGas cap on a request's callback gas (e.g. 1,000,000; at most 2^24 - 1).
    /// @param txGasCap per-transaction gas cap every proof transaction must fit (16,777,216 on Ethereum).
    /// @param disputeGame the dispute game (protocol §6 v2) trusted to settle disputes of game-provable
    /// models; its address is predicted by the deployer (it is deployed next, given this oracle's address).
    /// Zero: no game, models over the cap are refused.
    constructor(
        IExactVerifier verifier,
        uint256 challengeWindow,
        uint256 requestTimeout,
        uint256 exclusivePeriod,
        uint256 unbondingPeriod,
        uint256 minOperatorStake,
        uint256 maxAssignmentWeight,
        uint256 minBondRatio,
        uint256 maxCallbackGas,
        uint256 txGasCap,
        address disputeGame
    ) ModelRegistry(minBondRatio, maxCallbackGas) OperatorStaking(unbondingPeriod, minOperatorStake, maxAssignmentWeight) {
        // INVARIANT: unbonding outlasts the window, so stake backing an open result cannot escape a slash.
        if (
            challengeWindow == 0 || requestTimeout == 0 || unbondingPeriod <= challengeWindow || minBondRatio < 3
                || maxCallbackGas >= 2 ** 24 || txGasCap < 1_000_000 || exclusivePeriod >= requestTimeout
                || minOperatorStake == 0 || maxAssignmentWeight < minOperatorStake || maxAssignmentWeight >= 2 ** 80
        ) revert InvalidParameters();
        VERIFIER = verifier;
        CHALLENGE_WINDOW = challengeWindow;
        REQUEST_TIMEOUT = requestTimeout;
        EXCLUSIVE_PERIOD = exclusivePeriod;
        TX_GAS_CAP = txGasCap;
        DISPUTE_GAME = disputeGame;
        LENS = address(new OracleLens(challengeWindow, requestTimeout));
        PROGRAM_CHECKER = new ProgramChecker(
            verifier, disputeGame, txGasCap, maxCallbackGas, CALLBACK_FIXED_GAS + CALLBACK_GAS_RESERVE
        );
    }

    // ---------------------------------------------------------------- requests

    /// @inheritdoc IInferenceOracle
    /// @dev Not `nonReentrant` on purpose: a consumer may chain a new request from its callback, and a
    /// request moves no money out. It only writes a fresh record.
    function requestInference(uint32 modelId, bytes calldata input, uint24 callbackGasLimit)
        external
        payable
        returns (uint256 requestId)
    {
        ModelCore memory model = _modelCore[modelId];
        if (model.inputLength == 0) revert UnknownModel(modelId);
        if (model.flags != 0) {
            if (model.flags & MODEL_RETIRED != 0) revert ModelIsRetired(modelId);
            // A token fee is pulled below; msg.value carries only the callback deposit (gas is paid in ETH).
            model.fee = 0;
        }
        // The callback deposit is what the request pays above the fee: _callbackGasCharged(limit) * price,
        // the price a whole number of GAS_PRICE_UNIT.
        uint256 units;
        if (msg.value != model.fee) {
            // unchecked: perUnit < 2^47 (callbackGasLimit < 2^24), msg.value >= fee is checked first, and
            // units * perUnit <= msg.value - fee by the floor division.
            unchecked {
                uint256 perUnit = _callbackGasCharged(callbackGasLimit) * GAS_PRICE_UNIT;
                if (msg.value < model.fee || perUnit == 0) revert IncorrectFee(model.fee, msg.value);
                units = (msg.value - model.fee) / perUnit;
                uint256 expected = model.fee + units * perUnit;
                if (expected != msg.value) revert IncorrectFee(expected, msg.value);
            }
            if (units > type(uint24).max) revert CallbackGasPriceTooHigh(units * GAS_PRICE_UNIT);
        }
        if (input.length != model.inputLength) revert InputLengthMismatch(model.inputLength, input.length);
        // INVARIANT: for an EXACT model, a challenge with this callback still fits TX_GAS_CAP.
        uint256 callbackCap = _callbackGasCap(model);
        if (callbackGasLimit > callbackCap) revert CallbackGasTooHigh(callbackGasLimit, callbackCap);

        uint64 nonce = ++_requestNonce;
        requestId = _requestId(nonce, keccak256(input));
        _requests[requestId] = Request({
            requester: msg.sender,
            modelId: uint16(modelId), // modelId <= the registry's uint16 count: the model exists
            callbackGasLimit: callbackGasLimit,
            callbackGasPrice: uint24(units),
            requestedAt: uint32(block.timestamp)
        });
        RosterEntry memory assignee = _assign(requestId, model.bond);
        if (assignee.id != 0) _results[requestId].operatorId = assignee.id;
        // Interactions last: the request is recorded before the token (chosen by the model's owner) runs.
        uint96 fee = model.fee;
        if (model.flags != 0) fee = _pullFee(modelId);
        emit InferenceRequested(requestId, modelId, msg.sender, fee, callbackGasLimit, input, assignee.operator);
    }

    /// @dev Pulls a token model's fee from the requester; returns it. The oracle's balance must grow by exactly
    /// the fee: a token that takes a cut on transfer (or otherwise moves a different amount) is refused, so
    /// escrowed token fees always equal what the oracle holds for them.
    function _pullFee(uint32 modelId) private returns (uint96 fee) {
        fee = _modelCore[modelId].fee;
        IERC20 token = IERC20(_feeToken[modelId]);
        uint256 before = token.balanceOf(address(this));
        token.safeTransferFrom(msg.sender, address(this), fee);
        uint256 received = token.balanceOf(address(this)) - before;
        if (received != fee) revert FeeTokenShortfall(address(token), fee, received);
    }

    /// @dev Credits `amount` of `modelId`'s fee to `account`: in its token, or in ETH credits when the fee is
    /// in ETH.
    function _creditFee(address account, uint32 modelId, uint256 amount) private {
        if (_modelCore[modelId].flags & MODEL_TOKEN_FEE != 0) _tokenCredits[_feeToken[modelId]][account] += amount;
        else _credits[account] += amount;
    }

    // ---------------------------------------------------------------- results

    /// @inheritdoc IInferenceOracle
    /// @dev No `nonReentrant`: submission makes no external call, so there is nothing to re-enter from.
    function submitResult(uint256 requestId, bytes calldata output) external {
        // First valid submission wins: a late one reverts after one SLOAD.
        Result memory result = _results[requestId];
        if (result.submittedAt != 0) revert AlreadySubmitted(requestId);
        _submit(requestId, output, result.operatorId, _pending[msg.sender].operatorId);
    }

    /// @inheritdoc IInferenceOracle
    function submitResults(uint256[] calldata requestIds, bytes[] calldata outputs)
        external
        returns (uint256 submitted)
    {
        if (requestIds.length != outputs.length) revert LengthMismatch();
        uint24 senderId = _pending[msg.sender].operatorId;
        for (uint256 i; i < requestIds.length; ++i) {
            uint256 id = requestIds[i];
            Result memory result = _results[id];
            Request memory request = _requests[id];
            // Lost races, expired requests and others' assignments are skipped, so one late answer cannot
            // sink the batch.
            if (
                result.submittedAt != 0 || result.flags != 0 || request.requester == address(0)
                    || block.timestamp >= request.requestedAt + REQUEST_TIMEOUT
                    || _reserved(request, result.operatorId, senderId)
            ) continue;
            _submit(id, outputs[i], result.operatorId, senderId);
            ++submitted;
        }
    }

    /// @dev `senderId` is the caller's operator id (0 if it never staked: it then has no stake to lock a bond
    /// with, and every model's bond is non-zero, so it cannot attest).
    function _submit(uint256 requestId, bytes calldata output, uint24 assigneeId, uint24 senderId) private {
        Request memory request = _requests[requestId];
        if (request.requester == address(0)) revert UnknownRequest(requestId);
        uint256 deadline = request.requestedAt + REQUEST_TIMEOUT;
        // Also covers refunded requests: a refund is only possible once this deadline has passed.
        if (block.timestamp >= deadline) revert RequestExpired(requestId, deadline);
        // INVARIANT: during the exclusive period only the assignee answers, so nobody can copy its output.
        if (_reserved(request, assigneeId, senderId)) {
            revert NotAssigned(requestId, _operatorAt[assigneeId], request.requestedAt + EXCLUSIVE_PERIOD);
        }
        // Only two fields of the model's slot: no memory copy of the whole struct (hot path).
        ModelCore storage model = _modelCore[request.modelId];
        (uint256 outputLength, uint96 bond) = (model.outputLength, model.bond);
        if (output.length != outputLength) revert OutputLengthMismatch(outputLength, output.length);

        _lockBond(msg.sender, bond);
        _results[requestId] = Result({
            operatorId: senderId,
            submittedAt: uint32(block.timestamp),
            flags: 0,
            outputHash: bytes24(keccak256(output))
        });
        emit ResultSubmitted(requestId, msg.sender, output);
    }

    // ---------------------------------------------------------------- settlement

    /// @inheritdoc IInferenceOracle
    function finalize(uint256 requestId, bytes calldata output) external nonReentrant {
        Result memory result = _results[requestId];
        if (result.submittedAt == 0) _revertNoResult(requestId);
        if (result.flags & FLAG_FINALIZED != 0) revert AlreadyFinalized(requestId);
        uint256 deadline = result.submittedAt + CHALLENGE_WINDOW;
        // A claim under an open dispute game is still being challenged: same error as inside the window.
        if (block.timestamp < deadline || result.flags & FLAG_DISPUTED != 0) {
            revert ChallengeWindowOpen(requestId, deadline);
        }
        _finalize(requestId, output, result);
    }

    /// @inheritdoc IInferenceOracle
    function finalizeBatch(uint256[] calldata requestIds, bytes[] calldata outputs)
        external
        nonReentrant
        returns (uint256 finalized)
    {
        if (requestIds.length != outputs.length) revert LengthMismatch();
        for (uint256 i; i < requestIds.length; ++i) {
            uint256 id = requestIds[i];
            Result memory result = _results[id];
            // Skipped, so one bad item cannot sink the batch: no result, already settled (finalized, or fraud
            // proven), window still open, an output that is not the attested one (`OutputMismatch` in
            // `finalize`), or a callback the gas left cannot give its full limit (`InsufficientGasForCallback`
            // in `finalize`): such an item stays finalizable, by itself or in a batch given more gas.
            if (
                result.submittedAt == 0 || result.flags & (FLAG_FINALIZED | FLAG_DISPUTED) != 0
                    || block.timestamp < result.submittedAt + CHALLENGE_WINDOW
                    || bytes24(keccak256(outputs[i])) != result.outputHash
            ) continue;
            // Only an item with a callback to run is checked: without one, too little gas is an ordinary
            // out-of-gas revert, which keeps gas estimation of the batch exact.
            uint256 callbackGas = _callbackGasNeeded(_requests[id]);
            if (callbackGas != 0 && !_enoughGasFor(callbackGas + FINALIZE_ITEM_GAS)) continue;
            _finalize(id, outputs[i], result);
            ++finalized;
        }
    }

    function _finalize(uint256 requestId, bytes calldata output, Result memory result) private {
        if (bytes24(keccak256(output)) != result.outputHash) revert OutputMismatch(requestId);
        Request memory request = _requests[requestId];
        ModelCore memory model = _modelCore[request.modelId];
        address operator = _operatorAt[result.operatorId];

        // Effects first: once these are written the request is settled whatever the callback does.
        _results[requestId].flags = FLAG_FINALIZED;
        // The settler is paid the callback deposit for running the callback (with the fee, in one write, when
        // it is the operator); a skipped callback's deposit goes back to the requester.
        uint256 deposit = _payDeposit(request);
        if (deposit != 0 && msg.sender != operator) {
            _credits[msg.sender] += deposit;
            deposit = 0;
        }
        if (model.flags & MODEL_TOKEN_FEE == 0) {
            unchecked {
                deposit += model.fee; // < 2^96 + 2^70
            }
        } else {
            _tokenCredits[_feeToken[request.modelId]][operator] += model.fee;
        }
        _releaseBondAndCredit(operator, model.bond, deposit);

        bool ok = _callback(request, requestId, output);
        // Only a record of the callback's outcome; guarded by nonReentrant and moves no money.
        if (ok) _results[requestId].flags = FLAG_FINALIZED | FLAG_CALLBACK_OK;
        emit RequestFinalized(requestId, operator, model.fee, ok);
    }

    /// @inheritdoc IInferenceOracle
    function challenge(uint256 requestId, bytes calldata input) external nonReentrant {
        Result memory result = _results[requestId];
        if (result.submittedAt == 0) _revertNoResult(requestId);
        if (result.flags & FLAG_FINALIZED != 0) revert AlreadyFinalized(requestId);
        uint256 deadline = result.submittedAt + CHALLENGE_WINDOW;
        if (block.timestamp >= deadline) revert ChallengeWindowClosed(requestId, deadline);
        if (_requestId(uint64(requestId >> 192), keccak256(input)) != requestId) revert InputMismatch(requestId);
        uint32 modelId = _requests[requestId].modelId;
        if (_modelCore[modelId].mode != Mode.EXACT) revert NotChallengeable(modelId);

        bytes memory correct = VERIFIER.executeStored(_modelMeta[modelId].programChunks, input);
        bytes24 correctHash = bytes24(keccak256(correct));
        if (correctHash == result.outputHash) revert ResultIsCorrect(requestId);

        _results[requestId].outputHash = correctHash;
        _fraud(requestId, _operatorAt[result.operatorId], msg.sender, correct);
    }

    // ---------------------------------------------------------------- dispute game (§6 v2)

    /// @inheritdoc IDisputeOracle
    function setDisputed(uint256 requestId, bool disputed, address challenger) external {
        // No `nonReentrant`: only the trusted game calls, and a game's fraud makes no callback (only the
        // burn transfer to a fixed address leaves).
        if (msg.sender != DISPUTE_GAME) revert NotDisputeGame(msg.sender);
        Result storage result = _results[requestId];
        // Settled by an earlier won dispute: nothing left to slash or to hold.
        if (result.flags & FLAG_FRAUD != 0) return;
        if (challenger != address(0)) {
            // The attested output is proven wrong: it is no longer attested (the correct one is not known).
            result.outputHash = 0;
            return _fraud(requestId, _operatorAt[result.operatorId], challenger, "");
        }
        // An open claim has no other flag set (finalize and fraud are refused or returned above).
        result.flags = disputed ? FLAG_DISPUTED : 0;
    }

    /// @dev Settles `requestId` as fraud: the bond slashed, half of it and the fee to `challenger` (the
    /// requester still receives `correct`), half burned, then the callback with `correct`. Effects first:
    /// the request is resolved before any value or control leaves. A dispute game proves fraud without
    /// computing the output: `correct` is empty and there is no callback.
    function _fraud(uint256 requestId, address operator, address challenger, bytes memory correct) private {
        Request memory request = _requests[requestId];
        ModelCore memory model = _modelCore[request.modelId];
        _results[requestId].flags = FLAG_FINALIZED | FLAG_FRAUD;
        _slashBond(operator, model.bond, requestId);
        uint256 burned = model.bond / 2;
        // The reward is half the bond (ETH, the staking asset) plus the fee, in the fee's asset; `reward` in
        // the event is the ETH part.
        uint256 reward = model.bond - burned;
        if (model.flags & MODEL_TOKEN_FEE == 0) reward += model.fee;
        else _tokenCredits[_feeToken[request.modelId]][challenger] += model.fee;
        // The callback deposit goes to the challenger when the correct output is delivered (its gas is spent
        // here); a game's fraud delivers nothing, so the requester gets its deposit back.
        uint256 deposit;
        if (correct.length != 0) {
            deposit = _payDeposit(request);
        } else {
            uint256 unused = _deposit(request);
            if (unused != 0) _credits[request.requester] += unused;
        }
        _credits[challenger] += reward + deposit;
        (bool sent,) = BURN_ADDRESS.call{value: burned}("");
        if (!sent) revert TransferFailed(BURN_ADDRESS, burned);
        bool ok = correct.length != 0 && _callback(request, requestId, correct);
        if (ok) _results[requestId].flags = FLAG_FINALIZED | FLAG_FRAUD | FLAG_CALLBACK_OK;
        emit FraudProven(requestId, operator, challenger, correct, reward, burned, ok);
    }

    /// @inheritdoc IInferenceOracle
    function refund(uint256 requestId) external nonReentrant {
        Request memory request = _requests[requestId];
        if (request.requester == address(0)) revert UnknownRequest(requestId);
        Result memory result = _results[requestId];
        if (result.submittedAt != 0) revert AlreadySubmitted(requestId);
        if (result.flags & FLAG_REFUNDED != 0) revert AlreadyRefunded(requestId);
        uint256 deadline = request.requestedAt + REQUEST_TIMEOUT;
        if (block.timestamp < deadline) revert RequestNotExpired(requestId, deadline);

        uint96 fee = _modelCore[request.modelId].fee;
        _results[requestId].flags = FLAG_REFUNDED;
        // The callback deposit goes back too: no callback will ever run.
        _creditFee(request.requester, request.modelId, fee);
        uint256 deposit = _deposit(request);
        if (deposit != 0) _credits[request.requester] += deposit;
        emit RequestRefunded(requestId, request.requester, fee);
    }

    /// @inheritdoc IInferenceOracle
    function withdraw(address payable to) external nonReentrant {
        uint256 amount = _credits[msg.sender] + _takeOperatorCredits(msg.sender);
        if (amount == 0) revert NoCredits(msg.sender);
        _credits[msg.sender] = 0;
        emit CreditsWithdrawn(msg.sender, to, amount);
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert TransferFailed(to, amount);
    }

    /// @inheritdoc IInferenceOracle
    function withdrawToken(address token, address to) external nonReentrant {
        uint256 amount = _tokenCredits[token][msg.sender];
        if (amount == 0) revert NoCredits(msg.sender);
        _tokenCredits[token][msg.sender] = 0;
        emit TokenCreditsWithdrawn(msg.sender, token, to, amount);
        IERC20(token).safeTransfer(to, amount);
    }

    // ---------------------------------------------------------------- views

    /// @notice Serves `IOracleViews` (any selector not defined here) from `LENS`'s code, on this storage.
    /// @dev DELEGATECALL of a fixed address this constructor created; the lens only reads (no SSTORE, CALL,
    /// CREATE, LOG or SELFDESTRUCT in its code), so this runs no code that could change the oracle's state.
    fallback() external {
        address lens = LENS;
        // Not memory-safe on purpose: it copies calldata and return data from offset 0 and never returns to
        // Solidity code.
        assembly {
            calldatacopy(0, 0, calldatasize())
            let ok := delegatecall(gas(), lens, 0, calldatasize(), 0, 0)
            returndatacopy(0, 0, returndatasize())
            if iszero(ok) { revert(0, returndatasize()) }
            return(0, returndatasize())
        }
    }







    // ---------------------------------------------------------------- internals

    /// @dev Registration-time check of an EXACT program (see `ModelRegistry`), by `PROGRAM_CHECKER`.
    function _checkProgram(address[] calldata chunks, uint256 inputLength, uint256 outputLength)
        internal
        view
        override
        returns (uint256, uint256)
    {
        return PROGRAM_CHECKER.check(chunks, inputLength, outputLength);
    }

    function _revertNoResult(uint256 requestId) private view {
        if (_requests[requestId].requester == address(0)) revert UnknownRequest(requestId);
        revert NotSubmitted(requestId);
    }

    /// @dev Whether `request` is still reserved for its assignee (`assigneeId`) and the caller (`senderId`) is
    /// someone else.
    function _reserved(Request memory request, uint24 assigneeId, uint24 senderId) private view returns (bool) {
        return assigneeId != senderId && assigneeId != 0 && block.timestamp < request.requestedAt + EXCLUSIVE_PERIOD;
    }

    /// @dev Picks `requestId`'s assignee among listed operators with at least `bond` free stake, with a
    /// probability proportional to free stake up to `_maxAssignmentWeight`: each draw takes a roster slot
    /// uniformly and accepts its operator with probability min(free / `_weightCap`, 1) (rejection sampling;
    /// `_weightCap` is the largest weight, so a stake above it is drawn as if it were it).
    /// Seed: this block's RANDAO mix and the request id (protocol §Assignment argues who can bias it).
    /// Returns an empty entry (no assignee: anyone answers at once) if assignment is off or every draw is
    /// rejected.
    function _assign(uint256 requestId, uint256 bond) private view returns (RosterEntry memory none) {
        uint256 size = _rosterSize;
        if (EXCLUSIVE_PERIOD == 0 || size == 0) return none;
        uint256 cap = _weightCap;
        uint256 seed = uint256(keccak256(abi.encode(block.prevrandao, requestId)));
        for (uint256 i; i < ASSIGN_DRAWS; ++i) {
            RosterEntry memory entry = _rosterAt[seed % size];
            uint256 free = _freeStake(entry.operator);
            // Low and high 128 bits are independent draws: the slot, then the acceptance.
            if (free >= bond && free > (seed >> 128) % cap) return entry;
            seed = uint256(keccak256(abi.encode(seed)));
        }
    }


    /// @dev Gas the callback of a settlement will be given: 0 when it is skipped (no gas asked, or a committed
    /// price below the base fee: the requester did not pay for gas at today's price, and the settler never
    /// pays for someone else's callback).
    function _callbackGasNeeded(Request memory request) private view returns (uint256) {
        return _callbackRuns(request) ? request.callbackGasLimit : 0;
    }

    /// @dev Whether settlement calls the requester back: it asked for gas, paid for it at a price not below
    /// today's base fee, and has code.
    function _callbackRuns(Request memory request) private view returns (bool) {
        return request.callbackGasLimit != 0 && uint256(request.callbackGasPrice) * GAS_PRICE_UNIT >= block.basefee
            && request.requester.code.length != 0;
    }

    /// @dev Settles the callback deposit: returns what is owed to the settler (all of it when the callback
    /// will be called: its gas is spent whatever the consumer does), or credits it back to the requester
    /// and returns 0 when the callback is skipped.
    function _payDeposit(Request memory request) private returns (uint256 deposit) {
        deposit = _deposit(request);
        if (deposit != 0 && !_callbackRuns(request)) {
            _credits[request.requester] += deposit;
            deposit = 0;
        }
    }

    /// @dev The callback deposit `request` paid above the fee.
    function _deposit(Request memory request) private pure returns (uint256) {
        unchecked {
            // < 2^26 * 2^24 * 2^20: no overflow.
            return _callbackGasCharged(request.callbackGasLimit) * request.callbackGasPrice * GAS_PRICE_UNIT;
        }
    }

    /// @dev Calls the consumer with exactly `callbackGasLimit` gas, after all state changes. Reverts (instead
    /// of silently starving the callback) if the caller forwarded too little gas: by the 63/64 rule the
    /// callee would otherwise get less than it asked for and a griefer could fail it on purpose.
    function _callback(Request memory request, uint256 requestId, bytes memory output) private returns (bool ok) {
        uint256 gasLimit = request.callbackGasLimit;
        address target = request.requester;
        if (!_callbackRuns(request)) return false;
        bytes memory payload = abi.encodeCall(IInferenceConsumer.onInferenceResult, (requestId, output));
        if (!_enoughGasFor(gasLimit)) {
            revert InsufficientGasForCallback(gasLimit + gasLimit / 63 + CALLBACK_GAS_RESERVE);
        }
        assembly ("memory-safe") {
            // No return data is copied: a consumer cannot grief with a huge revert reason.
            ok := call(gasLimit, target, 0, add(payload, 0x20), mload(payload), 0, 0)
        }
    }

    /// @dev True when a CALL made right after this check can forward `gasLimit` in full: at most
    /// g - g/64 of the remaining gas g is forwarded (EIP-150), after a small reserve for the code between.
    function _enoughGasFor(uint256 gasLimit) private view returns (bool enough) {
        assembly ("memory-safe") {
            let g := gas()
            if gt(g, CALLBACK_GAS_RESERVE) {
                g := sub(g, CALLBACK_GAS_RESERVE)
                enough := gt(sub(g, div(g, 64)), gasLimit)
            }
        }
    }
}
