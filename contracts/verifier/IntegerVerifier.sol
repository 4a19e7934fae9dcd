// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IExactVerifier} from "../interfaces/IExactVerifier.sol";
import {DataChunks} from "../libraries/DataChunks.sol";
import {IIntegerVerifier} from "./IIntegerVerifier.sol";
import {ProgramGasBound} from "./ProgramGasBound.sol";
import {Op, Program, ProgramDecoder} from "./ProgramDecoder.sol";
import {Pool, Tensor, TensorKernels} from "./TensorKernels.sol";

/// @title IntegerVerifier
/// @notice Re-executes integer-profile programs (docs/integer-profile.md) inside the EVM, bit-exact with
/// the reference interpreter `oracle.profile.reference`. Stateless: the oracle calls `executeStored` on
/// the program it committed to at registration and compares the output with the attested one.
/// @dev Pipeline: `ProgramDecoder` validates the whole program first (cheap failure for a bad one), then
/// ops run in program order through `TensorKernels.evaluate`, the same code `runOp` exposes per op.
/// Constants are never copied out of the program bytes; MatMul reads its weights there in packed form
/// (see `MatMulKernels`), which is what keeps a whole MLP inside one block.
contract IntegerVerifier is IIntegerVerifier {
    /// @notice Computes `executionGasBound` (deployed by this contract, immutable like it).
    ProgramGasBound public immutable GAS_BOUND;

    constructor() {
        GAS_BOUND = new ProgramGasBound();
    }

    /// @inheritdoc IExactVerifier
    function execute(bytes calldata program, bytes calldata input) external pure returns (bytes memory output) {
        return _run(program, input);
    }

    /// @inheritdoc IExactVerifier
    function executeStored(address[] calldata chunks, bytes calldata input)
        external
        view
        returns (bytes memory output)
    {
        return _run(DataChunks.read(chunks), input);
    }

    /// @inheritdoc IExactVerifier
    /// @dev Computed by `GAS_BOUND` (the bound's code does not fit in this contract next to the kernels).
    function executionGasBound(address[] calldata chunks)
        external
        view
        returns (uint256 gas, uint256 inputLength, uint256 outputLength)
    {
        return GAS_BOUND.executionGasBound(chunks);
    }

    /// @inheritdoc IIntegerVerifier
    function runOp(uint8 opcode, Operand[] calldata inputs, int64[] calldata attrs, uint32[] calldata outShape)
        external
        pure
        returns (int64[] memory output)
    {
        if (!TensorKernels.supported(opcode)) revert UnsupportedOpcode(opcode);
        (uint256 nIn, uint256 nAttr) = TensorKernels.arity(opcode);
        if (inputs.length != nIn || attrs.length != nAttr) revert InvalidAttributes(opcode);
        Tensor[] memory ins = _operands(inputs);
        int256[] memory a = new int256[](nAttr);
        for (uint256 i; i < nAttr; ++i) {
            a[i] = attrs[i];
        }
        uint256[] memory shape = _checkedOp(opcode, ins, a, outShape);
        // A fresh pool: nothing to recycle in a single op.
        Tensor memory out = TensorKernels.evaluate(opcode, ins, a, shape, TensorKernels.newPool(0));
        int256[] memory values = TensorKernels.values(out);
        // Every kernel result is reduced to int64 (see TensorKernels), so reinterpreting the words as
        // int64[] loses nothing and the ABI encoder sees clean values.
        assembly ("memory-safe") {
            output := values
        }
    }

    // ---------------------------------------------------------------------------------------------

    function _run(bytes memory program, bytes calldata input) private pure returns (bytes memory) {
        Program memory p = ProgramDecoder.decode(program);
        uint256 numTensors = p.shapes.length;
        Tensor[] memory env = new Tensor[](numTensors);
        for (uint256 t; t < numTensors; ++t) {
            if (p.constData[t] != 0) env[t] = Tensor(p.shapes[t], new int256[](0), p.constData[t], p.constWidth[t]);
        }

        uint256[] memory inShape = p.shapes[p.inputId];
        uint256 count = TensorKernels.numel(inShape);
        uint256 expected = count * p.inputWidth;
        if (input.length != expected) revert InputLengthMismatch(expected, input.length);
        env[p.inputId] = Tensor(inShape, _decodeInput(input, p.inputWidth, count), 0, 0);
        _runOps(p, env);
        return _encodeOutput(TensorKernels.values(env[p.outputId]), p.outputWidth);
    }

    /// @dev Runs the ops in program order over `env` (by tensor id), recycling dead buffers.
    function _runOps(Program memory p, Tensor[] memory env) private pure {
        (uint256[] memory root, uint256[] memory lastUse) = _liveness(p);
        Pool memory pool = TensorKernels.newPool(env.length);
        uint256 numOps = p.ops.length;
        for (uint256 i; i < numOps; ++i) {
            Op memory op = p.ops[i];
            uint256 nIn = op.inputs.length;
            Tensor[] memory ins = new Tensor[](nIn);
            for (uint256 j; j < nIn; ++j) {
                ins[j] = env[op.inputs[j]];
            }
            bool inPlace = TensorKernels.isInPlace(op.opcode);
            if (inPlace) _release(op, i, env, root, lastUse, pool);
            env[op.output] = TensorKernels.evaluate(op.opcode, ins, op.attrs, p.shapes[op.output], pool);
            if (!inPlace) _release(op, i, env, root, lastUse, pool);
        }
    }

    /// @dev Buffer ownership and lifetimes. Alias ops (Reshape, ...) share their input's elements, so a
    /// tensor's buffer belongs to its `root` (the tensor that computed it), and lives until the last op
    /// reading any tensor with that root: `lastUse[root]` (1-based op index; the model output never dies).
    function _liveness(Program memory p) private pure returns (uint256[] memory root, uint256[] memory lastUse) {
        uint256 numTensors = p.shapes.length;
        root = new uint256[](numTensors);
        lastUse = new uint256[](numTensors);
        for (uint256 t; t < numTensors; ++t) {
            root[t] = t;
        }
        for (uint256 i; i < p.ops.length; ++i) {
            Op memory op = p.ops[i];
            for (uint256 j; j < op.inputs.length; ++j) {
                lastUse[root[op.inputs[j]]] = i + 1;
            }
            if (TensorKernels.isAlias(op.opcode)) root[op.output] = root[op.inputs[0]];
        }
        lastUse[root[p.outputId]] = type(uint256).max;
    }

    /// @dev Returns to the pool the buffers that op `i` reads for the last time. Constants (packed, or
    /// unpacked once and cached) are never recycled: only buffers computed by ops or decoded input.
    function _release(
        Op memory op,
        uint256 i,
        Tensor[] memory env,
        uint256[] memory root,
        uint256[] memory lastUse,
        Pool memory pool
    ) private pure {
        for (uint256 j; j < op.inputs.length; ++j) {
            uint256 r = root[op.inputs[j]];
            if (lastUse[r] == i + 1) {
                lastUse[r] = 0; // once, even if the op reads the tensor twice
                Tensor memory t = env[r];
                if (t.packed == 0) TensorKernels.give(pool, t.values);
            }
        }
    }

    /// @dev Canonical input: big-endian two's complement of `w` bytes per element, sign-extended.
    function _decodeInput(bytes calldata input, uint256 w, uint256 count) private pure returns (int256[] memory v) {
        v = new int256[](count);
        assembly ("memory-safe") {
            let sh := sub(256, shl(3, w))
            let src := input.offset
            let dst := add(v, 0x20)
            for { let end := add(dst, shl(5, count)) } lt(dst, end) {
                dst := add(dst, 0x20)
                src := add(src, w)
            } { mstore(dst, sar(sh, calldataload(src))) }
        }
    }

    /// @dev Canonical output at width `w`. Total: a value that does not fit `w` bytes saturates to the
    /// width's range (docs/integer-profile.md, "Semantics"), exactly like the reference's `saturate`.
    function _encodeOutput(int256[] memory v, uint256 w) private pure returns (bytes memory out) {
        uint256 count = v.length;
        out = new bytes(count * w);
        assembly ("memory-safe") {
            let sh := sub(256, shl(3, w))
            let wm1 := sub(w, 1)
            // Largest value of the width: 2^(8w-1) - 1; the smallest is its bitwise not.
            let hi := sub(shl(sub(shl(3, w), 1), 1), 1)
            let dst := add(out, 0x20)
            // Each element is stored as a full word shifted to its top `w` bytes; the next store
            // overwrites the spill. The last spill lands past the array, in free memory, which
            // the allocation below claims so nothing else observes it.
            for { let i := 0 } lt(i, count) { i := add(i, 1) } {
                let x := mload(add(v, shl(5, add(i, 1))))
                if iszero(eq(signextend(wm1, x), x)) {
                    switch slt(x, 0)
                    case 0 { x := hi }
                    default { x := not(hi) }
                }
                mstore(add(dst, mul(i, w)), shl(sh, x))
            }
            mstore(0x40, add(mload(0x40), 0x20))
        }
    }

    /// @dev Validates the `runOp` operands and views each as a packed tensor (data copied to memory).
    function _operands(Operand[] calldata inputs) private pure returns (Tensor[] memory ins) {
        ins = new Tensor[](inputs.length);
        for (uint256 i; i < inputs.length; ++i) {
            Operand calldata o = inputs[i];
            uint256[] memory shape = _shape(o.shape);
            if (shape.length > TensorKernels.MAX_RANK || !_positive(shape) || !TensorKernels.isWidth(o.width)) {
                revert InvalidOperand(i);
            }
            if (o.data.length != TensorKernels.numel(shape) * o.width) revert InvalidOperand(i);
            bytes memory data = o.data;
            uint256 packed;
            assembly ("memory-safe") {
                packed := add(data, 0x20)
            }
            ins[i] = Tensor(shape, new int256[](0), packed, o.width);
        }
    }

    /// @dev The shape and attribute rules a program op obeys. A zero divisor is not refused: Div is total
    /// (x / 0 is 0, like `sdiv`), since a program's computed divisor may be zero. Returns the output shape.
    function _checkedOp(uint256 opcode, Tensor[] memory ins, int256[] memory attrs, uint32[] calldata outShape)
        private
        pure
        returns (uint256[] memory shape)
    {
        shape = _shape(outShape);
        if (shape.length > TensorKernels.MAX_RANK || !_positive(shape)) revert ShapeMismatch(0);
        uint256[][] memory inShapes = new uint256[][](ins.length);
        for (uint256 i; i < ins.length; ++i) {
            inShapes[i] = ins[i].shape;
        }
        uint256 status = TensorKernels.checkOp(opcode, inShapes, attrs, shape);
        if (status == TensorKernels.CHECK_ATTRS) revert InvalidAttributes(uint8(opcode));
        if (status == TensorKernels.CHECK_SHAPE) revert ShapeMismatch(0);
    }

    function _shape(uint32[] calldata dims) private pure returns (uint256[] memory shape) {
        shape = new uint256[](dims.length);
        for (uint256 i; i < dims.length; ++i) {
            shape[i] = dims[i];
        }
    }

    function _positive(uint256[] memory shape) private pure returns (bool) {
        for (uint256 i; i < shape.length; ++i) {
            if (shape[i] == 0) return false;
        }
        return true;
    }
}
