// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IModelRegistry} from "./interfaces/IModelRegistry.sol";

/// @title OracleStorage
/// @notice Every storage variable of the oracle, declared in one place: `ModelRegistry`, `OperatorStaking` and
/// `InferenceOracle` write it, and `OracleLens` (the read-only views, run by the oracle's fallback with
/// DELEGATECALL) reads the very same layout because it inherits this contract and nothing else with storage.
abstract contract OracleStorage {
    // ---------------------------------------------------------------- models (ModelRegistry)

    /// @dev What the request/submit/finalize path needs, packed into one slot (lengths fit 16 bits:
    /// at most `ModelRegistry.MAX_IO_LENGTH`).
    struct ModelCore {
        uint96 fee; // wei per request
        uint96 bond; // wei locked per attestation
        uint16 inputLength; // bytes; 0 means "no such model"
        uint16 outputLength; // bytes
        IModelRegistry.Mode mode; // EXACT or ATTESTED
        uint8 flags; // MODEL_RETIRED (no new requests once set) | MODEL_TOKEN_FEE (fee in `_feeToken`)
        uint16 callbackGasCap; // largest callback gas a request may ask for, in units of 256 gas
    }

    /// @dev Everything else, read only by registration views and the challenge path.
    struct ModelMeta {
        address owner;
        bytes32 onnxHash;
        bytes32 programCommitment;
        string uri;
        address[] programChunks;
        uint256 proofGasBound; // EXACT: bound on the challenge transaction's gas without callback; else 0
    }

    /// @dev `ModelCore.flags`: the owner retired the model.
    uint8 internal constant MODEL_RETIRED = 1;
    /// @dev `ModelCore.flags`: the fee is paid in the ERC-20 `_feeToken[modelId]`, not in ETH.
    uint8 internal constant MODEL_TOKEN_FEE = 2;

    /// @dev 16 bits: a request stores its model id in 16 bits (the 65,536th registration reverts).
    uint16 internal _modelCount;
    mapping(uint32 modelId => ModelCore) internal _modelCore;
    mapping(uint32 modelId => ModelMeta) internal _modelMeta;
    /// @dev The ERC-20 a model's fee is paid in, fixed at registration; read only for MODEL_TOKEN_FEE models.
    mapping(uint32 modelId => address token) internal _feeToken;
    /// @dev Chunks this registry deployed itself (`writeProgramChunk`): contracts created with CREATE whose
    /// runtime code starts with STOP, so nothing can ever run them, let alone self-destruct them or change
    /// their code. No other address is accepted as a chunk: an EOA's code is its EIP-7702 delegation
    /// designator, which its owner rewrites at will, and any other contract is outside our control.
    mapping(address chunk => bool) internal _ownChunk;

    // ---------------------------------------------------------------- stake (OperatorStaking)

    /// @dev Hot path state, one slot per operator: submit locks a bond and finalize releases it and credits
    /// the fee with one SSTORE to this slot. 80-bit stake amounts cap an operator at ~1.2M ETH.
    struct StakeSlot {
        uint80 staked; // active stake, locked bonds included
        uint80 locked; // bonds of open attestations; INVARIANT: locked <= staked
        uint96 credits; // earned fees not yet withdrawn (pull payment, see the oracle's `withdraw`)
    }

    /// @dev Unbonding state and the operator's id, touched by stake / requestUnstake / withdrawStake (and the
    /// id read by submit).
    struct PendingSlot {
        uint96 amount; // requested for withdrawal, still slashable until withdrawn
        uint40 withdrawableAt; // unbonding end
        uint32 rosterIndex; // 1 + the operator's place in the roster (see `_rosterAt`); 0: not listed
        uint24 operatorId; // given at the first stake, never changed nor reused; 0: never staked
    }

    /// @dev A roster place: the operator and its id, so an assignment draw reads one slot for both.
    struct RosterEntry {
        address operator;
        uint24 id;
    }

    /// @dev The request counter shares its slot with the roster's size and weight cap: every request reads
    /// and writes this slot, so picking an assignee reads no extra slot for them.
    uint64 internal _requestNonce;
    /// @dev Operators with stake (listed at their first stake, unlisted when they unstake everything).
    uint32 internal _rosterSize;
    /// @dev At least every listed operator's draw weight, `min(staked, _maxAssignmentWeight)` (the largest
    /// reached; it never decreases): the denominator of the assignment's acceptance test (the oracle's `_assign`).
    uint80 internal _weightCap;
    /// @dev Operator ids given so far (ids run from 1; the 2^24th first stake reverts). A result records its
    /// operator by id, so that the id, the submission time, the flags and the output hash share one slot.
    uint24 internal _operatorCount;
    mapping(uint256 index => RosterEntry) internal _rosterAt;
    mapping(uint24 operatorId => address operator) internal _operatorAt;
    /// @dev Free stake above this draws no more assignment weight (a deploy parameter, set by the constructor):
    /// it keeps `_weightCap` near typical stakes, so one large stake cannot make most draws fail.
    uint256 internal _maxAssignmentWeight;

    mapping(address operator => StakeSlot) internal _stakes;
    mapping(address operator => PendingSlot) internal _pending;

    // ---------------------------------------------------------------- requests (InferenceOracle)

    /// @dev Gas kept back for the checks around the callback (the 63/64 rule is applied on top).
    uint256 internal constant CALLBACK_GAS_RESERVE = 5_000;

    /// @dev Calling back: encoding the payload, the reserve and checks, a cold account, the writes after.
    uint256 internal constant CALLBACK_FIXED_GAS = 20_000;

    /// @notice Callback gas prices are committed in whole units of this many wei (0.001 gwei); a request
    /// stores at most 2^24 - 1 units (16,777 gwei).
    uint256 public constant GAS_PRICE_UNIT = 1e6;

    uint8 internal constant FLAG_FINALIZED = 1;
    uint8 internal constant FLAG_FRAUD = 2;
    uint8 internal constant FLAG_REFUNDED = 4;
    uint8 internal constant FLAG_CALLBACK_OK = 8;
    uint8 internal constant FLAG_DISPUTED = 16; // a dispute game against the claim is open: no finalize

    /// @dev Written once at request; one slot.
    struct Request {
        address requester; // consumer called back at settlement; receives refunds
        uint16 modelId; // the registry holds at most 2^16 - 1 models
        uint24 callbackGasLimit; // exact gas for the callback
        uint24 callbackGasPrice; // committed callback gas price, in units of GAS_PRICE_UNIT wei
        uint32 requestedAt; // submission deadline = requestedAt + REQUEST_TIMEOUT (uint32: until 2106)
    }

    /// @dev Written at request (the assignee), then at submit (or refund); one slot, so a request's lifecycle
    /// writes two fresh slots in all (this and its `Request`). Status is derived from the time and the flags.
    /// `outputHash` keeps the first 24 bytes of keccak256(output): finding a second output with the same 192
    /// bits, the only way to finalize or deliver an output other than the attested one, takes ~2^96 work
    /// even for the operator choosing both (a collision), the level the request id's input binding has.
    struct Result {
        uint24 operatorId; // the assignee's id until a result is submitted, then the attesting operator's; 0: none
        uint32 submittedAt; // 0 = no result; challenge window ends at submittedAt + CHALLENGE_WINDOW (until 2106)
        uint8 flags; // FLAG_* bits
        bytes24 outputHash; // attested output: bytes24(keccak256(output)); 0 once proven wrong by a game
    }

    mapping(uint256 requestId => Request) internal _requests;
    mapping(uint256 requestId => Result) internal _results;
    mapping(address account => uint256) internal _credits;
    /// @dev Credits in a token-fee model's ERC-20 (fees earned, rewarded or refunded); ETH stays in `_credits`.
    mapping(address token => mapping(address account => uint256)) internal _tokenCredits;

    /// @dev Gas units a request with `callbackGasLimit` pays for (see `IOracleViews.callbackGasCharged`).
    function _callbackGasCharged(uint24 callbackGasLimit) internal pure returns (uint256) {
        if (callbackGasLimit == 0) return 0;
        unchecked {
            // < 2^26: no overflow.
            return uint256(callbackGasLimit) + callbackGasLimit / 63 + CALLBACK_FIXED_GAS + CALLBACK_GAS_RESERVE;
        }
    }

    /// @dev The nonce in the top 64 bits keeps ids unique; the low 192 bits bind the input so a challenge
    /// can prove which input it re-executes (second preimages of 192 bits are out of reach).
    function _requestId(uint64 nonce, bytes32 inputHash) internal pure returns (uint256) {
        return (uint256(nonce) << 192) | uint256(uint192(uint256(keccak256(abi.encode(nonce, inputHash)))));
    }
}
