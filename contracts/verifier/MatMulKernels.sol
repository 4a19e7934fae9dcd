// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title MatMulKernels
/// @notice `C[M,N] = A[M,K] x B[K,N]` for the integer verifier, with every element of C reduced to int64
/// (two's complement wrap), which is what numpy's int64 matmul returns.
/// @dev Gas is the whole point of this file. A fraud proof re-executes a model inside one block, and a
/// MatMul-dominated MLP spends nearly all its gas here, so the hot loop is Yul.
///
/// Why the result can be computed in wrapping 256-bit arithmetic: every step below is a ring operation
/// mod 2^256 and 2^64 divides 2^256, so reducing the final sums to int64 gives exactly the int64
/// result, whatever the magnitudes. For compiled programs nothing even wraps.
///
/// Where the weights live: B is normally a constant of the program, stored packed (1, 2, 4 or 8 bytes per
/// element). Expanding it into 32-byte words would cost 32x the memory, and memory expansion is
/// quadratic, so the packed kernel reads B in place from the program bytes: one 32-byte `mload` yields
/// 32/w consecutive weights of a row of B.
///
/// SIMD within a register (widths 1, 2, 4). Instead of extracting weights one by one, each loaded word of
/// a row of B is split with masks into 4 "lane words", each holding 8/w weights in lanes of 32*w bits (a
/// weight in the low w bytes of its lane, zeros above). One `mul` by the activation then multiplies 8/w
/// weights at once, and one `add` accumulates them. That needs unsigned lanes, so:
///   - weights are biased: u = w + 2^(8w-1) (xor with 0x80.. per element), 0 <= u < 2^(8w);
///     for a negative activation x we use (2^(8w)-1) - u = -w + (2^(8w-1) - 1) (xor with 0x7f..) and |x|,
///   - so x * w = |x| * lane - corr_x with corr_x = |x| * 2^(8w-1) (x > 0) or |x| * (2^(8w-1) - 1)
///     (x < 0); the corrections of a row of A sum into one scalar subtracted from each output of the row.
///   - a lane holds at most (2^(8w)-1) * sum|x| < 2^(32w) as long as sum|x| <= LIM = 2^(24w) - 1, so
///     lanes never carry into each other. When the next activation would break that bound the lanes are
///     flushed into C and restarted.
/// Large activations: |x| is split into limbs of 16w bits (|x| = sum_i limb_i 2^(16w i)), each queued
/// at "lane level" i, a separate set of accumulators read out shifted left by 16w*i. A limb is below
/// 2^(16w), so a level flushes at most once per 2^(8w) rows: the cost per MAC stays bounded (about 2.5x
/// the common case when every activation is an int64 extreme) instead of falling back to element-by-
/// element products. Activations below 2^(16w) (the usual case after a rescale) only use level 0.
/// Rows of B are processed two at a time (one load and store of each accumulator word per two rows),
/// from a small batch of non-zero activations collected first. A zero activation (about half of them
/// after a ReLU) costs one comparison. Width 8 weights take an exact element-by-element path (no room
/// for lanes; the compiler stores weights in the narrowest width, so this is rare).
library MatMulKernels {
    /// @dev Activations collected before a batch of row pairs runs (bounded, so memory stays small).
    /// The Yul below spells it as the literal 16 (Yul functions cannot read Solidity constants).
    uint256 private constant BATCH = 16;
    /// @dev Bytes of a lane level's control block (19 words used, see `initLevels`).
    uint256 private constant CTX_BYTES = 0x260;

    /// @notice Words of scratch memory `mulPacked` needs for N = `cols` and weights of `width` bytes.
    function scratchWords(uint256 cols, uint256 width) internal pure returns (uint256) {
        if (width == 8) return 0;
        uint256 words = ((cols * width + 63) / 64) * 2;
        uint256 levels = (63 + 16 * width - 1) / (16 * width);
        return levels * (CTX_BYTES / 32 + words * 4 + BATCH * 3);
    }

    /// @notice Writes A x B into `c` (length M*N, any previous contents) with B stored packed at memory
    /// address `b` (row-major, `width` bytes per element, big-endian two's complement). A is one word
    /// per element. `scratch` is the address of `scratchWords(N, width)` words of any contents.
    function mulPacked(
        int256[] memory a,
        uint256 m,
        uint256 k,
        uint256 cols,
        uint256 b,
        uint256 width,
        int256[] memory c,
        uint256 scratch
    ) internal pure {
        assembly ("memory-safe") {
            // ---- Width-specialised multiply-accumulate of rows of B into the lane accumulators ----
            // acc[4q + j] += |x| * laneword_j(u_q) for each weight word u_q of the row, u_q = word xor pat.
            // Masks and shifts are literals: a PUSH costs what a DUP costs and frees a stack slot.
            function fma1(wp, p, end, x, pat) {
                // int8: 32 weights per word -> 4 lane words of 8 lanes x 32 bits.
                for {} lt(p, end) {
                    p := add(p, 0x80)
                    wp := add(wp, 0x20)
                } {
                    let u := xor(mload(wp), pat)
                    mstore(p, add(mload(p), mul(and(u, 0x000000ff000000ff000000ff000000ff000000ff000000ff000000ff000000ff), x)))
                    let q := add(p, 0x20)
                    mstore(q, add(mload(q), mul(and(shr(8, u), 0x000000ff000000ff000000ff000000ff000000ff000000ff000000ff000000ff), x)))
                    q := add(p, 0x40)
                    mstore(q, add(mload(q), mul(and(shr(16, u), 0x000000ff000000ff000000ff000000ff000000ff000000ff000000ff000000ff), x)))
                    q := add(p, 0x60)
                    mstore(q, add(mload(q), mul(shr(24, and(u, 0xff000000ff000000ff000000ff000000ff000000ff000000ff000000ff000000)), x)))
                }
            }
            function fma2(wp, p, end, x, pat) {
                // int16: 16 weights per word -> 4 lane words of 4 lanes x 64 bits.
                for {} lt(p, end) {
                    p := add(p, 0x80)
                    wp := add(wp, 0x20)
                } {
                    let u := xor(mload(wp), pat)
                    mstore(p, add(mload(p), mul(and(u, 0x000000000000ffff000000000000ffff000000000000ffff000000000000ffff), x)))
                    let q := add(p, 0x20)
                    mstore(q, add(mload(q), mul(and(shr(16, u), 0x000000000000ffff000000000000ffff000000000000ffff000000000000ffff), x)))
                    q := add(p, 0x40)
                    mstore(q, add(mload(q), mul(and(shr(32, u), 0x000000000000ffff000000000000ffff000000000000ffff000000000000ffff), x)))
                    q := add(p, 0x60)
                    mstore(q, add(mload(q), mul(shr(48, and(u, 0xffff000000000000ffff000000000000ffff000000000000ffff000000000000)), x)))
                }
            }
            function fma4(wp, p, end, x, pat) {
                // int32: 8 weights per word -> 4 lane words of 2 lanes x 128 bits.
                for {} lt(p, end) {
                    p := add(p, 0x80)
                    wp := add(wp, 0x20)
                } {
                    let u := xor(mload(wp), pat)
                    mstore(p, add(mload(p), mul(and(u, 0x000000000000000000000000ffffffff000000000000000000000000ffffffff), x)))
                    let q := add(p, 0x20)
                    mstore(q, add(mload(q), mul(and(shr(32, u), 0x000000000000000000000000ffffffff000000000000000000000000ffffffff), x)))
                    q := add(p, 0x40)
                    mstore(q, add(mload(q), mul(and(shr(64, u), 0x000000000000000000000000ffffffff000000000000000000000000ffffffff), x)))
                    q := add(p, 0x60)
                    mstore(q, add(mload(q), mul(shr(96, and(u, 0xffffffff000000000000000000000000ffffffff000000000000000000000000)), x)))
                }
            }
            function fma1x2(w1, w2, p, end, x1, x2, t1, t2) {
                // fma1 for two rows of B (activations x1, x2): each accumulator word is loaded
                // and stored once per two rows. No lane overflow: x1 + x2 <= LIM.
                // Two weight words per iteration (the accumulator count is even) to halve the loop overhead.
                for {} lt(p, end) {
                    p := add(p, 0x100)
                    w1 := add(w1, 0x40)
                    w2 := add(w2, 0x40)
                } {
                    let u1 := xor(mload(w1), t1)
                    let u2 := xor(mload(w2), t2)
                    mstore(p, add(mload(p), add(mul(and(u1, 0x000000ff000000ff000000ff000000ff000000ff000000ff000000ff000000ff), x1), mul(and(u2, 0x000000ff000000ff000000ff000000ff000000ff000000ff000000ff000000ff), x2))))
                    let q := add(p, 0x20)
                    mstore(q, add(mload(q), add(mul(and(shr(8, u1), 0x000000ff000000ff000000ff000000ff000000ff000000ff000000ff000000ff), x1), mul(and(shr(8, u2), 0x000000ff000000ff000000ff000000ff000000ff000000ff000000ff000000ff), x2))))
                    q := add(p, 0x40)
                    mstore(q, add(mload(q), add(mul(and(shr(16, u1), 0x000000ff000000ff000000ff000000ff000000ff000000ff000000ff000000ff), x1), mul(and(shr(16, u2), 0x000000ff000000ff000000ff000000ff000000ff000000ff000000ff000000ff), x2))))
                    q := add(p, 0x60)
                    mstore(q, add(mload(q), add(mul(shr(24, and(u1, 0xff000000ff000000ff000000ff000000ff000000ff000000ff000000ff000000)), x1), mul(shr(24, and(u2, 0xff000000ff000000ff000000ff000000ff000000ff000000ff000000ff000000)), x2))))
                    u1 := xor(mload(add(w1, 0x20)), t1)
                    u2 := xor(mload(add(w2, 0x20)), t2)
                    mstore(add(p, 0x80), add(mload(add(p, 0x80)), add(mul(and(u1, 0x000000ff000000ff000000ff000000ff000000ff000000ff000000ff000000ff), x1), mul(and(u2, 0x000000ff000000ff000000ff000000ff000000ff000000ff000000ff000000ff), x2))))
                    q := add(p, 0xa0)
                    mstore(q, add(mload(q), add(mul(and(shr(8, u1), 0x000000ff000000ff000000ff000000ff000000ff000000ff000000ff000000ff), x1), mul(and(shr(8, u2), 0x000000ff000000ff000000ff000000ff000000ff000000ff000000ff000000ff), x2))))
                    q := add(p, 0xc0)
                    mstore(q, add(mload(q), add(mul(and(shr(16, u1), 0x000000ff000000ff000000ff000000ff000000ff000000ff000000ff000000ff), x1), mul(and(shr(16, u2), 0x000000ff000000ff000000ff000000ff000000ff000000ff000000ff000000ff), x2))))
                    q := add(p, 0xe0)
                    mstore(q, add(mload(q), add(mul(shr(24, and(u1, 0xff000000ff000000ff000000ff000000ff000000ff000000ff000000ff000000)), x1), mul(shr(24, and(u2, 0xff000000ff000000ff000000ff000000ff000000ff000000ff000000ff000000)), x2))))
                }
            }
            function fma2x2(w1, w2, p, end, x1, x2, t1, t2) {
                // fma2 for two rows of B, as fma1x2.
                // Two weight words per iteration (the accumulator count is even) to halve the loop overhead.
                for {} lt(p, end) {
                    p := add(p, 0x100)
                    w1 := add(w1, 0x40)
                    w2 := add(w2, 0x40)
                } {
                    let u1 := xor(mload(w1), t1)
                    let u2 := xor(mload(w2), t2)
                    mstore(p, add(mload(p), add(mul(and(u1, 0x000000000000ffff000000000000ffff000000000000ffff000000000000ffff), x1), mul(and(u2, 0x000000000000ffff000000000000ffff000000000000ffff000000000000ffff), x2))))
                    let q := add(p, 0x20)
                    mstore(q, add(mload(q), add(mul(and(shr(16, u1), 0x000000000000ffff000000000000ffff000000000000ffff000000000000ffff), x1), mul(and(shr(16, u2), 0x000000000000ffff000000000000ffff000000000000ffff000000000000ffff), x2))))
                    q := add(p, 0x40)
                    mstore(q, add(mload(q), add(mul(and(shr(32, u1), 0x000000000000ffff000000000000ffff000000000000ffff000000000000ffff), x1), mul(and(shr(32, u2), 0x000000000000ffff000000000000ffff000000000000ffff000000000000ffff), x2))))
                    q := add(p, 0x60)
                    mstore(q, add(mload(q), add(mul(shr(48, and(u1, 0xffff000000000000ffff000000000000ffff000000000000ffff000000000000)), x1), mul(shr(48, and(u2, 0xffff000000000000ffff000000000000ffff000000000000ffff000000000000)), x2))))
                    u1 := xor(mload(add(w1, 0x20)), t1)
                    u2 := xor(mload(add(w2, 0x20)), t2)
                    mstore(add(p, 0x80), add(mload(add(p, 0x80)), add(mul(and(u1, 0x000000000000ffff000000000000ffff000000000000ffff000000000000ffff), x1), mul(and(u2, 0x000000000000ffff000000000000ffff000000000000ffff000000000000ffff), x2))))
                    q := add(p, 0xa0)
                    mstore(q, add(mload(q), add(mul(and(shr(16, u1), 0x000000000000ffff000000000000ffff000000000000ffff000000000000ffff), x1), mul(and(shr(16, u2), 0x000000000000ffff000000000000ffff000000000000ffff000000000000ffff), x2))))
                    q := add(p, 0xc0)
                    mstore(q, add(mload(q), add(mul(and(shr(32, u1), 0x000000000000ffff000000000000ffff000000000000ffff000000000000ffff), x1), mul(and(shr(32, u2), 0x000000000000ffff000000000000ffff000000000000ffff000000000000ffff), x2))))
                    q := add(p, 0xe0)
                    mstore(q, add(mload(q), add(mul(shr(48, and(u1, 0xffff000000000000ffff000000000000ffff000000000000ffff000000000000)), x1), mul(shr(48, and(u2, 0xffff000000000000ffff000000000000ffff000000000000ffff000000000000)), x2))))
                }
            }

            // ---- Width 8 weights: C[row] += x * B[row], four int64 weights per loaded word ----
            function scalarRow8(cp, wp, n, x) {
                let end := add(cp, shl(5, n))
                // `sar` sign-extends as it shifts an element down.
                for { let end4 := add(cp, shl(5, and(n, not(3)))) } lt(cp, end4) {
                    cp := add(cp, 0x80)
                    wp := add(wp, 0x20)
                } {
                    let u := mload(wp)
                    mstore(cp, add(mload(cp), mul(x, sar(192, u))))
                    let q := add(cp, 0x20)
                    mstore(q, add(mload(q), mul(x, sar(192, shl(64, u)))))
                    q := add(cp, 0x40)
                    mstore(q, add(mload(q), mul(x, sar(192, shl(128, u)))))
                    q := add(cp, 0x60)
                    mstore(q, add(mload(q), mul(x, sar(192, shl(192, u)))))
                }
                for {} lt(cp, end) {
                    cp := add(cp, 0x20)
                    wp := add(wp, 8)
                } { mstore(cp, add(mload(cp), mul(x, sar(192, mload(wp))))) }
            }

            // ---- C[row] = wrap64(C[row] + (lanes << level shift) - corr), and zero the lanes ----
            // Lane word j of weight word q holds, in lane g (g = 0 most significant), the column
            // q*(32/w) + 4g + (3 - j). Lanes past column n-1 hold garbage from the next row: skipped.
            // Also used mid-row (corr = 0) when the lane bound forces a flush: reducing to int64 early
            // changes nothing mod 2^64.
            function finish(ctx, cRow, corr) {
                let laneBits := shl(5, mload(add(ctx, 0x20)))
                let laneMask := sub(shl(laneBits, 1), 1)
                let cEnd := add(cRow, shl(5, mload(ctx)))
                let p := mload(add(ctx, 0x80))
                let end := mload(add(ctx, 0xa0))
                let up := mload(add(ctx, 0x1c0))
                if eq(laneBits, 32) {
                    // int8 weights, words whose 32 columns all exist: unrolled (the common case).
                    for { let fullEnd := add(cRow, and(sub(cEnd, cRow), not(0x3ff))) } lt(cRow, fullEnd) {
                        cRow := add(cRow, 0x400)
                        p := add(p, 0x80)
                    } {
                        lanes8(p, add(cRow, 0x60), corr, up)
                        lanes8(add(p, 0x20), add(cRow, 0x40), corr, up)
                        lanes8(add(p, 0x40), add(cRow, 0x20), corr, up)
                        lanes8(add(p, 0x60), cRow, corr, up)
                    }
                }
                // Columns per weight word times 32 bytes: 1024 / w.
                for { let step := div(1024, mload(add(ctx, 0x20))) } lt(p, end) { cRow := add(cRow, step) } {
                    for { let cp := add(cRow, 0x60) } gt(cp, sub(cRow, 1)) {
                        cp := sub(cp, 0x20)
                        p := add(p, 0x20)
                    } {
                        let lw := mload(p)
                        mstore(p, 0)
                        for {
                            let sh := sub(256, laneBits)
                            let q := cp
                        } lt(q, cEnd) {
                            q := add(q, 0x80)
                            sh := sub(sh, laneBits)
                        } {
                            mstore(q, signextend(7, sub(add(mload(q), shl(up, and(shr(sh, lw), laneMask))), corr)))
                            if iszero(sh) { break }
                        }
                    }
                }
            }
            // The 8 lanes of one int8 lane word at p into columns cp, cp + 4, ..., cp + 28; zero it.
            function lanes8(p, cp, corr, up) {
                let lw := mload(p)
                mstore(p, 0)
                mstore(cp, signextend(7, sub(add(mload(cp), shl(up, shr(224, lw))), corr)))
                let q := add(cp, 0x80)
                mstore(q, signextend(7, sub(add(mload(q), shl(up, and(shr(192, lw), 0xffffffff))), corr)))
                q := add(cp, 0x100)
                mstore(q, signextend(7, sub(add(mload(q), shl(up, and(shr(160, lw), 0xffffffff))), corr)))
                q := add(cp, 0x180)
                mstore(q, signextend(7, sub(add(mload(q), shl(up, and(shr(128, lw), 0xffffffff))), corr)))
                q := add(cp, 0x200)
                mstore(q, signextend(7, sub(add(mload(q), shl(up, and(shr(96, lw), 0xffffffff))), corr)))
                q := add(cp, 0x280)
                mstore(q, signextend(7, sub(add(mload(q), shl(up, and(shr(64, lw), 0xffffffff))), corr)))
                q := add(cp, 0x300)
                mstore(q, signextend(7, sub(add(mload(q), shl(up, and(shr(32, lw), 0xffffffff))), corr)))
                q := add(cp, 0x380)
                mstore(q, signextend(7, sub(add(mload(q), shl(up, and(lw, 0xffffffff))), corr)))
            }

            // ---- Run the collected batch of (row of B, |x|, xor pattern), two rows at a time ----
            function runBatch(ctx) {
                let e := mload(add(ctx, 0x140))
                let p := mload(add(ctx, 0x120))
                mstore(add(ctx, 0x140), p)
                let accBase := mload(add(ctx, 0x80))
                let accEnd := mload(add(ctx, 0xa0))
                switch mload(add(ctx, 0x20))
                case 1 {
                    for {} lt(add(p, 0x60), e) { p := add(p, 0xc0) } {
                        fma1x2(
                            mload(p), mload(add(p, 0x60)), accBase, accEnd,
                            mload(add(p, 0x20)), mload(add(p, 0x80)), mload(add(p, 0x40)), mload(add(p, 0xa0))
                        )
                    }
                    if lt(p, e) { fma1(mload(p), accBase, accEnd, mload(add(p, 0x20)), mload(add(p, 0x40))) }
                }
                case 2 {
                    for {} lt(add(p, 0x60), e) { p := add(p, 0xc0) } {
                        fma2x2(
                            mload(p), mload(add(p, 0x60)), accBase, accEnd,
                            mload(add(p, 0x20)), mload(add(p, 0x80)), mload(add(p, 0x40)), mload(add(p, 0xa0))
                        )
                    }
                    if lt(p, e) { fma2(mload(p), accBase, accEnd, mload(add(p, 0x20)), mload(add(p, 0x40))) }
                }
                default {
                    for {} lt(p, e) { p := add(p, 0x60) } {
                        fma4(mload(p), accBase, accEnd, mload(add(p, 0x20)), mload(add(p, 0x40)))
                    }
                }
            }

            // ---- Queue one row of B with activation magnitude `x` (<= LIM) at a lane level ----
            function push(ctx, cRow, wRow, x, pat) {
                let t := add(mload(add(ctx, 0x1a0)), x)
                if gt(t, mload(add(ctx, 0x60))) {
                    // The lanes could overflow: empty them into C first.
                    runBatch(ctx)
                    finish(ctx, cRow, 0)
                    t := x
                }
                mstore(add(ctx, 0x1a0), t)
                let e := mload(add(ctx, 0x140))
                mstore(e, wRow)
                mstore(add(e, 0x20), x)
                mstore(add(e, 0x40), pat)
                e := add(e, 0x60)
                mstore(add(ctx, 0x140), e)
                if eq(e, mload(add(ctx, 0x160))) { runBatch(ctx) }
            }

            // ---- One row of A times B into one row of C ----
            // An activation is split into limbs of 16w bits, |x| = sum_i limb_i 2^(16w i), each queued at
            // lane level i (own accumulators, batch and bound) and shifted up when read out, so every
            // activation takes the lane path and a lane flush (at a queued sum of 2^(24w)) comes after
            // at least 2^(8w) rows. Activations below 2^(16w) (the usual case) use level 0 only. The
            // bias correction uses the whole |x|. Every tensor element is an int64 (each kernel reduces
            // its results), so |x| <= 2^63 and the levels laid out by initLevels always suffice.
            function rowPass(ctx, aRow, cRow) {
                let corr := 0
                let wRow := mload(add(ctx, 0x40))
                for { let aEnd := add(aRow, shl(5, mload(add(ctx, 0xe0)))) } lt(aRow, aEnd) {
                    aRow := add(aRow, 0x20)
                    wRow := add(wRow, mload(add(ctx, 0x100)))
                } {
                    let x := mload(aRow)
                    if x {
                        let s := sar(255, x) // 0, or all ones when x < 0
                        let abs := sub(xor(x, s), s)
                        // |x| * 2^(8w-1), or |x| * (2^(8w-1) - 1) if x < 0 (see the header).
                        corr := add(corr, mul(abs, add(mload(add(ctx, 0x180)), s)))
                        let pat := xor(mload(add(ctx, 0xc0)), s) // the 0x7f.. pattern if x < 0
                        let limb := and(abs, mload(add(ctx, 0x240)))
                        if limb {
                            // push(ctx, cRow, wRow, limb, pat), inlined for level 0 (every non-zero row).
                            let t := add(mload(add(ctx, 0x1a0)), limb)
                            if gt(t, mload(add(ctx, 0x60))) {
                                runBatch(ctx)
                                finish(ctx, cRow, 0)
                                t := limb
                            }
                            mstore(add(ctx, 0x1a0), t)
                            t := mload(add(ctx, 0x140))
                            mstore(t, wRow)
                            mstore(add(t, 0x20), limb)
                            mstore(add(t, 0x40), pat)
                            t := add(t, 0x60)
                            mstore(add(ctx, 0x140), t)
                            if eq(t, mload(add(ctx, 0x160))) { runBatch(ctx) }
                        }
                        for { let level := ctx } gt(abs, mload(add(ctx, 0x240))) {} {
                            abs := shr(mload(add(ctx, 0x1e0)), abs)
                            level := add(level, mload(add(ctx, 0x200)))
                            limb := and(abs, mload(add(ctx, 0x240)))
                            if limb { push(level, cRow, wRow, limb, pat) }
                        }
                    }
                }
                // Higher levels first: only level 0 applies the correction after everything is in C.
                for { let level := add(ctx, mul(sub(mload(add(ctx, 0x220)), 1), mload(add(ctx, 0x200)))) } gt(
                    level, ctx
                ) { level := sub(level, mload(add(ctx, 0x200))) } {
                    if mload(add(level, 0x1a0)) {
                        runBatch(level)
                        finish(level, cRow, 0)
                        mstore(add(level, 0x1a0), 0)
                    }
                }
                runBatch(ctx)
                finish(ctx, cRow, corr)
                mstore(add(ctx, 0x1a0), 0)
            }

            // ---- Width 8 weights: the exact path for every non-zero activation ----
            function mul8(aPtr, rows, inner, n, wPtr, cPtr) {
                let aRow := add(aPtr, 0x20)
                let cRow := add(cPtr, 0x20)
                for { let i := 0 } lt(i, rows) { i := add(i, 1) } {
                    for { let kk := 0 } lt(kk, inner) { kk := add(kk, 1) } {
                        let x := mload(add(aRow, shl(5, kk)))
                        if x { scalarRow8(cRow, add(wPtr, mul(kk, shl(3, n))), n, x) }
                    }
                    for { let cp := cRow } lt(cp, add(cRow, shl(5, n))) { cp := add(cp, 0x20) } {
                        mstore(cp, signextend(7, mload(cp)))
                    }
                    aRow := add(aRow, shl(5, inner))
                    cRow := add(cRow, shl(5, n))
                }
            }
            // ---- Lay out the lane levels at `ctx` (the caller's scratch memory), zero their lanes ----
            // Each level: a control block, its accumulators, its batch. Control block words: 0 n, 1 w,
            // 2 b, 3 LIM, 4 accBase, 5 accEnd, 6 xor pattern for x > 0, 7 k, 8 bytes per row of B,
            // 9 batch base, 10 batch end, 11 batch limit, 12 2^(8w-1), 13 sum of queued |x|, 14 level
            // shift, 15 limb bits, 16 bytes per level, 17 number of levels, 18 limb mask. Kept in memory
            // rather than on the stack: read once per row of B, and Yul reaches only 16 stack slots.
            function initLevels(ctx, n, w, wPtr, inner) {
                // Weight words per row of B, rounded up to even (the two-row kernels take two words per
                // step; the extra lanes read bytes past the row, hold garbage and are never read out).
                // Each word has 4 lane words of accumulators.
                let words := shl(1, shr(6, add(mul(n, w), 63)))
                let limbBits := shl(4, w)
                let levels := div(add(63, sub(limbBits, 1)), limbBits) // enough limbs for |x| <= 2^63
                let accBytes := shl(7, words)
                let blockBytes := add(0x260, add(accBytes, mul(16, 0x60)))
                let pos := 0x8080808080808080808080808080808080808080808080808080808080808080
                if eq(w, 2) { pos := 0x8000800080008000800080008000800080008000800080008000800080008000 }
                if eq(w, 4) { pos := 0x8000000080000000800000008000000080000000800000008000000080000000 }
                for { let i := 0 } lt(i, levels) { i := add(i, 1) } {
                    let c0 := add(ctx, mul(i, blockBytes))
                    let acc := add(c0, 0x260)
                    let batch := add(acc, accBytes)
                    calldatacopy(acc, calldatasize(), accBytes) // scratch may be dirty
                    mstore(c0, n)
                    mstore(add(c0, 0x20), w)
                    mstore(add(c0, 0x40), wPtr)
                    mstore(add(c0, 0x60), sub(shl(mul(24, w), 1), 1))
                    mstore(add(c0, 0x80), acc)
                    mstore(add(c0, 0xa0), batch)
                    mstore(add(c0, 0xc0), pos)
                    mstore(add(c0, 0xe0), inner)
                    mstore(add(c0, 0x100), mul(n, w))
                    mstore(add(c0, 0x120), batch)
                    mstore(add(c0, 0x140), batch)
                    mstore(add(c0, 0x160), add(batch, mul(16, 0x60)))
                    mstore(add(c0, 0x180), shl(sub(shl(3, w), 1), 1))
                    mstore(add(c0, 0x1a0), 0)
                    mstore(add(c0, 0x1c0), mul(i, limbBits))
                    mstore(add(c0, 0x1e0), limbBits)
                    mstore(add(c0, 0x200), blockBytes)
                    mstore(add(c0, 0x220), levels)
                    mstore(add(c0, 0x240), sub(shl(limbBits, 1), 1))
                }
            }

            calldatacopy(add(c, 0x20), calldatasize(), shl(5, mload(c))) // C starts at zero
            switch width
            case 8 { mul8(a, m, k, cols, b, c) }
            default {
                initLevels(scratch, cols, width, b, k)
                let aRow := add(a, 0x20)
                let cRow := add(c, 0x20)
                for { let i := 0 } lt(i, m) { i := add(i, 1) } {
                    rowPass(scratch, aRow, cRow)
                    aRow := add(aRow, shl(5, k))
                    cRow := add(cRow, shl(5, cols))
                }
            }
        }
    }

    /// @notice Writes A x B into `c` (length batch*M*N) with both operands one word per element (B
    /// computed by an earlier op, or a rank-3 B): `batch` products, the t-th of A[t] ([M,K]) and B[t]
    /// ([K,N]); correct, not tuned (attention's activation x activation products are small).
    function mulWords(
        int256[] memory a,
        int256[] memory b,
        uint256 batch,
        uint256 m,
        uint256 k,
        uint256 n,
        int256[] memory c
    ) internal pure {
        assembly ("memory-safe") {
            calldatacopy(add(c, 0x20), calldatasize(), shl(5, mload(c)))
            let rowBytes := shl(5, n)
            let aRow := add(a, 0x20)
            let cRow := add(c, 0x20)
            for { let i := 0 } lt(i, mul(batch, m)) { i := add(i, 1) } {
                // Row i of A (batch i / m) meets matrix i / m of B.
                let bRow := add(add(b, 0x20), mul(div(i, m), mul(k, rowBytes)))
                let cEnd := add(cRow, rowBytes)
                for { let kk := 0 } lt(kk, k) { kk := add(kk, 1) } {
                    let x := mload(add(aRow, shl(5, kk)))
                    if x {
                        for {
                            let cp := cRow
                            let bp := bRow
                        } lt(cp, cEnd) {
                            cp := add(cp, 0x20)
                            bp := add(bp, 0x20)
                        } { mstore(cp, add(mload(cp), mul(x, mload(bp)))) }
                    }
                    bRow := add(bRow, rowBytes)
                }
                for { let cp := cRow } lt(cp, cEnd) { cp := add(cp, 0x20) } { mstore(cp, signextend(7, mload(cp))) }
                aRow := add(aRow, shl(5, k))
                cRow := cEnd
            }
        }
    }
}
