// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IModelRegistry
/// @notice Immutable, versioned model registrations. A registration fixes everything a worker and a
/// challenger need to agree on what "running model M" means: the ONNX file's keccak256, where to fetch it,
/// the canonical I/O sizes, the fee and bond, the verification mode and, for `EXACT` models, the
/// commitment to the integer program stored on-chain. A version is never edited; its owner may retire it
/// so that no new request can use it (requests already made still settle).
interface IModelRegistry {
    /// @notice How results for a model are trusted.
    /// @dev `EXACT`: integer-profile model; a wrong result is proven wrong on-chain by re-execution.
    ///      `ATTESTED`: any ONNX model; results rest on the operator's stake and are final after the window.
    enum Mode {
        EXACT,
        ATTESTED
    }

    /// @notice Parameters of a new model version.
    struct ModelSpec {
        bytes32 onnxHash; // keccak256 of the ONNX file bytes
        bytes32 programCommitment; // keccak256 of the integer program bytes (EXACT), zero for ATTESTED
        uint96 fee; // what a requester pays per inference: wei, or base units of `feeToken`
        uint96 bond; // wei of operator stake locked per attestation (>= minBondRatio * fee for an ETH fee; > 0)
        uint24 inputLength; // bytes of canonical input
        uint24 outputLength; // bytes of canonical output
        Mode mode;
        string uri; // where the ONNX file can be fetched (file://, https://, ...)
        address feeToken; // the ERC-20 the fee is paid in, fixed for the version; address(0): ETH
    }

    /// @notice A registered model version as stored.
    struct Model {
        address owner;
        bool retired;
        Mode mode;
        uint96 fee;
        uint96 bond;
        uint24 inputLength;
        uint24 outputLength;
        bytes32 onnxHash;
        bytes32 programCommitment;
        string uri;
        address feeToken; // address(0): the fee is in ETH
    }

    /// @notice Emitted when a model version is registered (`feeToken`: the fee's ERC-20, address(0) for ETH).
    event ModelRegistered(
        uint32 indexed modelId,
        address indexed owner,
        bytes32 indexed onnxHash,
        Mode mode,
        bytes32 programCommitment,
        uint96 fee,
        uint96 bond,
        uint24 inputLength,
        uint24 outputLength,
        string uri,
        address feeToken
    );
    /// @notice Emitted when the owner retires a model version.
    event ModelRetired(uint32 indexed modelId);
    /// @notice Emitted when a program data chunk is written (see `writeProgramChunk`).
    event ProgramChunkWritten(address indexed chunk, uint256 length);

    /// @notice No model with this id exists.
    error UnknownModel(uint32 modelId);
    /// @notice The model was retired by its owner; it accepts no new requests.
    error ModelIsRetired(uint32 modelId);
    /// @notice Only the model's owner may do this.
    error NotModelOwner(uint32 modelId, address caller);
    /// @notice A model must charge a non-zero fee (the fee funds the operator and the challenger reward).
    error ZeroFee();
    /// @notice The bond is below `minBondRatio * fee`.
    error BondTooLow(uint256 bond, uint256 minimum);
    /// @notice Input and output lengths must be between 1 and `MAX_IO_LENGTH` bytes.
    error InvalidIOLength(uint256 inputLength, uint256 outputLength);
    /// @notice A fee token must be a contract (address(0) stands for ETH).
    error InvalidFeeToken(address token);
    /// @notice The ONNX hash and URI must be set.
    error MissingModelData();
    /// @notice `EXACT` models need program chunks and a commitment; `ATTESTED` models must have neither.
    error ProgramModeMismatch(Mode mode);
    /// @notice `chunk` was not written by this registry's `writeProgramChunk`: its code could change
    /// (an EIP-7702 delegated account, a contract we do not control), so it cannot hold a program.
    error ForeignProgramChunk(address chunk);
    /// @notice The stored program chunks do not hash to the declared commitment.
    error ProgramCommitmentMismatch(bytes32 declared, bytes32 actual);
    /// @notice The verifier cannot execute the program on inputs of `inputLength` bytes (malformed
    /// program, or an input length that does not match it); `reason` is the verifier's revert data.
    error ProgramNotExecutable(bytes reason);
    /// @notice The program's output is not `outputLength` bytes.
    error ProgramOutputLengthMismatch(uint256 expected, uint256 actual);
    /// @notice The bound on the gas of the model's proof transaction (`challenge`, computed from the
    /// program's shapes and widths for every input) exceeds the per-transaction gas cap: some wrong
    /// results of this model could not be proven.
    error ProofGasTooHigh(uint256 bound, uint256 cap);

    /// @notice Registers a new immutable model version.
    /// @param spec the model's parameters.
    /// @param programChunks for `EXACT`: addresses returned by this registry's `writeProgramChunk`, in order
    /// (any other address reverts `ForeignProgramChunk`); empty for `ATTESTED`.
    /// @return modelId the new version's id (ids start at 1).
    function registerModel(ModelSpec calldata spec, address[] calldata programChunks) external returns (uint32 modelId);

    /// @notice Stores `data` on-chain as code (one chunk of an integer program) and returns its address.
    /// @dev Each chunk is at most 24,575 bytes, so large programs take several transactions, each well under
    /// the 128 KiB that many nodes accept.
    function writeProgramChunk(bytes calldata data) external returns (address chunk);

    /// @notice Retires a model version: no new requests; open requests still settle.
    function retireModel(uint32 modelId) external;

    /// @notice The proof-gas figures of a model version.
    /// @return gasBound for `EXACT`: an upper bound on the gas limit a `challenge` of this model needs on
    /// any input, without the consumer callback (0 for `ATTESTED`).
    /// @return callbackGasCap the largest `callbackGasLimit` a request may ask for: for `EXACT`, what
    /// still fits the per-transaction gas cap next to `gasBound` (at most MAX_CALLBACK_GAS).
    function proofGasBound(uint32 modelId) external view returns (uint256 gasBound, uint256 callbackGasCap);

    // `getModel(modelId)`, `programChunks(modelId)` and `modelCount()` are served with the oracle's other views
    // (`IOracleViews`).
}
