// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {InferenceConsumer} from "../InferenceConsumer.sol";
import {IInferenceOracle} from "../interfaces/IInferenceOracle.sol";

/// @title DigitMint
/// @notice A mint gated by a handwritten-digit classifier: draw a digit on an 8x8 grid, say which digit it
/// is, and you get a token only if the oracle's (EXACT, fraud-provable) model recognises the same digit.
/// Each token remembers its digit. The drawing is the model's canonical input (64 pixels, 0..16).
contract DigitMint is ERC721, InferenceConsumer {
    /// @notice Gas the oracle gives `_onInferenceResult` (a mint is ~50k; keep margin).
    uint24 public constant CALLBACK_GAS = 150_000;

    /// @notice The digits model version this mint trusts.
    uint32 public immutable MODEL_ID;
    /// @notice Bytes per element of the model's canonical output.
    uint256 public immutable OUTPUT_WIDTH;

    struct Claim {
        address minter; // who gets the token
        uint8 digit; // the digit the minter says they drew
    }

    mapping(uint256 requestId => Claim) public claims;
    mapping(uint256 tokenId => uint8) public digitOf;
    uint256 public totalMinted;

    /// @notice Emitted when a drawing is sent to the oracle.
    event MintRequested(uint256 indexed requestId, address indexed minter, uint8 digit);
    /// @notice Emitted when the model agrees and a token is minted.
    event DigitMinted(uint256 indexed requestId, address indexed minter, uint256 indexed tokenId, uint8 digit);
    /// @notice Emitted when the model recognises another digit; no token.
    event DigitRejected(uint256 indexed requestId, address indexed minter, uint8 claimed, int256 recognised);

    /// @notice Emitted when a minter takes back the fee of a request the oracle never answered (`fee`: the
    /// model's fee and the callback deposit, in wei).
    event FeeReclaimed(uint256 indexed requestId, address indexed minter, uint256 fee);

    /// @notice Digits are 0..9.
    error NotADigit(uint8 digit);
    /// @notice Only the minter of an unanswered request can take its fee back, once.
    error NotYourRequest(uint256 requestId, address caller);

    constructor(IInferenceOracle oracle, uint32 modelId, uint256 outputWidth)
        ERC721("Recognised Digits", "DIGIT")
        InferenceConsumer(oracle)
    {
        // Minters pay in ETH (msg.value); a token-fee model would be paid from this contract's tokens.
        (address feeToken,) = _feeOf(modelId);
        if (feeToken != address(0)) revert TokenFeeModel(modelId, feeToken);
        MODEL_ID = modelId;
        OUTPUT_WIDTH = outputWidth;
    }

    /// @notice Asks the oracle whether `pixels` shows `digit`; send the model's fee as `msg.value`.
    function requestMint(uint8 digit, bytes calldata pixels) external payable returns (uint256 requestId) {
        if (digit > 9) revert NotADigit(digit);
        requestId = _requestInference(MODEL_ID, pixels, CALLBACK_GAS, msg.value);
        claims[requestId] = Claim({minter: msg.sender, digit: digit});
        emit MintRequested(requestId, msg.sender, digit);
    }

    /// @notice Returns the fee of your request if the oracle did not answer it before its deadline.
    function reclaimFee(uint256 requestId) external {
        if (claims[requestId].minter != msg.sender) revert NotYourRequest(requestId, msg.sender);
        delete claims[requestId];
        (, uint256 fee, uint256 deposit) = _reclaimFee(requestId, payable(msg.sender));
        emit FeeReclaimed(requestId, msg.sender, fee + deposit);
    }

    function _onInferenceResult(uint256 requestId, bytes calldata output) internal override {
        Claim memory claim = claims[requestId];
        delete claims[requestId];
        int256 recognised = _outputElement(output, 0, OUTPUT_WIDTH);
        if (recognised != int256(uint256(claim.digit))) {
            emit DigitRejected(requestId, claim.minter, claim.digit, recognised);
            return;
        }
        uint256 tokenId = ++totalMinted;
        digitOf[tokenId] = claim.digit;
        // _mint, not _safeMint: the callback must not hand control to the minter's contract.
        _mint(claim.minter, tokenId);
        emit DigitMinted(requestId, claim.minter, tokenId, claim.digit);
    }
}
