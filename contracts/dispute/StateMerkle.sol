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

    /// @notice The hash of a tensor of `len` bytes given only its chunks `first, first + 1, ...` (`data`, the
    /// last one shorter if it is the tensor's last) and the siblings the range needs, bottom-up: per level,
    /// the left neighbour if the range starts at an odd index, then the right one if it ends at an even
    /// index that is not the level's last (an odd level's last node pairs with zero, as in `tensorHash`).
    function rangeRoot(bytes memory data, uint256 first, uint256 len, bytes32[] calldata siblings)
        internal
        pure
        returns (bytes32)
    {
        uint256 size = (len + CHUNK_BYTES - 1) / CHUNK_BYTES;
        uint256 last = first + (data.length + CHUNK_BYTES - 1) / CHUNK_BYTES - 1;
        // Whole chunks, the tensor's last one as long as it is.
        if (data.length == 0 || last >= size || data.length != (last + 1 == size ? len : (last + 1) * CHUNK_BYTES) - first * CHUNK_BYTES) {
            revert BadProof();
        }
        return _rangeUp(_chunkHashes(data), first, last, size, siblings);
    }

    function _chunkHashes(bytes memory data) private pure returns (bytes32[] memory level) {
        level = new bytes32[]((data.length + CHUNK_BYTES - 1) / CHUNK_BYTES);
        for (uint256 i; i < level.length; ++i) {
            uint256 start = i * CHUNK_BYTES;
            uint256 end = start + CHUNK_BYTES < data.length ? start + CHUNK_BYTES : data.length;
            bytes32 c;
            assembly ("memory-safe") {
                c := keccak256(add(add(data, 0x20), start), sub(end, start))
            }
            level[i] = c;
        }
    }

    function _rangeUp(bytes32[] memory level, uint256 first, uint256 last, uint256 size, bytes32[] calldata siblings)
        private
        pure
        returns (bytes32)
    {
        uint256 used;
        while (size > 1) {
            bytes32[2] memory edge; // the left and right neighbours
            if (first & 1 == 1) edge[0] = siblings[used++];
            if (last & 1 == 0 && last + 1 < size) edge[1] = siblings[used++];
            uint256 lo = first >> 1;
            for (uint256 j = lo; j <= last >> 1; ++j) {
                level[j - lo] = _pair(
                    2 * j >= first ? level[2 * j - first] : edge[0], 2 * j + 1 <= last ? level[2 * j + 1 - first] : edge[1]
                );
            }
            (first, last, size) = (lo, last >> 1, (size + 1) >> 1);
        }
        if (used != siblings.length) revert BadProof();
        return level[0];
    }

    /// @notice `tensorHash` of `len` zero bytes, in O(log): every node of a level is the same but the last.
    function zeroTensorHash(uint256 len) internal pure returns (bytes32) {
        uint256 n = (len + CHUNK_BYTES - 1) / CHUNK_BYTES;
        bytes32 full;
        bytes32 tail;
        assembly ("memory-safe") {
            let p := mload(0x40)
            calldatacopy(p, calldatasize(), 2048) // zeroes
            full := keccak256(p, 2048)
            tail := keccak256(p, sub(len, mul(sub(n, 1), 2048)))
        }
        while (n > 1) {
            (full, tail) = (_pair(full, full), n & 1 == 1 ? _pair(tail, bytes32(0)) : _pair(full, tail));
            n = (n + 1) >> 1;
        }
        return tail;
    }

    function _pair(bytes32 a, bytes32 b) private pure returns (bytes32 h) {
        assembly ("memory-safe") {
            mstore(0x00, a)
            mstore(0x20, b)
            h := keccak256(0x00, 0x40)
        }
    }
}
