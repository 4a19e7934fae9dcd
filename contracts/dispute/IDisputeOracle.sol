// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IDisputeOracle
/// @notice What the oracle exposes to its interactive dispute game (protocol §6, "Dispute game (v2)"):
/// the game opens and closes disputes against a claim; the oracle keeps the money (bond lock, slash,
/// reward, burn) and refuses to finalize a claim while any dispute against it is open.
interface IDisputeOracle {
    /// @notice Only the dispute game may call this.
    error NotDisputeGame(address caller);

    /// @notice The dispute game this oracle trusts (fixed at deployment; zero: models over the cap are refused).
    function DISPUTE_GAME() external view returns (address);

    /// @notice Seconds a result stays challengeable; the game refuses to exist if the unbonding period does
    /// not outlast this window plus its longest game (two full clocks).
    function CHALLENGE_WINDOW() external view returns (uint256);

    /// @notice The per-transaction gas cap of the oracle (a game-provable model's proof bound exceeds it).
    function TX_GAS_CAP() external view returns (uint256);

    /// @notice Called by the game (which checks a dispute like `challenge` before opening it: result
    /// submitted and unsettled, window open, the request's input, a game-provable model) when the first
    /// dispute against a claim opens (`disputed`) and when the last one ends: while disputed the claim
    /// cannot be finalized, so its bond stays locked. A non-zero `challenger` won a dispute: unless an
    /// earlier one did, the claim is settled as fraud and the operator slashed exactly like `challenge`
    /// (half the bond and the fee to `challenger`, half burned; no callback: the game does not compute
    /// the correct output).
    function setDisputed(uint256 requestId, bool disputed, address challenger) external;
}
