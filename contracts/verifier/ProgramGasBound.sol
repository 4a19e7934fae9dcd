// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {DataChunks} from "../libraries/DataChunks.sol";
import {GasBound} from "./GasBound.sol";
import {Program, ProgramDecoder} from "./ProgramDecoder.sol";
import {TensorKernels} from "./TensorKernels.sol";

/// @title ProgramGasBound
/// @notice The static gas bound of `IntegerVerifier.executeStored` (see `GasBound`), in a contract of its
/// own so that the verifier stays under the EIP-170 code size limit. The verifier deploys it in its
/// constructor and forwards `executionGasBound` to it.
contract ProgramGasBound {
    /// @notice See `IExactVerifier.executionGasBound`.
    function executionGasBound(address[] calldata chunks)
        external
        view
        returns (uint256 gas, uint256 inputLength, uint256 outputLength)
    {
        bytes memory program = DataChunks.read(chunks);
        Program memory p = ProgramDecoder.decode(program);
        gas = GasBound.executionBound(p, program.length, chunks.length);
        inputLength = TensorKernels.numel(p.shapes[p.inputId]) * p.inputWidth;
        outputLength = TensorKernels.numel(p.shapes[p.outputId]) * p.outputWidth;
    }
}
