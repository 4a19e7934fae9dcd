// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IOperatorStaking} from "./interfaces/IOperatorStaking.sol";

/// @title OperatorStaking
/// @notice Operator stake, per-attestation bonds and unbonding (see `IOperatorStaking`). Inherited by the
/// oracle: locking and unlocking a bond is one warm SSTORE on the submit/finalize path, and slashing is an
/// internal function reachable only from the oracle's fraud path.
abstract contract OperatorStaking is IOperatorStaking, ReentrancyGuardTransient {
    /// @notice Seconds between `requestUnstake` and `withdrawStake`.
    uint256 public immutable UNBONDING_PERIOD;

    /// @dev Hot path state, one slot per operator.
    struct StakeSlot {
        uint96 staked; // active stake, locked bonds included
        uint96 locked; // bonds of open attestations; INVARIANT: locked <= staked
        uint40 withdrawableAt; // unbonding end of `_pending`
    }

    mapping(address operator => StakeSlot) private _stakes;
    mapping(address operator => uint96) private _pending;

    constructor(uint256 unbondingPeriod) {
        UNBONDING_PERIOD = unbondingPeriod;
    }

    /// @inheritdoc IOperatorStaking
    function stake() external payable nonReentrant {
        if (msg.value == 0) revert ZeroAmount();
        StakeSlot storage s = _stakes[msg.sender];
        uint256 total = uint256(s.staked) + msg.value;
        if (total > type(uint96).max) revert StakeOverflow();
        s.staked = uint96(total);
        emit Staked(msg.sender, msg.value, total);
    }

    /// @inheritdoc IOperatorStaking
    function requestUnstake(uint96 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        StakeSlot storage s = _stakes[msg.sender];
        uint256 free = s.staked - s.locked;
        // INVARIANT: locked bonds never leave `staked`, so they stay slashable whatever the operator does.
        if (amount > free) revert InsufficientFreeStake(msg.sender, amount, free);
        s.staked -= amount;
        _pending[msg.sender] += amount;
        uint256 readyAt = block.timestamp + UNBONDING_PERIOD;
        s.withdrawableAt = uint40(readyAt);
        emit UnstakeRequested(msg.sender, amount, readyAt);
    }

    /// @inheritdoc IOperatorStaking
    function withdrawStake(address payable to) external nonReentrant {
        uint256 amount = _pending[msg.sender];
        if (amount == 0) revert NothingToWithdraw();
        uint256 readyAt = _stakes[msg.sender].withdrawableAt;
        if (block.timestamp < readyAt) revert UnbondingNotOver(readyAt);
        _pending[msg.sender] = 0;
        emit StakeWithdrawn(msg.sender, to, amount);
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert TransferFailed(to, amount);
    }

    /// @inheritdoc IOperatorStaking
    function stakeOf(address operator) external view returns (StakeInfo memory) {
        StakeSlot memory s = _stakes[operator];
        return StakeInfo({
            staked: s.staked, locked: s.locked, pending: _pending[operator], withdrawableAt: s.withdrawableAt
        });
    }

    /// @inheritdoc IOperatorStaking
    function freeStake(address operator) external view returns (uint256) {
        StakeSlot memory s = _stakes[operator];
        return s.staked - s.locked;
    }

    /// @dev Locks `bond` of `operator`'s free stake for an attestation.
    function _lockBond(address operator, uint96 bond) internal {
        StakeSlot storage s = _stakes[operator];
        uint96 staked = s.staked;
        uint96 locked = s.locked;
        // unchecked: locked <= staked always holds, so staked - locked cannot underflow, and
        // locked + bond <= staked after the check, so it cannot overflow.
        unchecked {
            if (staked - locked < bond) revert InsufficientFreeStake(operator, bond, staked - locked);
            s.locked = locked + bond;
        }
    }

    /// @dev Releases the bond of a finalized attestation.
    function _unlockBond(address operator, uint96 bond) internal {
        _stakes[operator].locked -= bond;
    }

    /// @dev Takes the bond of a fraudulent attestation out of the operator's stake. The bond is still locked
    /// (it was locked at submit and only finalize or this function releases it), so `staked` covers it.
    function _slashBond(address operator, uint96 bond, uint256 requestId) internal {
        StakeSlot storage s = _stakes[operator];
        s.locked -= bond;
        s.staked -= bond;
        emit Slashed(operator, requestId, bond);
    }
}
