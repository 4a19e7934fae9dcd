// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {MatMulKernels} from "./MatMulKernels.sol";

/// @notice A tensor of the integer verifier, in memory.
/// @dev Values are immutable once made (programs are static single assignment), so Reshape-like ops
/// share them instead of copying. A constant stays packed until an op needs its elements one per word.
struct Tensor {
    uint256[] shape; // dims, rank 0-4, each >= 1 (checked when decoded)
    int256[] values; // elements one per word (each an int64), or empty while the tensor is only packed
    uint256 packed; // memory address of the canonical packed elements (constants, operands), 0 if none
    uint256 width; // bytes per packed element (1, 2, 4, 8)
}

/// @notice Dead activation buffers kept for reuse. EVM memory is never freed and its price grows
/// quadratically with the high-water mark (which the program bytes already raise), so an op's output
/// reuses a dead buffer of the same length whenever one exists.
struct Pool {
    int256[][] free; // free[0..count) are reusable, any contents
    uint256 count;
}

/// @title TensorKernels
/// @notice The op set of the integer profile (docs/integer-profile.md) on memory tensors: the shape and
/// attribute rules of each op (`checkOp`) and its evaluation (`evaluate`), shared by the whole-program
/// interpreter and the single-op entry point, and bit-exact with `oracle.profile.reference.run_op`.
/// @dev Arithmetic results are reduced to int64 with `signextend(7, .)`, i.e. numpy's int64 wrap; inputs
/// are always int64 already, so Max, Min, Clip, ArgMax and the copies need no reduction.
library TensorKernels {
    uint256 internal constant OP_MATMUL = 1;
    uint256 internal constant OP_ADD = 2;
    uint256 internal constant OP_SUB = 3;
    uint256 internal constant OP_MUL = 4;
    uint256 internal constant OP_DIV = 5;
    uint256 internal constant OP_MAX = 6;
    uint256 internal constant OP_MIN = 7;
    uint256 internal constant OP_CLIP = 8;
    uint256 internal constant OP_RESHAPE = 9;
    uint256 internal constant OP_FLATTEN = 10;
    uint256 internal constant OP_TRANSPOSE = 11;
    uint256 internal constant OP_ARGMAX = 12;
    uint256 internal constant OP_IDENTITY = 13;
    uint256 internal constant OP_CAST = 14;

    /// @notice `checkOp` results.
    uint256 internal constant CHECK_OK = 0;
    uint256 internal constant CHECK_SHAPE = 1;
    uint256 internal constant CHECK_ATTRS = 2;

    uint256 internal constant MAX_RANK = 4;

    /// @notice Whether `opcode` is in the v1 op set.
    function supported(uint256 opcode) internal pure returns (bool) {
        return opcode >= OP_MATMUL && opcode <= OP_CAST;
    }

    /// @notice Number of inputs and of i64 attributes of a supported opcode.
    function arity(uint256 opcode) internal pure returns (uint256 nIn, uint256 nAttr) {
        if (opcode <= OP_MIN) return (2, 0);
        if (opcode == OP_CLIP) return (1, 2);
        if (opcode == OP_ARGMAX) return (1, 3);
        if (opcode == OP_CAST) return (1, 1);
        return (1, 0);
    }

    /// @notice Whether `w` is a legal element width in bytes.
    function isWidth(uint256 w) internal pure returns (bool) {
        return w == 1 || w == 2 || w == 4 || w == 8;
    }

    function numel(uint256[] memory shape) internal pure returns (uint256 n) {
        n = 1;
        // Rank <= 4 and dims < 2^32, so the product stays below 2^128.
        unchecked {
            for (uint256 i; i < shape.length; ++i) {
                n *= shape[i];
            }
        }
    }

    /// @notice Checks the attributes of a supported op and that `out` is exactly the shape it produces
    /// from `ins` (the rules of `oracle.profile.program._check_op`). Arity is checked by the caller.
    function checkOp(uint256 opcode, uint256[][] memory ins, int256[] memory attrs, uint256[] memory out)
        internal
        pure
        returns (uint256)
    {
        if (opcode == OP_MATMUL) {
            uint256[] memory a = ins[0];
            uint256[] memory b = ins[1];
            if (a.length != 2 || b.length != 2 || a[1] != b[0]) return CHECK_SHAPE;
            return out.length == 2 && out[0] == a[0] && out[1] == b[1] ? CHECK_OK : CHECK_SHAPE;
        }
        if (opcode <= OP_MIN) return _broadcasts(ins[0], ins[1], out) ? CHECK_OK : CHECK_SHAPE;
        uint256[] memory x = ins[0];
        if (opcode == OP_CLIP) {
            if (attrs[0] > attrs[1]) return CHECK_ATTRS;
            return _equal(x, out) ? CHECK_OK : CHECK_SHAPE;
        }
        if (opcode == OP_TRANSPOSE) {
            if (x.length != 2) return CHECK_SHAPE;
            return out.length == 2 && out[0] == x[1] && out[1] == x[0] ? CHECK_OK : CHECK_SHAPE;
        }
        if (opcode == OP_ARGMAX) {
            (int256 axis, int256 keepdims, int256 last) = (attrs[0], attrs[1], attrs[2]);
            if (axis < 0 || uint256(axis) >= x.length) return CHECK_ATTRS;
            if ((keepdims != 0 && keepdims != 1) || (last != 0 && last != 1)) return CHECK_ATTRS;
            return _argmaxShapeMatches(x, uint256(axis), keepdims == 1, out) ? CHECK_OK : CHECK_SHAPE;
        }
        if (opcode == OP_CAST) {
            if (attrs[0] < 0 || !isWidth(uint256(attrs[0]))) return CHECK_ATTRS;
            return _equal(x, out) ? CHECK_OK : CHECK_SHAPE;
        }
        if (opcode == OP_IDENTITY) return _equal(x, out) ? CHECK_OK : CHECK_SHAPE;
        if (opcode == OP_FLATTEN && out.length != 2) return CHECK_SHAPE;
        // Reshape, Flatten: any output shape with the same element count.
        return numel(out) == numel(x) ? CHECK_OK : CHECK_SHAPE;
    }

    /// @notice Whether the op only relabels its input (Reshape, Flatten, Identity, Cast): its output
    /// shares the input's elements.
    function isAlias(uint256 opcode) internal pure returns (bool) {
        return opcode == OP_RESHAPE || opcode == OP_FLATTEN || opcode == OP_IDENTITY || opcode == OP_CAST;
    }

    /// @notice Whether the op may write its output over an input of the same length: it reads each
    /// element at an output position before writing that position, and never reads it again (the
    /// elementwise ops and Clip; a broadcast operand is shorter than the output, so never reused).
    function isInPlace(uint256 opcode) internal pure returns (bool) {
        return opcode >= OP_ADD && opcode <= OP_CLIP;
    }

    /// @notice A pool holding up to `capacity` buffers.
    function newPool(uint256 capacity) internal pure returns (Pool memory pool) {
        pool.free = new int256[][](capacity);
    }

    /// @notice A buffer of `len` words with arbitrary contents: a pooled one if any has that length.
    function take(Pool memory pool, uint256 len) internal pure returns (int256[] memory buf) {
        uint256 n = pool.count;
        for (uint256 i; i < n; ++i) {
            if (pool.free[i].length == len) {
                buf = pool.free[i];
                pool.free[i] = pool.free[n - 1];
                pool.count = n - 1;
                return buf;
            }
        }
        // Fresh memory; callers overwrite every element, so skip Solidity's zero-fill.
        assembly ("memory-safe") {
            buf := mload(0x40)
            mstore(buf, len)
            mstore(0x40, add(buf, shl(5, add(len, 1))))
        }
    }

    /// @notice Returns a dead buffer to the pool (dropped if the pool is full).
    function give(Pool memory pool, int256[] memory buf) internal pure {
        if (pool.count < pool.free.length) pool.free[pool.count++] = buf;
    }

    /// @notice Evaluates a supported op whose shapes and attributes passed `checkOp`; the output buffer
    /// comes from `pool` (which may hand back a dead input buffer: see `isInPlace`).
    function evaluate(
        uint256 opcode,
        Tensor[] memory ins,
        int256[] memory attrs,
        uint256[] memory outShape,
        Pool memory pool
    ) internal pure returns (Tensor memory out) {
        out.shape = outShape;
        Tensor memory x = ins[0];
        if (isAlias(opcode)) {
            // The same elements in the same row-major order.
            (out.values, out.packed, out.width) = (x.values, x.packed, x.width);
            return out;
        }
        out.values = take(pool, numel(outShape));
        if (opcode == OP_MATMUL) {
            Tensor memory b = ins[1];
            (uint256 m, uint256 k, uint256 n) = (x.shape[0], x.shape[1], b.shape[1]);
            // Packed weights are read in place even if some other op materialised them.
            if (b.packed != 0) {
                // Lane accumulators and batches: pooled too, so consecutive layers share them.
                int256[] memory scratch = take(pool, MatMulKernels.scratchWords(n, b.width));
                uint256 at;
                assembly ("memory-safe") {
                    at := add(scratch, 0x20)
                }
                MatMulKernels.mulPacked(values(x), m, k, n, b.packed, b.width, out.values, at);
                give(pool, scratch);
            } else {
                MatMulKernels.mulWords(values(x), values(b), m, k, n, out.values);
            }
        } else if (opcode <= OP_MIN) {
            _binary(opcode, x, ins[1], outShape, out.values);
        } else if (opcode == OP_CLIP) {
            _clip(values(x), attrs[0], attrs[1], out.values);
        } else if (opcode == OP_TRANSPOSE) {
            _transpose(values(x), x.shape[0], x.shape[1], out.values);
        } else {
            _argmax(values(x), x.shape, uint256(attrs[0]), attrs[2] == 1, out.values);
        }
    }

    /// @notice The tensor's elements one per word, unpacking (once) a packed tensor.
    function values(Tensor memory t) internal pure returns (int256[] memory v) {
        v = t.values;
        if (v.length == 0) {
            v = unpack(t.packed, t.width, numel(t.shape));
            t.values = v;
        }
    }

    /// @notice Sign-extends `count` big-endian elements of `w` bytes at memory address `src`.
    function unpack(uint256 src, uint256 w, uint256 count) internal pure returns (int256[] memory v) {
        v = new int256[](count);
        assembly ("memory-safe") {
            let sh := sub(256, shl(3, w))
            let dst := add(v, 0x20)
            for { let end := add(dst, shl(5, count)) } lt(dst, end) {
                dst := add(dst, 0x20)
                src := add(src, w)
            } { mstore(dst, sar(sh, mload(src))) }
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Shape rules
    // ---------------------------------------------------------------------------------------------

    function _equal(uint256[] memory a, uint256[] memory b) private pure returns (bool) {
        if (a.length != b.length) return false;
        for (uint256 i; i < a.length; ++i) {
            if (a[i] != b[i]) return false;
        }
        return true;
    }

    /// @dev numpy/ONNX multidirectional broadcasting: right-aligned, a dimension 1 stretches.
    function _broadcasts(uint256[] memory a, uint256[] memory b, uint256[] memory out) private pure returns (bool) {
        uint256 rank = a.length > b.length ? a.length : b.length;
        if (out.length != rank) return false;
        for (uint256 i; i < rank; ++i) {
            uint256 da = _paddedDim(a, rank, i);
            uint256 db = _paddedDim(b, rank, i);
            uint256 d;
            if (da == db || db == 1) d = da;
            else if (da == 1) d = db;
            else return false;
            if (out[i] != d) return false;
        }
        return true;
    }

    /// @dev Dimension `i` of `shape` left-padded with ones to `rank`.
    function _paddedDim(uint256[] memory shape, uint256 rank, uint256 i) private pure returns (uint256) {
        uint256 pad = rank - shape.length;
        return i < pad ? 1 : shape[i - pad];
    }

    function _argmaxShapeMatches(uint256[] memory x, uint256 axis, bool keepdims, uint256[] memory out)
        private
        pure
        returns (bool)
    {
        if (out.length != (keepdims ? x.length : x.length - 1)) return false;
        uint256 j;
        for (uint256 i; i < x.length; ++i) {
            if (i == axis) {
                if (keepdims) {
                    if (out[j++] != 1) return false;
                }
            } else if (out[j++] != x[i]) {
                return false;
            }
        }
        return true;
    }

    // ---------------------------------------------------------------------------------------------
    // Kernels
    // ---------------------------------------------------------------------------------------------

    /// @dev Add, Sub, Mul, Div, Max, Min with broadcasting, into `out`. Both operands and the output are
    /// viewed as rank 4 (left-padded with ones); a broadcast dimension gets stride 0, so one strided inner
    /// loop over the last dimension serves every shape combination. Packed operands (constants: biases,
    /// divisors) are read in place: an element is `sar(256 - 8w, mload(p))`, and a word operand is the
    /// case w = 32 (`sar(0, .)`), so no constant is ever unpacked into memory.
    function _binary(uint256 opcode, Tensor memory ta, Tensor memory tb, uint256[] memory outShape, int256[] memory out)
        private
        pure
    {
        // geo[0..3]: output dims; [4..7] / [8..11]: A / B strides in bytes; [12] / [13]: A / B base
        // addresses; [14] / [15]: A / B shifts that sign-extend one element.
        uint256[16] memory geo;
        for (uint256 i; i < 4; ++i) {
            geo[i] = _paddedDim(outShape, 4, i);
        }
        _operandView(ta, geo, 4, 12, 14);
        _operandView(tb, geo, 8, 13, 15);
        assembly ("memory-safe") {
            // One output row, operands advancing by their innermost strides.
            function rowGen(op, po, pa, pb, g) {
                let end := add(po, shl(5, mload(add(g, 0x60))))
                let sa := mload(add(g, 0xe0))
                let sb := mload(add(g, 0x160))
                let sha := mload(add(g, 0x1c0))
                let shb := mload(add(g, 0x1e0))
                switch op
                case 2 {
                    for {} lt(po, end) {
                        po := add(po, 0x20)
                        pa := add(pa, sa)
                        pb := add(pb, sb)
                    } { mstore(po, signextend(7, add(sar(sha, mload(pa)), sar(shb, mload(pb))))) }
                }
                case 3 {
                    for {} lt(po, end) {
                        po := add(po, 0x20)
                        pa := add(pa, sa)
                        pb := add(pb, sb)
                    } { mstore(po, signextend(7, sub(sar(sha, mload(pa)), sar(shb, mload(pb))))) }
                }
                case 4 {
                    for {} lt(po, end) {
                        po := add(po, 0x20)
                        pa := add(pa, sa)
                        pb := add(pb, sb)
                    } { mstore(po, signextend(7, mul(sar(sha, mload(pa)), sar(shb, mload(pb))))) }
                }
                case 5 {
                    for {} lt(po, end) {
                        po := add(po, 0x20)
                        pa := add(pa, sa)
                        pb := add(pb, sb)
                    } { mstore(po, signextend(7, sdiv(sar(sha, mload(pa)), sar(shb, mload(pb))))) }
                }
                case 6 {
                    for {} lt(po, end) {
                        po := add(po, 0x20)
                        pa := add(pa, sa)
                        pb := add(pb, sb)
                    } {
                        let v := sar(sha, mload(pa))
                        let t := sar(shb, mload(pb))
                        if slt(v, t) { v := t }
                        mstore(po, v)
                    }
                }
                default {
                    for {} lt(po, end) {
                        po := add(po, 0x20)
                        pa := add(pa, sa)
                        pb := add(pb, sb)
                    } {
                        let v := sar(sha, mload(pa))
                        let t := sar(shb, mload(pb))
                        if sgt(v, t) { v := t }
                        mstore(po, v)
                    }
                }
            }
            // One output row whose B operand is the same element `y` throughout (stride 0).
            function rowScalarB(op, po, pa, y, g) {
                let end := add(po, shl(5, mload(add(g, 0x60))))
                let sa := mload(add(g, 0xe0))
                let sha := mload(add(g, 0x1c0))
                switch op
                case 2 {
                    for {} lt(po, end) {
                        po := add(po, 0x20)
                        pa := add(pa, sa)
                    } { mstore(po, signextend(7, add(sar(sha, mload(pa)), y))) }
                }
                case 3 {
                    for {} lt(po, end) {
                        po := add(po, 0x20)
                        pa := add(pa, sa)
                    } { mstore(po, signextend(7, sub(sar(sha, mload(pa)), y))) }
                }
                case 4 {
                    for {} lt(po, end) {
                        po := add(po, 0x20)
                        pa := add(pa, sa)
                    } { mstore(po, signextend(7, mul(sar(sha, mload(pa)), y))) }
                }
                case 5 {
                    for {} lt(po, end) {
                        po := add(po, 0x20)
                        pa := add(pa, sa)
                    } { mstore(po, signextend(7, sdiv(sar(sha, mload(pa)), y))) }
                }
                case 6 {
                    for {} lt(po, end) {
                        po := add(po, 0x20)
                        pa := add(pa, sa)
                    } {
                        let v := sar(sha, mload(pa))
                        let t := y
                        if slt(v, t) { v := t }
                        mstore(po, v)
                    }
                }
                default {
                    for {} lt(po, end) {
                        po := add(po, 0x20)
                        pa := add(pa, sa)
                    } {
                        let v := sar(sha, mload(pa))
                        let t := y
                        if sgt(v, t) { v := t }
                        mstore(po, v)
                    }
                }
            }
            // The three outer dimensions; geo as laid out above.
            function grid(op, po, g) {
                let len := shl(5, mload(add(g, 0x60)))
                for { let i0 := 0 } lt(i0, mload(g)) { i0 := add(i0, 1) } {
                    for { let i1 := 0 } lt(i1, mload(add(g, 0x20))) { i1 := add(i1, 1) } {
                        let pa := add(
                            mload(add(g, 0x180)), add(mul(i0, mload(add(g, 0x80))), mul(i1, mload(add(g, 0xa0))))
                        )
                        let pb := add(
                            mload(add(g, 0x1a0)), add(mul(i0, mload(add(g, 0x100))), mul(i1, mload(add(g, 0x120))))
                        )
                        for { let i2 := 0 } lt(i2, mload(add(g, 0x40))) { i2 := add(i2, 1) } {
                            switch mload(add(g, 0x160))
                            case 0 { rowScalarB(op, po, pa, sar(mload(add(g, 0x1e0)), mload(pb)), g) }
                            default { rowGen(op, po, pa, pb, g) }
                            po := add(po, len)
                            pa := add(pa, mload(add(g, 0xc0)))
                            pb := add(pb, mload(add(g, 0x140)))
                        }
                    }
                }
            }
            grid(opcode, add(out, 0x20), geo)
        }
    }

    /// @dev Writes the rank-4 view of an operand into geo: byte strides at [first..first+3] (0 along
    /// broadcast dimensions of size 1; shapes are right-aligned), base address at [baseAt], shift at
    /// [shiftAt]. A materialised operand is read one word per element, a packed one in place.
    function _operandView(Tensor memory t, uint256[16] memory geo, uint256 first, uint256 baseAt, uint256 shiftAt)
        private
        pure
    {
        uint256 size = 32;
        if (t.values.length != 0) {
            int256[] memory v = t.values;
            uint256 base;
            assembly ("memory-safe") {
                base := add(v, 0x20)
            }
            geo[baseAt] = base;
        } else {
            size = t.width;
            geo[baseAt] = t.packed;
            geo[shiftAt] = 256 - 8 * size;
        }
        uint256 stride = size;
        for (uint256 i = 4; i > 0; --i) {
            uint256 d = _paddedDim(t.shape, 4, i - 1);
            geo[first + i - 1] = d == 1 ? 0 : stride;
            stride *= d;
        }
    }

    function _clip(int256[] memory x, int256 lo, int256 hi, int256[] memory out) private pure {
        assembly ("memory-safe") {
            let po := add(out, 0x20)
            for {
                let px := add(x, 0x20)
                let end := add(px, shl(5, mload(x)))
            } lt(px, end) {
                px := add(px, 0x20)
                po := add(po, 0x20)
            } {
                let v := mload(px)
                if slt(v, lo) { v := lo }
                if sgt(v, hi) { v := hi }
                mstore(po, v)
            }
        }
    }

    function _transpose(int256[] memory x, uint256 rows, uint256 cols, int256[] memory out) private pure {
        assembly ("memory-safe") {
            let px := add(x, 0x20)
            let base := add(out, 0x20)
            for { let i := 0 } lt(i, rows) { i := add(i, 1) } {
                // x[i, j] -> out[j, i]
                let po := add(base, shl(5, i))
                for { let j := 0 } lt(j, cols) { j := add(j, 1) } {
                    mstore(po, mload(px))
                    px := add(px, 0x20)
                    po := add(po, shl(5, rows))
                }
            }
        }
    }

    /// @dev Index of the first (or last) maximum along `axis`, viewing x as [outer, len, inner].
    function _argmax(int256[] memory x, uint256[] memory shape, uint256 axis, bool last, int256[] memory out)
        private
        pure
    {
        uint256 outer = 1;
        uint256 inner = 1;
        for (uint256 i; i < axis; ++i) {
            outer *= shape[i];
        }
        for (uint256 i = axis + 1; i < shape.length; ++i) {
            inner *= shape[i];
        }
        uint256 len = shape[axis];
        assembly ("memory-safe") {
            let step := shl(5, inner)
            let po := add(out, 0x20)
            for { let o := 0 } lt(o, outer) { o := add(o, 1) } {
                for { let i := 0 } lt(i, inner) { i := add(i, 1) } {
                    let p := add(add(x, 0x20), shl(5, add(mul(mul(o, len), inner), i)))
                    let best := mload(p)
                    let idx := 0
                    for { let j := 1 } lt(j, len) { j := add(j, 1) } {
                        p := add(p, step)
                        let v := mload(p)
                        // First maximum: replace only on a strictly greater value; last: also on ties.
                        if or(sgt(v, best), and(last, eq(v, best))) {
                            best := v
                            idx := j
                        }
                    }
                    mstore(po, idx)
                    po := add(po, 0x20)
                }
            }
        }
    }
}
