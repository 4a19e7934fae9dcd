// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title DataChunks
/// @notice Code-as-data storage (the SSTORE2 idea): bytes are written once as the runtime code of a tiny
/// contract and read back with EXTCODECOPY, which costs far less than SLOAD per byte. A large blob (an
/// integer-profile program with its weights) is split into chunks of at most `MAX_CHUNK` bytes, each small
/// enough to deploy in one transaction. Every chunk's code starts with a STOP byte so it can never be
/// called usefully; readers skip that byte.
library DataChunks {
    /// @notice Largest payload per chunk: the EIP-170 code size limit minus the STOP prefix.
    uint256 internal constant MAX_CHUNK = 24_575;

    /// @notice Deploying a chunk failed (out of gas, or payload too large).
    error ChunkWriteFailed(uint256 length);
    /// @notice An address given as a chunk holds no data.
    error EmptyChunk(address chunk);

    /// @notice Deploys `data` as a new chunk and returns its address.
    function write(bytes memory data) internal returns (address chunk) {
        if (data.length > MAX_CHUNK) revert ChunkWriteFailed(data.length);
        // Init code: copy the runtime (0x00 ++ data) to memory and return it.
        //   61 <len+1:2>  PUSH2 size | 80 DUP1 | 60 0c PUSH1 12 (init code length) | 3d RETURNDATASIZE(0)
        //   39 CODECOPY | 3d RETURNDATASIZE(0) | f3 RETURN | then 00 (STOP) then data
        bytes memory init = abi.encodePacked(
            hex"61", uint16(data.length + 1), hex"80600c6000396000f3", hex"00", data
        );
        assembly ("memory-safe") {
            chunk := create(0, add(init, 0x20), mload(init))
        }
        if (chunk == address(0)) revert ChunkWriteFailed(data.length);
    }

    /// @notice Reads and concatenates the payloads of `chunks` into memory.
    function read(address[] memory chunks) internal view returns (bytes memory out) {
        uint256 total;
        uint256 n = chunks.length;
        for (uint256 i; i < n; ++i) {
            uint256 size = chunks[i].code.length;
            if (size == 0) revert EmptyChunk(chunks[i]);
            total += size - 1;
        }
        out = new bytes(total);
        uint256 dst;
        assembly ("memory-safe") {
            dst := add(out, 0x20)
        }
        for (uint256 i; i < n; ++i) {
            address c = chunks[i];
            uint256 len = c.code.length - 1;
            assembly ("memory-safe") {
                extcodecopy(c, dst, 1, len)
                dst := add(dst, len)
            }
        }
    }

    /// @notice keccak256 of the concatenated payloads, without keeping them (registration check).
    function hash(address[] memory chunks) internal view returns (bytes32) {
        return keccak256(read(chunks));
    }
}
