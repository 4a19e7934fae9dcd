// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {InferenceConsumer} from "../InferenceConsumer.sol";
import {IInferenceOracle} from "../interfaces/IInferenceOracle.sol";

// Test-only consumers: each exercises one way a callback can behave. Not for deployment.

/// @notice Base: makes requests on behalf of tests and counts deliveries.
abstract contract TestConsumerBase is InferenceConsumer {
    constructor(IInferenceOracle oracle) InferenceConsumer(oracle) {}

    /// @dev Forwards a request paying `msg.value`; stores nothing, so gas figures show the oracle's cost.
    function request(uint32 modelId, bytes calldata input, uint24 gasLimit) external payable returns (uint256 id) {
        return _requestInference(modelId, input, gasLimit, msg.value);
    }

    /// @dev The same for a model whose fee is in an ERC-20, paid from this contract's token balance.
    function requestInToken(uint32 modelId, bytes calldata input, uint24 gasLimit)
        external
        payable
        returns (uint256 id)
    {
        return _requestInferenceInToken(modelId, input, gasLimit, msg.value);
    }

    function withdrawCredits(address payable to) external {
        _withdrawOracleCredits(to);
    }

    receive() external payable override {}
}

/// @notice Does nothing: measures the oracle's own overhead.
contract NoopConsumer is TestConsumerBase {
    constructor(IInferenceOracle oracle) TestConsumerBase(oracle) {}

    function _onInferenceResult(uint256, bytes calldata) internal override {}
}

/// @notice Stores the 32-byte output in one slot: the work peers are usually measured with.
contract StoringConsumer is TestConsumerBase {
    bytes32 public stored;

    constructor(IInferenceOracle oracle) TestConsumerBase(oracle) {}

    function _onInferenceResult(uint256, bytes calldata output) internal override {
        stored = bytes32(output);
    }
}

/// @notice Records what it received (request id, output, delivery count).
contract RecordingConsumer is TestConsumerBase {
    uint256 public deliveries;
    uint256 public lastRequestId;
    bytes public lastOutput;

    constructor(IInferenceOracle oracle) TestConsumerBase(oracle) {}

    function _onInferenceResult(uint256 requestId, bytes calldata output) internal override {
        deliveries += 1;
        lastRequestId = requestId;
        lastOutput = output;
    }
}

/// @notice Always reverts, with a large revert reason (return-data bombing).
contract RevertingConsumer is TestConsumerBase {
    constructor(IInferenceOracle oracle) TestConsumerBase(oracle) {}

    function _onInferenceResult(uint256, bytes calldata) internal pure override {
        assembly {
            revert(0, 100000)
        }
    }
}

/// @notice Burns all the gas it is given.
contract GasHungryConsumer is TestConsumerBase {
    constructor(IInferenceOracle oracle) TestConsumerBase(oracle) {}

    function _onInferenceResult(uint256, bytes calldata) internal pure override {
        while (true) {}
    }
}

/// @notice Records gasleft() on entry, to check the callback gets exactly the requested gas.
contract GasProbeConsumer is TestConsumerBase {
    uint256 public gasAtEntry;

    constructor(IInferenceOracle oracle) TestConsumerBase(oracle) {}

    function _onInferenceResult(uint256, bytes calldata) internal override {
        gasAtEntry = gasleft();
    }
}

/// @notice Tries to re-enter the oracle from its callback (finalize again, withdraw, challenge) and records
/// whether each attempt reverted; then succeeds, so the test sees the callback ran.
contract ReentrantConsumer is TestConsumerBase {
    bool public finalizeReverted;
    bool public withdrawReverted;
    bool public attempted;

    constructor(IInferenceOracle oracle) TestConsumerBase(oracle) {}

    function _onInferenceResult(uint256 requestId, bytes calldata output) internal override {
        attempted = true;
        try ORACLE.finalize(requestId, output) {} catch { finalizeReverted = true; }
        try ORACLE.withdraw(payable(address(this))) {} catch { withdrawReverted = true; }
    }
}

/// @notice Chains a new request from its callback (allowed: requests move no money out).
contract ChainingConsumer is TestConsumerBase {
    uint32 public modelId;
    bytes public nextInput;
    uint256 public chainedRequestId;

    constructor(IInferenceOracle oracle) TestConsumerBase(oracle) {}

    function arm(uint32 modelId_, bytes calldata input) external payable {
        modelId = modelId_;
        nextInput = input;
    }

    function _onInferenceResult(uint256, bytes calldata) internal override {
        if (chainedRequestId == 0) {
            chainedRequestId = _requestInference(modelId, nextInput, 0, address(this).balance);
        }
    }
}

/// @notice A dApp that sponsors its users' fees from its own balance (ETH or the model's fee token) and gives an
/// unanswered request's refund back to whoever asked, once.
contract SponsoringConsumer is InferenceConsumer {
    uint256 public deliveries;
    mapping(uint256 requestId => address payable) public askedBy;

    error NotYourRequest(uint256 requestId, address caller);

    constructor(IInferenceOracle oracle) InferenceConsumer(oracle) {}

    function request(uint32 modelId, bytes calldata input, uint24 gasLimit) external payable returns (uint256 id) {
        id = _requestInferenceInToken(modelId, input, gasLimit, msg.value);
        askedBy[id] = payable(msg.sender);
    }

    function reclaim(uint256 requestId) external returns (address token, uint256 fee, uint256 deposit) {
        if (askedBy[requestId] != msg.sender) revert NotYourRequest(requestId, msg.sender);
        delete askedBy[requestId];
        return _reclaimFee(requestId, payable(msg.sender));
    }

    /// @dev A careless dApp: pays the refund to whoever asked, and keeps its record (so anyone may call again).
    function reclaimKeepingTheRecord(uint256 requestId) external returns (address, uint256, uint256) {
        return _reclaimFee(requestId, askedBy[requestId]);
    }

    function withdrawTokenCredits(address token, address to) external {
        _withdrawOracleTokenCredits(token, to);
    }

    function _onInferenceResult(uint256, bytes calldata) internal override {
        deliveries += 1;
    }
}

/// @notice Forces ETH into a contract without calling it (selfdestruct), for solvency tests.
contract ForceSender {
    constructor(address payable target) payable {
        selfdestruct(target);
    }
}
