// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IFeeToken
/// @notice The ERC-20 calls `InferenceConsumer` makes on a model's fee token (a subset of IERC20, declared here
/// so that a dApp importing the consumer needs nothing outside `contracts/`).
interface IFeeToken {
    function balanceOf(address account) external view returns (uint256);
    function allowance(address owner, address spender) external view returns (uint256);
    function approve(address spender, uint256 amount) external returns (bool);
    function transfer(address to, uint256 amount) external returns (bool);
}
