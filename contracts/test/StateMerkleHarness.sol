// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {StateMerkle} from "../dispute/StateMerkle.sol";

/// @notice Test-only: exposes `StateMerkle` so tests compare it with `oracle.profile.trace`.
contract StateMerkleHarness {
    function tensorHash(bytes calldata data) external pure returns (bytes32) {
        return StateMerkle.tensorHash(data);
    }

    function rootOf(bytes32 leaf, uint256 index, bytes32[] calldata proof, uint256 d) external pure returns (bytes32) {
        return StateMerkle.rootOf(leaf, index, proof, d);
    }

    function singleLeafRoot(bytes32 leaf, uint256 index, uint256 d) external pure returns (bytes32) {
        return StateMerkle.singleLeafRoot(leaf, index, d);
    }

    function depth(uint256 numTensors) external pure returns (uint256) {
        return StateMerkle.depth(numTensors);
    }

    function rangeRoot(bytes calldata data, uint256 first, uint256 len, bytes32[] calldata siblings)
        external
        pure
        returns (bytes32)
    {
        return StateMerkle.rangeRoot(data, first, len, siblings);
    }

    function zeroTensorHash(uint256 len) external pure returns (bytes32) {
        return StateMerkle.zeroTensorHash(len);
    }
}
