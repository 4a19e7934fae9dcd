// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title StateMerkle
/// @notice The state commitment of the dispute game (protocol §6 v2), mirrored by `oracle.profile.trace`.
///  - A tensor is encoded canonically at 8 bytes per element (big-endian two's complement int64,
///    row-major); its hash is the Merkle root over keccak256 of its `CHUNK_BYTES`-byte chunks (the last
///    one shorter), a level with an odd count padded with bytes32(0).
///  - The state after k ops is the Merkle root of a tree with one leaf per tensor id (2^depth leaves,
///    depth = max(1, ceil(log2 #tensors))): the tensor's hash once it has been computed (the input from the
///    start), bytes32(0) otherwise. Constants stay 0: a step reads them from the program, never from calldata.
library StateMerkle {
    uint256 internal constant CHUNK_BYTES = 2048;

    /// @notice A proof does not have `depth` siblings, or an index is outside the tree.
    error BadProof();

    function tensorHash(bytes memory data) internal pure returns (bytes32 h) {
        uint256 len = data.length;
        uint256 n = (len + CHUNK_BYTES - 1) / CHUNK_BYTES;
        if (n == 0) return keccak256("");
        bytes32[] memory level = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            uint256 start = i * CHUNK_BYTES;
            uint256 size = len - start < CHUNK_BYTES ? len - start : CHUNK_BYTES;
            bytes32 c;
            assembly ("memory-safe") {
                c := keccak256(add(add(data, 0x20), start), size)
            }
            level[i] = c;
        }
        while (n > 1) {
            uint256 m = (n + 1) / 2;
            for (uint256 j; j < m; ++j) {
                bytes32 right = 2 * j + 1 < n ? level[2 * j + 1] : bytes32(0);
                level[j] = _pair(level[2 * j], right);
            }
            n = m;
        }
        return level[0];
    }

    /// @notice Tree depth for `numTensors` leaves.
    function depth(uint256 numTensors) internal pure returns (uint256 d) {
        d = 1;
        while ((uint256(1) << d) < numTensors) ++d;
    }

    /// @notice The root of the tree whose leaf `index` is `leaf`, given its siblings bottom-up.
    function rootOf(bytes32 leaf, uint256 index, bytes32[] memory proof, uint256 d) internal pure returns (bytes32 h) {
        if (proof.length != d || index >> d != 0) revert BadProof();
        h = leaf;
        for (uint256 k; k < d; ++k) {
            h = (index >> k) & 1 == 0 ? _pair(h, proof[k]) : _pair(proof[k], h);
        }
    }

    /// @notice The root of a tree whose only non-zero leaf is `leaf` at `index`.
    function singleLeafRoot(bytes32 leaf, uint256 index, uint256 d) internal pure returns (bytes32 h) {
        h = leaf;
        bytes32 zero;
        for (uint256 k; k < d; ++k) {
            h = (index >> k) & 1 == 0 ? _pair(h, zero) : _pair(zero, h);
            zero = _pair(zero, zero);
        }
    }

    function _pair(bytes32 a, bytes32 b) private pure returns (bytes32 h) {
        assembly ("memory-safe") {
            mstore(0x00, a)
            mstore(0x20, b)
            h := keccak256(0x00, 0x40)
        }
    }
}
