// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IModelRegistry} from "./interfaces/IModelRegistry.sol";
import {DataChunks} from "./libraries/DataChunks.sol";

/// @title ModelRegistry
/// @notice Immutable model versions (see `IModelRegistry`). Inherited by the oracle so that the hot path
/// (request, submit, finalize) reads a model's fee, bond, I/O sizes and mode with one cold SLOAD and no
/// external call.
abstract contract ModelRegistry is IModelRegistry {
    /// @notice Largest canonical input or output, in bytes (inputs travel in events and calldata).
    uint256 public constant MAX_IO_LENGTH = 32_768;

    /// @notice Bond per attestation must be at least this multiple of the fee (protocol default 4), so a
    /// fraud always costs more than it can earn and a self-challenge always loses money.
    uint256 public immutable MIN_BOND_RATIO;

    /// @dev What the request/submit/finalize path needs, packed into one slot.
    struct ModelCore {
        uint96 fee; // wei per request
        uint96 bond; // wei locked per attestation
        uint24 inputLength; // bytes; 0 means "no such model"
        uint24 outputLength; // bytes
        Mode mode; // EXACT or ATTESTED
        bool retired; // no new requests once set
    }

    /// @dev Everything else, read only by registration views and the challenge path.
    struct ModelMeta {
        address owner;
        bytes32 onnxHash;
        bytes32 programCommitment;
        string uri;
        address[] programChunks;
    }

    uint32 private _modelCount;
    mapping(uint32 modelId => ModelCore) internal _modelCore;
    mapping(uint32 modelId => ModelMeta) internal _modelMeta;
    /// @dev Chunks this registry deployed itself (`writeProgramChunk`): contracts created with CREATE whose
    /// runtime code starts with STOP, so nothing can ever run them, let alone self-destruct them or change
    /// their code. No other address is accepted as a chunk: an EOA's code is its EIP-7702 delegation
    /// designator, which its owner rewrites at will, and any other contract is outside our control.
    mapping(address chunk => bool) private _ownChunk;

    constructor(uint256 minBondRatio) {
        MIN_BOND_RATIO = minBondRatio;
    }

    /// @inheritdoc IModelRegistry
    function registerModel(ModelSpec calldata spec, address[] calldata chunks) external returns (uint32 modelId) {
        if (spec.fee == 0) revert ZeroFee();
        uint256 minimumBond = MIN_BOND_RATIO * spec.fee;
        if (spec.bond < minimumBond) revert BondTooLow(spec.bond, minimumBond);
        if (
            spec.inputLength == 0 || spec.outputLength == 0 || spec.inputLength > MAX_IO_LENGTH
                || spec.outputLength > MAX_IO_LENGTH
        ) revert InvalidIOLength(spec.inputLength, spec.outputLength);
        if (spec.onnxHash == bytes32(0) || bytes(spec.uri).length == 0) revert MissingModelData();
        if (spec.mode == Mode.EXACT) {
            if (chunks.length == 0 || spec.programCommitment == bytes32(0)) revert ProgramModeMismatch(spec.mode);
            // INVARIANT: a program is immutable once registered: every chunk is code this registry wrote.
            for (uint256 i; i < chunks.length; ++i) {
                if (!_ownChunk[chunks[i]]) revert ForeignProgramChunk(chunks[i]);
            }
            // INVARIANT: an EXACT model's on-chain program is exactly the committed one, so a challenge
            // re-executes what the registration promised.
            bytes32 actual = DataChunks.hash(chunks);
            if (actual != spec.programCommitment) revert ProgramCommitmentMismatch(spec.programCommitment, actual);
            // INVARIANT: an EXACT model's program runs on the verifier and yields outputs of the registered
            // length; otherwise every challenge would revert and wrong results could never be proven.
            _checkProgram(chunks, spec.inputLength, spec.outputLength);
        } else if (chunks.length != 0 || spec.programCommitment != bytes32(0)) {
            revert ProgramModeMismatch(spec.mode);
        }

        modelId = ++_modelCount;
        _modelCore[modelId] = ModelCore({
            fee: spec.fee,
            bond: spec.bond,
            inputLength: spec.inputLength,
            outputLength: spec.outputLength,
            mode: spec.mode,
            retired: false
        });
        _modelMeta[modelId] = ModelMeta({
            owner: msg.sender,
            onnxHash: spec.onnxHash,
            programCommitment: spec.programCommitment,
            uri: spec.uri,
            programChunks: chunks
        });
        emit ModelRegistered(
            modelId,
            msg.sender,
            spec.onnxHash,
            spec.mode,
            spec.programCommitment,
            spec.fee,
            spec.bond,
            spec.inputLength,
            spec.outputLength,
            spec.uri
        );
    }

    /// @dev Must revert if the program cannot be executed with inputs of `inputLength` bytes or does not
    /// produce `outputLength` bytes. Implemented by the oracle, which owns the verifier.
    function _checkProgram(address[] calldata chunks, uint256 inputLength, uint256 outputLength) internal view virtual;

    /// @inheritdoc IModelRegistry
    function writeProgramChunk(bytes calldata data) external returns (address chunk) {
        chunk = DataChunks.write(data);
        _ownChunk[chunk] = true;
        emit ProgramChunkWritten(chunk, data.length);
    }

    /// @inheritdoc IModelRegistry
    function retireModel(uint32 modelId) external {
        ModelMeta storage meta = _modelMeta[modelId];
        if (meta.owner == address(0)) revert UnknownModel(modelId);
        if (meta.owner != msg.sender) revert NotModelOwner(modelId, msg.sender);
        _modelCore[modelId].retired = true;
        emit ModelRetired(modelId);
    }

    /// @inheritdoc IModelRegistry
    function getModel(uint32 modelId) external view returns (Model memory) {
        ModelCore memory core = _modelCore[modelId];
        if (core.inputLength == 0) revert UnknownModel(modelId);
        ModelMeta storage meta = _modelMeta[modelId];
        return Model({
            owner: meta.owner,
            retired: core.retired,
            mode: core.mode,
            fee: core.fee,
            bond: core.bond,
            inputLength: core.inputLength,
            outputLength: core.outputLength,
            onnxHash: meta.onnxHash,
            programCommitment: meta.programCommitment,
            uri: meta.uri
        });
    }

    /// @inheritdoc IModelRegistry
    function programChunks(uint32 modelId) external view returns (address[] memory) {
        if (_modelCore[modelId].inputLength == 0) revert UnknownModel(modelId);
        return _modelMeta[modelId].programChunks;
    }

    /// @inheritdoc IModelRegistry
    function modelCount() external view returns (uint32) {
        return _modelCount;
    }
}
