// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IOperatorStaking
/// @notice Operators stake ETH; each attestation locks a bond from free stake until the result is finalized
/// (bond released) or proven fraudulent (bond slashed). Unstaking is two-step: `requestUnstake` moves free
/// stake to a pending withdrawal, claimable with `withdrawStake` after `UNBONDING_PERIOD`. The unbonding
/// period outlasts the challenge window plus the longest dispute, and pending stake stays slashable, so an
/// operator cannot escape a slash by unstaking just before it. Only the oracle's fraud path slashes.
interface IOperatorStaking {
    /// @notice An operator's stake.
    struct StakeInfo {
        uint96 staked; // active stake, locked bonds included
        uint96 locked; // part of `staked` backing open attestations
        uint96 pending; // requested for withdrawal, still slashable
        uint40 withdrawableAt; // when `pending` can be withdrawn
    }

    /// @notice Seconds between `requestUnstake` and `withdrawStake`.
    function UNBONDING_PERIOD() external view returns (uint256);

    /// @notice Stake an operator needs to be listed for assignment: listed by `stake` once its stake reaches
    /// it, unlisted by `requestUnstake` once it falls below. Any operator with stake for the bond attests
    /// requests open to all (unassigned, or past their exclusive period).
    function MIN_OPERATOR_STAKE() external view returns (uint256);

    /// @notice Emitted when an operator adds stake.
    event Staked(address indexed operator, uint256 amount, uint256 totalStaked);
    /// @notice Emitted when an operator starts unbonding `amount`.
    event UnstakeRequested(address indexed operator, uint256 amount, uint256 withdrawableAt);
    /// @notice Emitted when an operator withdraws unbonded stake.
    event StakeWithdrawn(address indexed operator, address indexed to, uint256 amount);
    /// @notice Emitted when an operator's bond is slashed for a proven fraud.
    event Slashed(address indexed operator, uint256 indexed requestId, uint256 amount);

    /// @notice Amount must be non-zero.
    error ZeroAmount();
    /// @notice The operator's free stake (staked - locked) is smaller than required.
    error InsufficientFreeStake(address operator, uint256 required, uint256 free);
    /// @notice The unbonding period has not ended.
    error UnbondingNotOver(uint256 withdrawableAt);
    /// @notice There is no pending withdrawal.
    error NothingToWithdraw();
    /// @notice An operator's stake must fit in 80 bits (about 1.2 million ETH).
    error StakeOverflow();
    /// @notice 2^24 - 1 operators have staked already: no new operator id is left.
    error TooManyOperators();
    /// @notice An ETH transfer failed.
    error TransferFailed(address to, uint256 amount);

    /// @notice Adds `msg.value` to the caller's stake.
    function stake() external payable;

    /// @notice Moves `amount` of free stake to a pending withdrawal and (re)starts the unbonding clock.
    function requestUnstake(uint96 amount) external;

    /// @notice Sends the caller's pending withdrawal to `to` once unbonding is over.
    function withdrawStake(address payable to) external;

    // `stakeOf(operator)` and `freeStake(operator)` are served with the oracle's other views (`IOracleViews`).
}
