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
    uint256 internal constant OP_GATHER = 15;
    uint256 internal constant OP_REDUCE_SUM = 16;
    uint256 internal constant OP_REDUCE_MAX = 17;
    uint256 internal constant OP_TRANSPOSE_ND = 18;

    /// @notice `checkOp` results.
    uint256 internal constant CHECK_OK = 0;
    uint256 internal constant CHECK_SHAPE = 1;
    uint256 internal constant CHECK_ATTRS = 2;

    uint256 internal constant MAX_RANK = 4;

    /// @notice Whether `opcode` is in the v1 op set.
    function supported(uint256 opcode) internal pure returns (bool) {
        return opcode >= OP_MATMUL && opcode <= OP_TRANSPOSE_ND;
    }

    /// @notice Number of inputs and of i64 attributes of a supported opcode.
    function arity(uint256 opcode) internal pure returns (uint256 nIn, uint256 nAttr) {
        if (opcode <= OP_MIN || opcode == OP_GATHER) return (2, 0);
        if (opcode == OP_CLIP || opcode == OP_REDUCE_SUM || opcode == OP_REDUCE_MAX) return (1, 2);
        if (opcode == OP_TRANSPOSE_ND) return (1, 4);
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
        uint256[] memory x = ins[0];
        if (opcode == OP_MATMUL) {
            // [M,K]x[K,N], [B,M,K]x[K,N] (B broadcast) or [B,M,K]x[B,K,N] -> x.shape[:-1] + [N].
            uint256[] memory b = ins[1];
            (uint256 r, uint256 rb) = (x.length, b.length);
            if (r < 2 || r > 3 || (rb != 2 && rb != r) || x[r - 1] != b[rb - 2] || out.length != r) return CHECK_SHAPE;
            if ((rb == 3 && x[0] != b[0]) || out[r - 1] != b[rb - 1]) return CHECK_SHAPE;
            return _prefixEqual(x, 0, out, 0, r - 1) ? CHECK_OK : CHECK_SHAPE;
        }
        if (opcode <= OP_MIN) return _broadcasts(x, ins[1], out) ? CHECK_OK : CHECK_SHAPE;
        if (opcode == OP_GATHER) {
            // data [n, ...] by indices of any shape -> indices.shape + data.shape[1:].
            uint256[] memory idx = ins[1];
            if (x.length == 0 || out.length != idx.length + x.length - 1) return CHECK_SHAPE;
            return _prefixEqual(idx, 0, out, 0, idx.length) && _prefixEqual(x, 1, out, idx.length, x.length - 1)
                ? CHECK_OK
                : CHECK_SHAPE;
        }
        if (opcode == OP_REDUCE_SUM || opcode == OP_REDUCE_MAX) {
            if (attrs[0] < 0 || uint256(attrs[0]) >= x.length || (attrs[1] != 0 && attrs[1] != 1)) return CHECK_ATTRS;
            return _argmaxShapeMatches(x, uint256(attrs[0]), attrs[1] == 1, out) ? CHECK_OK : CHECK_SHAPE;
        }
        if (opcode == OP_TRANSPOSE_ND) {
            // attrs: a permutation of the rank-4 view (left-padded with ones) that fixes the padding.
            uint256 pad = MAX_RANK - x.length;
            uint256 seen;
            for (uint256 i; i < MAX_RANK; ++i) {
                int256 d = attrs[i];
                if (d < 0 || d > 3 || (seen >> uint256(d)) & 1 == 1 || (i < pad && uint256(d) != i)) return CHECK_ATTRS;
                seen |= 1 << uint256(d);
                if (i >= pad && (out.length != x.length || out[i - pad] != x[uint256(d) - pad])) return CHECK_SHAPE;
            }
            return out.length == x.length ? CHECK_OK : CHECK_SHAPE;
        }
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
            uint256 rb = b.shape.length;
            (uint256 k, uint256 n) = (b.shape[rb - 2], b.shape[rb - 1]);
            // A rank-3 A against a rank-2 B is one [B*M, K] x [K, N] product (the same row-major layout).
            uint256 m = numel(x.shape) / k;
            // Packed weights are read in place even if some other op materialised them.
            if (b.packed != 0 && rb == 2) {
                // Lane accumulators and batches: pooled too, so consecutive layers share them.
                int256[] memory scratch = take(pool, MatMulKernels.scratchWords(n, b.width));
                uint256 at;
                assembly ("memory-safe") {
                    at := add(scratch, 0x20)
                }
                MatMulKernels.mulPacked(values(x), m, k, n, b.packed, b.width, out.values, at);
                give(pool, scratch);
            } else {
                // Batched: one product per leading index of B.
                uint256 batch = rb == 3 ? b.shape[0] : 1;
                MatMulKernels.mulWords(values(x), values(b), batch, m / batch, k, n, out.values);
            }
        } else if (opcode <= OP_MIN) {
            _binary(opcode, x, ins[1], outShape, out.values);
        } else if (opcode == OP_CLIP) {
            _clip(values(x), attrs[0], attrs[1], out.values);
        } else if (opcode == OP_TRANSPOSE) {
            _transpose(values(x), x.shape[0], x.shape[1], out.values);
        } else if (opcode == OP_GATHER) {
            _gather(x, values(ins[1]), out.values);
        } else if (opcode == OP_TRANSPOSE_ND) {
            _transposeNd(values(x), x.shape, attrs, out.values);
        } else {
            // ArgMax (mode 0 first / 1 last maximum), ReduceSum (2), ReduceMax (3).
            uint256 mode = opcode == OP_ARGMAX ? uint256(attrs[2]) : opcode - 14;
            _reduce(values(x), x.shape, uint256(attrs[0]), mode, out.values);
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

    /// @dev Whether a[aFrom..aFrom+len) == b[bFrom..bFrom+len).
    function _prefixEqual(uint256[] memory a, uint256 aFrom, uint256[] memory b, uint256 bFrom, uint256 len)
        private
        pure
        returns (bool)
    {
        for (uint256 i; i < len; ++i) {
            if (a[aFrom + i] != b[bFrom + i]) return false;
        }
        return true;
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

    /// @dev Along `axis`, viewing x as [outer, len, inner]: mode 0 / 1 the index of the first / last
    /// maximum (ArgMax), 2 the sum reduced to int64 (ReduceSum), 3 the maximum (ReduceMax).
    function _reduce(int256[] memory x, uint256[] memory shape, uint256 axis, uint256 mode, int256[] memory out)
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
            let last := eq(mode, 1)
            for { let o := 0 } lt(o, outer) { o := add(o, 1) } {
                for { let i := 0 } lt(i, inner) { i := add(i, 1) } {
                    let p := add(add(x, 0x20), shl(5, add(mul(mul(o, len), inner), i)))
                    let best := mload(p)
                    let idx := 0
                    switch mode
                    case 2 {
                        for { let j := 1 } lt(j, len) { j := add(j, 1) } {
                            p := add(p, step)
                            best := add(best, mload(p))
                        }
                        best := signextend(7, best)
                    }
                    default {
                        for { let j := 1 } lt(j, len) { j := add(j, 1) } {
                            p := add(p, step)
                            let v := mload(p)
                            // First maximum: replace only on a strictly greater value; last: also on ties.
                            if or(sgt(v, best), and(last, eq(v, best))) {
                                best := v
                                idx := j
                            }
                        }
                    }
                    if lt(mode, 2) { best := idx }
                    mstore(po, best)
                    po := add(po, 0x20)
                }
            }
        }
    }

    /// @dev Gather along axis 0: output row q is row indices[q] of data, or zeros for an index outside
    /// [0, n) (total semantics; unsigned comparison catches negative ones). Packed data (an embedding
    /// table) is read in place.
    function _gather(Tensor memory data, int256[] memory idx, int256[] memory out) private pure {
        uint256 n = data.shape[0];
        uint256 inner = numel(data.shape) / n;
        (uint256 base, uint256 size, uint256 sh) = (data.packed, data.width, 256 - 8 * data.width);
        if (base == 0) {
            int256[] memory v = data.values;
            assembly ("memory-safe") {
                base := add(v, 0x20)
            }
            (size, sh) = (32, 0);
        }
        assembly ("memory-safe") {
            let po := add(out, 0x20)
            let rowBytes := mul(inner, size)
            let pi := add(idx, 0x20)
            for { let endI := add(pi, shl(5, mload(idx))) } lt(pi, endI) { pi := add(pi, 0x20) } {
                let i := mload(pi)
                let end := add(po, shl(5, inner))
                switch lt(i, n)
                case 0 {
                    for {} lt(po, end) { po := add(po, 0x20) } { mstore(po, 0) }
                }
                default {
                    for { let p := add(base, mul(i, rowBytes)) } lt(po, end) {
                        po := add(po, 0x20)
                        p := add(p, size)
                    } { mstore(po, sar(sh, mload(p))) }
                }
            }
        }
    }

    /// @dev N-D Transpose on the rank-4 view: output dimension i walks input dimension attrs[i].
    function _transposeNd(int256[] memory x, uint256[] memory shape, int256[] memory attrs, int256[] memory out)
        private
        pure
    {
        // g[0..3]: output dims; g[4..7]: input byte strides along them.
        uint256[8] memory g;
        uint256[4] memory stride;
        uint256 st = 32;
        for (uint256 i = MAX_RANK; i > 0; --i) {
            stride[i - 1] = st;
            st *= _paddedDim(shape, MAX_RANK, i - 1);
        }
        for (uint256 i; i < MAX_RANK; ++i) {
            uint256 d = uint256(attrs[i]);
            (g[i], g[i + 4]) = (_paddedDim(shape, MAX_RANK, d), stride[d]);
        }
        assembly ("memory-safe") {
            let po := add(out, 0x20)
            let d3 := shl(5, mload(add(g, 0x60)))
            let s3 := mload(add(g, 0xe0))
            for { let i0 := 0 } lt(i0, mload(g)) { i0 := add(i0, 1) } {
                for { let i1 := 0 } lt(i1, mload(add(g, 0x20))) { i1 := add(i1, 1) } {
                    let p1 := add(add(x, 0x20), add(mul(i0, mload(add(g, 0x80))), mul(i1, mload(add(g, 0xa0)))))
                    for { let i2 := 0 } lt(i2, mload(add(g, 0x40))) { i2 := add(i2, 1) } {
                        let p := add(p1, mul(i2, mload(add(g, 0xc0))))
                        for { let end := add(po, d3) } lt(po, end) {
                            po := add(po, 0x20)
                            p := add(p, s3)
                        } { mstore(po, mload(p)) }
                    }
                }
            }
        }
    }
}
