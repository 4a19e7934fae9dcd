// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IExactVerifier} from "./interfaces/IExactVerifier.sol";
import {IModelRegistry} from "./interfaces/IModelRegistry.sol";

/// @title ProgramChecker
/// @notice The registration-time check of an EXACT program, deployed by the oracle's constructor and called
/// only by `registerModel` (kept out of the oracle's runtime code, which EIP-170 bounds; no request, submit
/// or finalize ever calls it). The verifier (or the dispute game, when there is one) decodes and validates
/// the program and bounds its execution gas from shapes and widths; no input is executed (a dry run proves
/// nothing about other inputs, and would cost the registration as much as a proof). Its reverts are the
/// registry's errors (`IModelRegistry`), returned unchanged through the oracle.
contract ProgramChecker {
    // Proof-transaction gas outside the verifier (measured on anvil with margin; tests check the total
    // bound against estimateGas of real challenges): the transaction's intrinsic 21,000, the challenge's
    // own reads, writes, slash, burn transfer (to a possibly empty account) and event, per program chunk
    // (a cold SLOAD of its address), per input and output byte (calldata is priced separately).
    uint256 private constant PROOF_FIXED_GAS = 100_000;
    uint256 private constant PROOF_GAS_PER_CHUNK = 2_400;
    uint256 private constant PROOF_GAS_PER_IO_BYTE = 16;

    IExactVerifier private immutable VERIFIER;
    address private immutable DISPUTE_GAME;
    uint256 private immutable TX_GAS_CAP;
    uint256 private immutable MAX_CALLBACK_GAS;
    /// @dev The oracle's fixed gas around a callback (calling back, and the reserve kept for its checks).
    uint256 private immutable CALLBACK_OVERHEAD;

    constructor(
        IExactVerifier verifier,
        address disputeGame,
        uint256 txGasCap,
        uint256 maxCallbackGas,
        uint256 callbackOverhead
    ) {
        (VERIFIER, DISPUTE_GAME, TX_GAS_CAP) = (verifier, disputeGame, txGasCap);
        (MAX_CALLBACK_GAS, CALLBACK_OVERHEAD) = (maxCallbackGas, callbackOverhead);
    }

    /// @notice Reverts if the program cannot run with inputs of `inputLength` bytes, does not produce
    /// `outputLength` bytes, or (without a dispute game) its proof transaction could exceed the cap.
    /// @return proofGas bound on the proof transaction's gas without callback (over the cap: game-provable).
    /// @return callbackCap the largest callback gas that still fits the cap (at most MAX_CALLBACK_GAS).
    function check(address[] calldata chunks, uint256 inputLength, uint256 outputLength)
        external
        view
        returns (uint256 proofGas, uint256 callbackCap)
    {
        uint256 execGas;
        uint256 programInput;
        uint256 programOutput;
        // With a game, the game answers: the verifier's bound, after refusing (ProgramNotExecutable wrapping
        // `DisputeGame.StepGasTooHigh`) a program over the cap whose dispute game has a step over the cap.
        address game = DISPUTE_GAME;
        try IExactVerifier(game == address(0) ? address(VERIFIER) : game).executionGasBound(chunks) returns (uint256 g, uint256 i, uint256 o) {
            (execGas, programInput, programOutput) = (g, i, o);
        } catch (bytes memory reason) {
            revert IModelRegistry.ProgramNotExecutable(reason);
        }
        if (programInput != inputLength) {
            revert IModelRegistry.ProgramNotExecutable(
                abi.encodeWithSelector(IExactVerifier.InputLengthMismatch.selector, programInput, inputLength)
            );
        }
        if (programOutput != outputLength) revert IModelRegistry.ProgramOutputLengthMismatch(outputLength, programOutput);
        proofGas = _proofGasBound(execGas, chunks.length, inputLength, outputLength);
        // Over the cap: game-provable (stored as proofGasBound > TX_GAS_CAP; the game checked its steps).
        // A game proves fraud without a callback: only the finalize path's callback cap applies.
        if (proofGas > TX_GAS_CAP && game == address(0)) revert IModelRegistry.ProofGasTooHigh(proofGas, TX_GAS_CAP);
        // What is left of the cap pays for the callback: its fixed costs, then gasLimit * 64/63 (the
        // callback check demands that much, see the oracle's `_enoughGasFor`); 256 gas of slack for the
        // registry's rounding of the cap to units of 256 gas.
        uint256 overhead = CALLBACK_OVERHEAD + 2 * PROOF_GAS_PER_IO_BYTE * outputLength + 256;
        uint256 room = proofGas > TX_GAS_CAP ? TX_GAS_CAP : TX_GAS_CAP - proofGas;
        callbackCap = room > overhead ? ((room - overhead) * 63) / 64 : 0;
        if (callbackCap > MAX_CALLBACK_GAS) callbackCap = MAX_CALLBACK_GAS;
    }

    /// @dev Upper bound on the gas limit a `challenge` needs (callback gas 0) when the verifier needs at
    /// most `execGas`: the oracle forwards all but 1/64 of its gas (EIP-150), so the verifier's share is
    /// scaled by 64/63. Calldata is priced at 16 gas a byte (every byte non-zero) or at the EIP-7623
    /// floor of 40 a byte, whichever is more.
    function _proofGasBound(uint256 execGas, uint256 nChunks, uint256 inputLength, uint256 outputLength)
        private
        pure
        returns (uint256)
    {
        uint256 calldataBytes = 4 + 3 * 32 + ((inputLength + 31) / 32) * 32;
        uint256 standard = 21_000 + 16 * calldataBytes + PROOF_FIXED_GAS + PROOF_GAS_PER_CHUNK * nChunks
            + PROOF_GAS_PER_IO_BYTE * (inputLength + outputLength) + (execGas * 64 + 62) / 63;
        uint256 floor = 21_000 + 40 * calldataBytes;
        return standard > floor ? standard : floor;
    }
}
