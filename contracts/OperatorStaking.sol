// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IOperatorStaking} from "./interfaces/IOperatorStaking.sol";
import {OracleStorage} from "./OracleStorage.sol";

/// @title OperatorStaking
/// @notice Operator stake, per-attestation bonds and unbonding (see `IOperatorStaking`). Inherited by the
/// oracle: locking and unlocking a bond is one warm SSTORE on the submit/finalize path, and slashing is an
/// internal function reachable only from the oracle's fraud path.
abstract contract OperatorStaking is IOperatorStaking, OracleStorage, ReentrancyGuardTransient {
    /// @notice Seconds between `requestUnstake` and `withdrawStake`.
    uint256 public immutable UNBONDING_PERIOD;
    /// @notice Stake an operator needs to be listed for assignment (see `stake`).
    uint256 public immutable MIN_OPERATOR_STAKE;

    constructor(uint256 unbondingPeriod, uint256 minOperatorStake, uint256 maxAssignmentWeight) {
        UNBONDING_PERIOD = unbondingPeriod;
        MIN_OPERATOR_STAKE = minOperatorStake;
        _maxAssignmentWeight = maxAssignmentWeight;
    }

    /// @inheritdoc IOperatorStaking
    function stake() external payable nonReentrant {
        if (msg.value == 0) revert ZeroAmount();
        StakeSlot storage s = _stakes[msg.sender];
        uint256 total = uint256(s.staked) + msg.value;
        if (total > type(uint80).max) revert StakeOverflow();
        s.staked = uint80(total);
        uint256 weight = total < _maxAssignmentWeight ? total : _maxAssignmentWeight;
        if (weight > _weightCap) _weightCap = uint80(weight);
        PendingSlot storage p = _pending[msg.sender];
        uint24 id = p.operatorId;
        if (id == 0) {
            // First stake ever: the operator gets its id (results record it; see `OracleStorage.Result`).
            if (_operatorCount == type(uint24).max) revert TooManyOperators();
            id = ++_operatorCount;
            p.operatorId = id;
            _operatorAt[id] = msg.sender;
        }
        // Listed for assignment only with MIN_OPERATOR_STAKE: each draw takes a roster place uniformly, so
        // dust stakes from many accounts would otherwise fill the roster and leave most requests unassigned
        // (open to answer-copying again). Below it an operator still answers what is open to all.
        if (p.rosterIndex == 0 && total >= MIN_OPERATOR_STAKE) {
            uint32 size = _rosterSize;
            _rosterAt[size] = RosterEntry({operator: msg.sender, id: id});
            (_rosterSize, p.rosterIndex) = (size + 1, size + 1);
        }
        emit Staked(msg.sender, msg.value, total);
    }

    /// @inheritdoc IOperatorStaking
    function requestUnstake(uint96 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        StakeSlot storage s = _stakes[msg.sender];
        uint256 free = s.staked - s.locked;
        // INVARIANT: locked bonds never leave `staked`, so they stay slashable whatever the operator does.
        if (amount > free) revert InsufficientFreeStake(msg.sender, amount, free);
        s.staked -= uint80(amount); // amount <= free <= staked < 2^80
        PendingSlot storage p = _pending[msg.sender];
        if (s.staked < MIN_OPERATOR_STAKE && p.rosterIndex != 0) _unlist(p);
        p.amount += amount;
        uint256 readyAt = block.timestamp + UNBONDING_PERIOD;
        p.withdrawableAt = uint40(readyAt);
        emit UnstakeRequested(msg.sender, amount, readyAt);
    }

    /// @inheritdoc IOperatorStaking
    function withdrawStake(address payable to) external nonReentrant {
        PendingSlot memory p = _pending[msg.sender];
        if (p.amount == 0) revert NothingToWithdraw();
        if (block.timestamp < p.withdrawableAt) revert UnbondingNotOver(p.withdrawableAt);
        uint256 amount = p.amount;
        (_pending[msg.sender].amount, _pending[msg.sender].withdrawableAt) = (0, 0);
        emit StakeWithdrawn(msg.sender, to, amount);
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert TransferFailed(to, amount);
    }

    /// @dev Swap-and-pop: the last listed operator takes the leaver's place.
    function _unlist(PendingSlot storage p) private {
        uint32 last = _rosterSize - 1;
        uint32 index = p.rosterIndex - 1; // listed: it staked before
        RosterEntry memory moved = _rosterAt[last];
        _rosterAt[index] = moved;
        _pending[moved.operator].rosterIndex = index + 1;
        delete _rosterAt[last];
        (_rosterSize, p.rosterIndex) = (last, 0);
    }

    /// @dev Free stake of `operator`: the weight an assignment draws it with, up to `_maxAssignmentWeight`.
    function _freeStake(address operator) internal view returns (uint256) {
        StakeSlot storage s = _stakes[operator];
        return s.staked - s.locked;
    }

    /// @dev Locks `bond` of `operator`'s free stake for an attestation.
    function _lockBond(address operator, uint96 bond) internal {
        StakeSlot storage s = _stakes[operator];
        uint256 staked = s.staked;
        uint256 locked = s.locked;
        // unchecked: locked <= staked always holds, so staked - locked cannot underflow, and after the check
        // locked + bond <= staked < 2^80, so the narrowing below is lossless.
        unchecked {
            if (staked - locked < bond) revert InsufficientFreeStake(operator, bond, staked - locked);
            s.locked = uint80(locked + bond);
        }
    }

    /// @dev Releases the bond of a finalized attestation and credits its fee (and the callback deposit when
    /// the operator settles it itself), in one slot write.
    function _releaseBondAndCredit(address operator, uint96 bond, uint256 amount) internal {
        StakeSlot storage s = _stakes[operator];
        s.locked -= uint80(bond); // bond <= locked: it was locked at submit
        uint256 credits;
        unchecked {
            credits = s.credits + amount; // amount is a fee (< 2^96) plus a callback deposit (< 2^70)
        }
        if (credits > type(uint96).max) revert StakeOverflow();
        s.credits = uint96(credits);
    }

    /// @dev Takes the bond of a fraudulent attestation out of the operator's stake. The bond is still locked
    /// (it was locked at submit and only finalize or this function releases it), so `staked` covers it;
    /// pending withdrawals are never needed to cover it and stay untouched until unbonding ends.
    function _slashBond(address operator, uint96 bond, uint256 requestId) internal {
        StakeSlot storage s = _stakes[operator];
        s.locked -= uint80(bond);
        s.staked -= uint80(bond);
        emit Slashed(operator, requestId, bond);
    }

    /// @dev Zeroes and returns the operator's fee credits (for `withdraw`).
    function _takeOperatorCredits(address operator) internal returns (uint256 amount) {
        StakeSlot storage s = _stakes[operator];
        amount = s.credits;
        if (amount != 0) s.credits = 0;
    }
}
