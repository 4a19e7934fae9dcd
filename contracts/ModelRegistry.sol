// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IModelRegistry} from "./interfaces/IModelRegistry.sol";
import {DataChunks} from "./libraries/DataChunks.sol";
import {OracleStorage} from "./OracleStorage.sol";

/// @title ModelRegistry
/// @notice Immutable model versions (see `IModelRegistry`). Inherited by the oracle so that the hot path
/// (request, submit, finalize) reads a model's fee, bond, I/O sizes and mode with one cold SLOAD and no
/// external call.
abstract contract ModelRegistry is IModelRegistry, OracleStorage {
    /// @notice Largest canonical input or output, in bytes (inputs travel in events and calldata).
    uint256 public constant MAX_IO_LENGTH = 32_768;

    /// @notice Bond per attestation must be at least this multiple of the fee (protocol default 4), so a
    /// fraud always costs more than it can earn and a self-challenge always loses money.
    uint256 public immutable MIN_BOND_RATIO;

    /// @notice Largest callback gas any request may ask for (a model may allow less: `proofGasBound`).
    uint256 public immutable MAX_CALLBACK_GAS;

    constructor(uint256 minBondRatio, uint256 maxCallbackGas) {
        MIN_BOND_RATIO = minBondRatio;
        MAX_CALLBACK_GAS = maxCallbackGas;
    }

    /// @inheritdoc IModelRegistry
    function registerModel(ModelSpec calldata spec, address[] calldata chunks) external returns (uint32 modelId) {
        if (spec.fee == 0) revert ZeroFee();
        // The bond (ETH, the staking asset) is compared with a fee in ETH only: a token fee has no on-chain ETH
        // price here, so for token models the ratio is the owner's promise, visible to every operator. It
        // still needs a non-zero bond, so every attestation stays slashable.
        uint256 minimumBond = spec.feeToken == address(0) ? MIN_BOND_RATIO * spec.fee : 1;
        if (spec.bond < minimumBond) revert BondTooLow(spec.bond, minimumBond);
        if (
            spec.inputLength == 0 || spec.outputLength == 0 || spec.inputLength > MAX_IO_LENGTH
                || spec.outputLength > MAX_IO_LENGTH
        ) revert InvalidIOLength(spec.inputLength, spec.outputLength);
        if (spec.onnxHash == bytes32(0) || bytes(spec.uri).length == 0) revert MissingModelData();
        // address(0): ETH. Any other token must at least be a contract (SafeERC20 treats a call to an empty
        // account as a success, which would let requests pay nothing).
        if (spec.feeToken != address(0) && spec.feeToken.code.length == 0) revert InvalidFeeToken(spec.feeToken);
        uint256 proofGas;
        uint256 callbackCap = MAX_CALLBACK_GAS;
        if (spec.mode == Mode.EXACT) {
            (proofGas, callbackCap) = _checkExact(spec, chunks);
        } else if (chunks.length != 0 || spec.programCommitment != bytes32(0)) {
            revert ProgramModeMismatch(spec.mode);
        }

        modelId = _store(spec, chunks, proofGas, callbackCap);
        _announce(modelId, spec);
    }

    function _store(ModelSpec calldata spec, address[] calldata chunks, uint256 proofGas, uint256 callbackCap)
        private
        returns (uint32 modelId)
    {
        modelId = ++_modelCount;
        _modelCore[modelId] = ModelCore({
            fee: spec.fee,
            bond: spec.bond,
            inputLength: uint16(spec.inputLength),
            outputLength: uint16(spec.outputLength),
            mode: spec.mode,
            flags: spec.feeToken == address(0) ? 0 : MODEL_TOKEN_FEE,
            // Rounded up (the oracle leaves 256 gas of slack for that); MAX_CALLBACK_GAS still applies.
            callbackGasCap: uint16(callbackCap >= 65_535 << 8 ? 65_535 : (callbackCap + 255) >> 8)
        });
        _modelMeta[modelId] = ModelMeta({
            owner: msg.sender,
            onnxHash: spec.onnxHash,
            programCommitment: spec.programCommitment,
            uri: spec.uri,
            programChunks: chunks,
            proofGasBound: proofGas
        });
        if (spec.feeToken != address(0)) _feeToken[modelId] = spec.feeToken;
    }

    function _announce(uint32 modelId, ModelSpec calldata spec) private {
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
            spec.uri,
            spec.feeToken
        );
    }

    function _checkExact(ModelSpec calldata spec, address[] calldata chunks)
        private
        view
        returns (uint256 proofGas, uint256 callbackCap)
    {
        if (chunks.length == 0 || spec.programCommitment == bytes32(0)) revert ProgramModeMismatch(spec.mode);
        // INVARIANT: a program is immutable once registered: every chunk is code this registry wrote.
        for (uint256 i; i < chunks.length; ++i) {
            if (!_ownChunk[chunks[i]]) revert ForeignProgramChunk(chunks[i]);
        }
        // INVARIANT: an EXACT model's on-chain program is exactly the committed one, so a challenge
        // re-executes what the registration promised.
        bytes32 actual = DataChunks.hash(chunks);
        if (actual != spec.programCommitment) revert ProgramCommitmentMismatch(spec.programCommitment, actual);
        // INVARIANT: an EXACT model's program runs on the verifier with inputs and outputs of the
        // registered lengths, and its proof transaction (callback included) fits the per-transaction
        // gas cap for every input; otherwise some wrong results could never be proven.
        return _checkProgram(chunks, spec.inputLength, spec.outputLength);
    }

    /// @dev Must revert if the program cannot be executed with inputs of `inputLength` bytes, does not
    /// produce `outputLength` bytes, or its proof transaction could exceed the per-transaction gas cap.
    /// Returns the bound on the proof transaction's gas (without callback) and the largest callback gas
    /// that still fits the cap (at most MAX_CALLBACK_GAS). Implemented by the oracle, which owns the verifier.
    function _checkProgram(address[] calldata chunks, uint256 inputLength, uint256 outputLength)
        internal
        view
        virtual
        returns (uint256 proofGas, uint256 callbackCap);

    /// @dev Largest callback gas a request for `model` may ask for.
    function _callbackGasCap(ModelCore memory model) internal view returns (uint256 cap) {
        cap = uint256(model.callbackGasCap) << 8;
        if (cap > MAX_CALLBACK_GAS) cap = MAX_CALLBACK_GAS;
    }

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
        _modelCore[modelId].flags |= MODEL_RETIRED;
        emit ModelRetired(modelId);
    }

    /// @inheritdoc IModelRegistry
    function proofGasBound(uint32 modelId) external view returns (uint256 gasBound, uint256 callbackGasCap) {
        ModelCore memory core = _modelCore[modelId];
        if (core.inputLength == 0) revert UnknownModel(modelId);
        return (_modelMeta[modelId].proofGasBound, _callbackGasCap(core));
    }
}
