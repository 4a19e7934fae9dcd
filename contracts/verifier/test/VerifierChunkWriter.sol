// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {DataChunks} from "../../libraries/DataChunks.sol";

/// @title VerifierChunkWriter
/// @notice Test helper: stores program bytes as data chunks with the same `DataChunks.write` the model
/// registry uses, so verifier tests read programs exactly the way a challenge does.
contract VerifierChunkWriter {
    /// @notice A chunk was written.
    event ChunkWritten(address indexed chunk, uint256 length);

    /// @notice Writes one chunk (at most `DataChunks.MAX_CHUNK` bytes).
    function write(bytes calldata data) external returns (address chunk) {
        chunk = DataChunks.write(data);
        emit ChunkWritten(chunk, data.length);
    }
}
