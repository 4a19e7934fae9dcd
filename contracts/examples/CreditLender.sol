// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {InferenceConsumer} from "../InferenceConsumer.sol";
import {IInferenceOracle} from "../interfaces/IInferenceOracle.sol";

/// @title CreditLender
/// @notice A small lending pool that approves a loan only if a credit-risk model (an EXACT, fraud-provable
/// integer model) predicts the applicant will not default. The applicant submits the model's canonical
/// input (six features: income, debt-to-income, credit history, late payments, utilisation, open accounts,
/// quantised as the model's manifest says). Approved amounts are reserved from the pool and claimed with
/// `claimLoan` (pull payment: the oracle callback never sends ETH to an applicant).
/// @dev The shipped `credit_risk` model is trained on SYNTHETIC data; this contract shows the pattern.
contract CreditLender is InferenceConsumer {
    uint24 public constant CALLBACK_GAS = 120_000;

    uint32 public immutable MODEL_ID;
    uint256 public immutable MAX_LOAN;
    address public immutable OWNER;

    struct Application {
        address applicant;
        uint96 amount;
    }

    mapping(uint256 requestId => Application) public applications;
    mapping(address applicant => uint256) public approved;
    /// @notice Pool liquidity not reserved for approved loans.
    uint256 public available;

    event LoanRequested(uint256 indexed requestId, address indexed applicant, uint256 amount);
    event LoanApproved(uint256 indexed requestId, address indexed applicant, uint256 amount);
    event LoanDeclined(uint256 indexed requestId, address indexed applicant, uint256 amount, bool poolTooSmall);
    event LoanClaimed(address indexed applicant, uint256 amount);
    event PoolFunded(address indexed from, uint256 amount);
    event FeeReclaimed(uint256 indexed requestId, address indexed applicant, uint256 fee);

    error LoanTooLarge(uint256 amount, uint256 maximum);
    error NothingApproved(address applicant);
    error TransferFailed();
    error NotYourApplication(uint256 requestId, address caller);

    constructor(IInferenceOracle oracle, uint32 modelId, uint256 maxLoan) InferenceConsumer(oracle) {
        // Applicants pay in ETH (msg.value); a token-fee model would be paid from this contract's tokens.
        (address feeToken,) = _feeOf(modelId);
        if (feeToken != address(0)) revert TokenFeeModel(modelId, feeToken);
        MODEL_ID = modelId;
        MAX_LOAN = maxLoan;
        OWNER = msg.sender;
    }

    /// @notice Adds liquidity to the pool.
    function fund() external payable {
        available += msg.value;
        emit PoolFunded(msg.sender, msg.value);
    }

    /// @notice Applies for `amount`; send the model's fee as `msg.value`.
    function applyForLoan(uint96 amount, bytes calldata features) external payable returns (uint256 requestId) {
        if (amount > MAX_LOAN) revert LoanTooLarge(amount, MAX_LOAN);
        requestId = _requestInference(MODEL_ID, features, CALLBACK_GAS, msg.value);
        applications[requestId] = Application({applicant: msg.sender, amount: amount});
        emit LoanRequested(requestId, msg.sender, amount);
    }

    /// @notice Sends the caller's approved loans to them.
    function claimLoan() external {
        uint256 amount = approved[msg.sender];
        if (amount == 0) revert NothingApproved(msg.sender);
        approved[msg.sender] = 0;
        emit LoanClaimed(msg.sender, amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert TransferFailed();
    }

    /// @notice Returns the fee of your application if the oracle did not answer it before its deadline.
    function reclaimFee(uint256 requestId) external {
        if (applications[requestId].applicant != msg.sender) revert NotYourApplication(requestId, msg.sender);
        delete applications[requestId];
        (, uint256 fee, uint256 deposit) = _reclaimFee(requestId, payable(msg.sender));
        emit FeeReclaimed(requestId, msg.sender, fee + deposit);
    }

    function _onInferenceResult(uint256 requestId, bytes calldata output) internal override {
        Application memory app = applications[requestId];
        delete applications[requestId];
        bool lowRisk = _outputElement(output, 0, 1) == 0;
        if (lowRisk && app.amount <= available) {
            available -= app.amount;
            approved[app.applicant] += app.amount;
            emit LoanApproved(requestId, app.applicant, app.amount);
        } else {
            emit LoanDeclined(requestId, app.applicant, app.amount, lowRisk);
        }
    }
}
