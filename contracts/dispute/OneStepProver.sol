// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {DataChunks} from "../libraries/DataChunks.sol";
import {IIntegerVerifier} from "../verifier/IIntegerVerifier.sol";
import {Op, Program, ProgramDecoder} from "../verifier/ProgramDecoder.sol";
import {TensorKernels} from "../verifier/TensorKernels.sol";
import {StateMerkle} from "./StateMerkle.sol";

/// @title OneStepProver
/// @notice The dispute game's one-step proof (protocol §6 v2, "Tiles"), in a contract of its own for the
/// EIP-170 limit: re-executes one step of a program on an agreed state with the verifier's `runOp` (the
/// kernels of a whole-program run) and returns the state after it. A step is a whole op, a tile of a
/// MatMul (rows x K block, added to the op's partial sum) or a row block of an elementwise op; operands
/// are proven against the agreed state (a tile's slices by chunk range proofs), constants are read from
/// the program chunks, never from calldata.
contract OneStepProver {
    /// @notice A one-step proof: `operands[j]` is the whole chunks (8 bytes an element) holding the step's
    /// slice of op input j (all of it for a whole op), `ranges[j]` their range proof in the tensor's hash
    /// (`StateMerkle.rangeRoot`; empty for a whole tensor) and `proofs[j]` that hash's Merkle proof in the
    /// agreed state (all empty for a constant, read from the program). `outLeaf` and `outProof` prove the
    /// output tensor's leaf in the agreed state. For a tile or row block, `outChunks` and the last of
    /// `ranges` are the chunks of the output rows it adds to (`outLeaf` zero before the op's first step:
    /// all-zero rows). `plan` is the program's tile plan (the caller checks it against the one fixed at open).
    struct StepProof {
        bytes[] operands;
        bytes32[][] proofs;
        bytes32 outLeaf;
        bytes32[] outProof;
        bytes outChunks;
        bytes32[][] ranges;
        uint256[] plan;
    }

    /// @dev The agreed state: its root and tree depth.
    struct Pre {
        bytes32 root;
        uint256 depth;
    }

    IIntegerVerifier public immutable VERIFIER;

    /// @notice A malformed proof: operand or range count, or data not covering the slice of tensor `tensor`.
    error BadOperand(uint256 tensor);
    /// @notice An operand or the output leaf is not in the agreed state.
    error RootMismatch(uint256 tensor);

    constructor(IIntegerVerifier verifier) {
        VERIFIER = verifier;
    }

    /// @notice The state after step `lo` of the program in `chunks` (its plan `sp.plan`, which the caller
    /// checked) applied to the agreed state `rootLo` of a tree of `depth` levels.
    function postState(address[] calldata chunks, uint256 lo, bytes32 rootLo, uint256 depth, StepProof calldata sp)
        external
        view
        returns (bytes32)
    {
        return _postState(Pre(rootLo, depth), ProgramDecoder.decode(DataChunks.read(chunks)), lo, sp);
    }

    /// @dev The state after step `j` (an op, a MatMul tile or a row block) applied to the agreed state `g`.
    function _postState(Pre memory g, Program memory p, uint256 j, StepProof calldata sp) private view returns (bytes32) {
        uint256[] calldata plan = sp.plan;
        uint256 i;
        while (j >= plan[i] >> 192) {
            j -= plan[i++] >> 192;
        }
        if (uint96(plan[i]) != 0) return _tileState(g, p, p.ops[i], plan[i], j, sp);
        if (uint192(plan[i]) != 0) return _rowState(g, p, p.ops[i], uint96(plan[i] >> 96) * j, plan[i], sp);
        return _opState(g, p, p.ops[i], sp);
    }

    /// @dev A whole op: operands and output whole.
    function _opState(Pre memory g, Program memory p, Op memory op, StepProof calldata sp) private view returns (bytes32) {
        uint256 nIn = op.inputs.length;
        if (sp.operands.length != nIn || sp.proofs.length != nIn || sp.ranges.length != nIn) revert BadOperand(nIn);
        IIntegerVerifier.Operand[] memory ins = new IIntegerVerifier.Operand[](nIn);
        for (uint256 k; k < nIn; ++k) {
            ins[k] = _slice(g, p, op.inputs[k], 0, p.shapes[op.inputs[k]], sp, k);
        }
        if (StateMerkle.rootOf(sp.outLeaf, op.output, sp.outProof, g.depth) != g.root) revert RootMismatch(op.output);
        int64[] memory out = VERIFIER.runOp(uint8(op.opcode), ins, _attrs(op), _dims(p.shapes[op.output]));
        return StateMerkle.rootOf(StateMerkle.tensorHash(_narrow(out)), op.output, sp.outProof, g.depth);
    }

    /// @dev Rows `[r0, r0 + rb)` of elementwise `op` (plan entry `pl`): inputs of the output's shape sliced,
    /// broadcast constants whole, the rows by `runOp` written into the output (zero there before).
    function _rowState(Pre memory g, Program memory p, Op memory op, uint256 r0, uint256 pl, StepProof calldata sp)
        private
        view
        returns (bytes32)
    {
        uint256[] memory out = p.shapes[op.output];
        uint256[] memory rows = new uint256[](out.length);
        for (uint256 k; k < out.length; ++k) {
            rows[k] = out[k];
        }
        rows[0] = _min(uint96(pl >> 96), out[0] - r0);
        r0 *= TensorKernels.numel(out) / out[0]; // the first element
        int64[] memory prod = VERIFIER.runOp(uint8(op.opcode), _rowOperands(g, p, op, r0, rows, sp), _attrs(op), _dims(rows));
        return _addRows(g, op.output, TensorKernels.numel(out) * 8, r0 * 8, prod, sp);
    }

    function _rowOperands(Pre memory g, Program memory p, Op memory op, uint256 start, uint256[] memory rows, StepProof calldata sp)
        private
        view
        returns (IIntegerVerifier.Operand[] memory ins)
    {
        ins = new IIntegerVerifier.Operand[](op.inputs.length);
        if (sp.operands.length != ins.length || sp.proofs.length != ins.length || sp.ranges.length != ins.length + 1) {
            revert BadOperand(ins.length);
        }
        bytes32 outShape = keccak256(abi.encode(p.shapes[op.output]));
        for (uint256 k; k < ins.length; ++k) {
            bool sliced = keccak256(abi.encode(p.shapes[op.inputs[k]])) == outShape;
            ins[k] = _slice(g, p, op.inputs[k], sliced ? start : 0, sliced ? rows : p.shapes[op.inputs[k]], sp, k);
        }
    }

    function _attrs(Op memory op) private pure returns (int64[] memory attrs) {
        attrs = new int64[](op.attrs.length);
        for (uint256 k; k < attrs.length; ++k) {
            attrs[k] = int64(op.attrs[k]);
        }
    }

    /// @dev Tile `j` of MatMul `op` (plan entry `pl`, see `StepGasBound.checkPlan`): the product of
    /// its input slices by `runOp`, added (int64, wrapping) to its rows of the partial sum in `rootLo`.
    function _tileState(Pre memory g, Program memory p, Op memory op, uint256 pl, uint256 j, StepProof calldata sp)
        private
        view
        returns (bytes32)
    {
        if (sp.operands.length != 2 || sp.proofs.length != 2 || sp.ranges.length != 3) revert BadOperand(2);
        uint256[7] memory t = _geometry(p, op, pl, j);
        IIntegerVerifier.Operand[] memory ins = new IIntegerVerifier.Operand[](2);
        ins[0] = _slice(g, p, op.inputs[0], t[5] * t[1] + t[6], _pair(t[3], t[4]), sp, 0);
        ins[1] = _slice(g, p, op.inputs[1], t[6] * t[2], _pair(t[4], t[2]), sp, 1);
        int64[] memory prod = VERIFIER.runOp(uint8(op.opcode), ins, new int64[](0), _dims(_pair(t[3], t[2])));
        return _addRows(g, op.output, t[0] * t[2] * 8, t[5] * t[2] * 8, prod, sp);
    }

    /// @dev Tile `j`'s [m, k, n, rb, kb, r0, k0] (its rows `[r0, r0 + rb)`, K `[k0, k0 + kb)`).
    function _geometry(Program memory p, Op memory op, uint256 pl, uint256 j) private pure returns (uint256[7] memory t) {
        uint256[] memory s = p.shapes[op.inputs[0]];
        t = [s[0], s[1], p.shapes[op.inputs[1]][1], uint96(pl >> 96), uint256(uint96(pl)), 0, 0];
        uint256 nK = (t[1] + t[4] - 1) / t[4];
        (t[5], t[6]) = ((j / nK) * t[3], (j % nK) * t[4]);
        (t[3], t[4]) = (_min(t[3], t[0] - t[5]), _min(t[4], t[1] - t[6]));
    }

    /// @dev Adds `prod` (int64, wrapping) at byte `at` of the partial sum `out` (`len` bytes) in `rootLo`:
    /// the chunks holding those rows are proven against it (a zero leaf: all zeros), then rehashed.
    function _addRows(Pre memory g, uint256 out, uint256 len, uint256 at, int64[] memory prod, StepProof calldata sp)
        private
        view
        returns (bytes32)
    {
        uint256 first = at / StateMerkle.CHUNK_BYTES;
        uint256 off = at - first * StateMerkle.CHUNK_BYTES;
        bytes memory rows = sp.outChunks;
        if (rows.length < off + prod.length * 8) revert BadOperand(out);
        bytes32 old = StateMerkle.rangeRoot(rows, first, len, sp.ranges[sp.ranges.length - 1]);
        if (old != (sp.outLeaf == 0 ? StateMerkle.zeroTensorHash(len) : sp.outLeaf)) revert RootMismatch(out);
        if (StateMerkle.rootOf(sp.outLeaf, out, sp.outProof, g.depth) != g.root) revert RootMismatch(out);
        assembly ("memory-safe") {
            let dst := add(add(rows, 0x20), off)
            for { let e := 0 } lt(e, mload(prod)) { e := add(e, 1) } {
                let q := add(dst, shl(3, e))
                let v := signextend(7, add(sar(192, mload(q)), mload(add(prod, shl(5, add(e, 1))))))
                mstore(q, or(shl(192, v), shr(64, shl(64, mload(q)))))
            }
        }
        return StateMerkle.rootOf(StateMerkle.rangeRoot(rows, first, len, sp.ranges[sp.ranges.length - 1]), out, sp.outProof, g.depth);
    }

    /// @dev Elements `[start, start + numel(shape))` of tensor `t` as a `runOp` operand of shape `shape`: a
    /// constant's from the program bytes, else from `sp.operands[j]` (8 bytes an element: the chunks
    /// holding the slice, the whole tensor for an op) proven in `rootLo` by `sp.ranges[j]` and `sp.proofs[j]`.
    function _slice(
        Pre memory g,
        Program memory p,
        uint256 t,
        uint256 start,
        uint256[] memory shape,
        StepProof calldata sp,
        uint256 j
    ) private view returns (IIntegerVerifier.Operand memory o) {
        o.shape = _dims(shape);
        uint256 count = TensorKernels.numel(shape);
        if (p.constData[t] != 0) {
            o.width = uint8(p.constWidth[t]);
            o.data = _copy(p.constData[t] + start * o.width, count * o.width);
            return o;
        }
        bytes memory data = sp.operands[j];
        uint256 first = (start * 8) / StateMerkle.CHUNK_BYTES;
        start = start * 8 - first * StateMerkle.CHUNK_BYTES; // the slice's offset in `data`
        if (data.length < start + count * 8) revert BadOperand(t);
        if (!_inState(g, StateMerkle.rangeRoot(data, first, TensorKernels.numel(p.shapes[t]) * 8, sp.ranges[j]), t, sp.proofs[j])) {
            revert RootMismatch(t);
        }
        assembly ("memory-safe") {
            start := add(add(data, 0x20), start)
        }
        o.width = 8;
        o.data = _copy(start, count * 8);
    }

    function _inState(Pre memory g, bytes32 leaf, uint256 t, bytes32[] calldata proof) private view returns (bool) {
        return StateMerkle.rootOf(leaf, t, proof, g.depth) == g.root;
    }

    function _pair(uint256 x, uint256 y) private pure returns (uint256[] memory v) {
        v = new uint256[](2);
        (v[0], v[1]) = (x, y);
    }

    function _min(uint256 x, uint256 y) private pure returns (uint256) {
        return x < y ? x : y;
    }


    function _dims(uint256[] memory shape) private pure returns (uint32[] memory dims) {
        dims = new uint32[](shape.length);
        for (uint256 i; i < shape.length; ++i) {
            dims[i] = uint32(shape[i]);
        }
    }

    function _copy(uint256 src, uint256 len) private pure returns (bytes memory out) {
        out = new bytes(len);
        assembly ("memory-safe") {
            mcopy(add(out, 0x20), src, len)
        }
    }

    /// @dev int64 values to 8-byte big-endian.
    function _narrow(int64[] memory v) private pure returns (bytes memory out) {
        uint256 count = v.length;
        out = new bytes(count * 8);
        assembly ("memory-safe") {
            let dst := add(out, 0x20)
            for { let i := 0 } lt(i, count) { i := add(i, 1) } {
                mstore(add(dst, shl(3, i)), shl(192, mload(add(v, shl(5, add(i, 1))))))
            }
            mstore(0x40, add(mload(0x40), 0x20))
        }
    }

}
