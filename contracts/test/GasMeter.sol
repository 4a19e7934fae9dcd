// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title GasMeter
/// @notice Test helper: the gas one call to `target` consumes (its frame, plus the CALL's own access
/// cost), measured with `gasleft()` so calldata pricing of the outer transaction does not blur it.
contract GasMeter {
    /// @notice Calls `target` with `data` and all available gas; returns whether it succeeded and the
    /// gas it used.
    function measure(address target, bytes calldata data) external returns (bool ok, uint256 used) {
        uint256 before = gasleft();
        (ok,) = target.call(data);
        used = before - gasleft();
    }
}
