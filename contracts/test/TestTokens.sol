// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @notice A plain ERC-20 anyone can mint (fee token of the tests and the bench).
contract TestToken is ERC20 {
    constructor() ERC20("Test Token", "TST") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}

/// @notice Takes 1% of every transfer (burned): the oracle must refuse it rather than be short-paid.
contract FeeOnTransferToken is TestToken {
    function _update(address from, address to, uint256 value) internal override {
        if (from == address(0) || to == address(0)) return super._update(from, to, value);
        uint256 cut = value / 100;
        super._update(from, address(0), cut);
        super._update(from, to, value - cut);
    }
}

/// @notice Returns false from `transfer` and `transferFrom` and moves nothing (pre-standard tokens).
contract FalseReturningToken is TestToken {
    function transfer(address, uint256) public pure override returns (bool) {
        return false;
    }

    function transferFrom(address, address, uint256) public pure override returns (bool) {
        return false;
    }
}

/// @notice Reverts every transfer once `frozen` is set (a paused or blocklisting token).
contract FreezableToken is TestToken {
    error Frozen();

    bool public frozen;

    function setFrozen(bool value) external {
        frozen = value;
    }

    function _update(address from, address to, uint256 value) internal override {
        if (frozen) revert Frozen();
        super._update(from, to, value);
    }
}

/// @notice Returns no value from `transfer`/`transferFrom` (USDT-style): SafeERC20 accepts it.
contract NoReturnToken {
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    function mint(address to, uint256 amount) external {
        balanceOf[to] += amount;
    }

    function approve(address spender, uint256 amount) external {
        allowance[msg.sender][spender] = amount;
    }

    function transfer(address to, uint256 amount) external {
        balanceOf[msg.sender] -= amount;
        balanceOf[to] += amount;
    }

    function transferFrom(address from, address to, uint256 amount) external {
        allowance[from][msg.sender] -= amount;
        balanceOf[from] -= amount;
        balanceOf[to] += amount;
    }
}

interface IRequestInference {
    function requestInference(uint32 modelId, bytes calldata input, uint24 callbackGasLimit)
        external
        payable
        returns (uint256);
}

/// @notice Re-enters `requestInference` from inside the oracle's `transferFrom` (a hostile fee token), paying the
/// nested request's fee from its own balance: the outer request then sees its balance grow by two fees.
contract ReentrantToken is TestToken {
    address public oracle;
    uint32 public modelId;
    bytes public input;
    bool private _entered;

    function arm(address oracle_, uint32 modelId_, bytes calldata input_) external {
        (oracle, modelId, input) = (oracle_, modelId_, input_);
        _approve(address(this), oracle_, type(uint256).max);
    }

    function transferFrom(address from, address to, uint256 value) public override returns (bool) {
        if (oracle != address(0) && !_entered) {
            _entered = true;
            IRequestInference(oracle).requestInference(modelId, input, 0);
            _entered = false;
        }
        return super.transferFrom(from, to, value);
    }
}

/// @notice Never spends allowances (`transferFrom` leaves the approval as it was): a consumer that approved the
/// oracle would otherwise stay approved after its request.
contract StickyAllowanceToken is TestToken {
    function _spendAllowance(address, address, uint256) internal pure override {}
}
