"""Each custom error of the verifier, raised with the arguments that locate the fault.

Byte offsets in ``MalformedProgram(offset)`` point at the offending field (op-level rules: the op's
first byte). The reference decoder must reject every one of these programs too.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
from web3.contract import Contract

from oracle.errors import ProfileError
from oracle.profile import reference
from oracle.profile.program import MAGIC, decode
from tests.verifier.helpers import call, expect_revert


def _header(in_w: int = 8, out_w: int = 8, shapes: list[tuple[int, ...]] | None = None) -> bytes:
    shapes = [(2,), (2,), (2,)] if shapes is None else shapes
    out = struct.pack(">IBBH", MAGIC, in_w, out_w, len(shapes))
    for s in shapes:
        out += struct.pack(f">B{len(s)}I", len(s), *s)
    return out


def _const(tid: int, width: int, values: list[int]) -> bytes:
    return struct.pack(">HB", tid, width) + b"".join(v.to_bytes(width, "big", signed=True) for v in values)


def _op(opcode: int, inputs: list[int], output: int, attrs: list[int] = ()) -> bytes:  # type: ignore[assignment]
    return struct.pack(f">BB{len(inputs)}HH", opcode, len(inputs), *inputs, output) + struct.pack(
        f">B{len(attrs)}q", len(attrs), *attrs
    )


def _program(
    shapes: list[tuple[int, ...]],
    consts: bytes,
    n_consts: int,
    ops: list[bytes],
    *,
    input_id: int = 0,
    output_id: int | None = None,
    in_w: int = 8,
    out_w: int = 8,
) -> bytes:
    out_id = len(shapes) - 1 if output_id is None else output_id
    return (
        _header(in_w, out_w, shapes)
        + struct.pack(">HHH", input_id, out_id, n_consts)
        + consts
        + struct.pack(">H", len(ops))
        + b"".join(ops)
    )


# x(2) + c(2) -> y(2): the valid base every case below breaks in one place.
VALID = _program([(2,), (2,), (2,)], _const(1, 1, [3, -4]), 1, [_op(2, [0, 1], 2)])
X = (5).to_bytes(8, "big", signed=True) * 2
OPS_AT = len(_header()) + 6 + 3 + 2 + 2  # first op byte of VALID


def _run(verifier: Contract, program: bytes, inp: bytes = X) -> object:
    return call(verifier.functions.execute(program, inp))


def test_the_base_program_is_valid(verifier: Contract) -> None:
    decode(VALID)
    assert bytes(_run(verifier, VALID)) == (8).to_bytes(8, "big") + (1).to_bytes(8, "big")


CASES = {
    "bad_magic": (b"IOP2" + VALID[4:], 0),
    "bad_input_width": (VALID[:4] + b"\x03" + VALID[5:], 4),
    "bad_output_width": (VALID[:5] + b"\x00" + VALID[6:], 5),
    "no_tensors": (VALID[:6] + b"\x00\x00" + VALID[8:], 6),
    "rank_5": (
        _program([(2,), (2,), (1, 1, 1, 1, 2)], _const(1, 1, [3, -4]), 1, [_op(2, [0, 1], 2)]),
        len(_header(shapes=[(2,), (2,)])),
    ),
    "zero_dim": (_program([(2,), (2,), (0,)], b"", 0, []), len(_header(shapes=[(2,), (2,)])) + 1),
    "input_id_out_of_range": (_program([(2,), (2,), (2,)], b"", 0, [], input_id=3), len(_header())),
    "output_id_out_of_range": (_program([(2,), (2,), (2,)], b"", 0, [], output_id=7), len(_header()) + 2),
    "constant_id_out_of_range": (
        _program([(2,), (2,), (2,)], _const(9, 1, [3, -4]), 1, [_op(2, [0, 1], 2)]),
        len(_header()) + 6,
    ),
    "constant_is_the_input": (
        _program([(2,), (2,), (2,)], _const(0, 1, [3, -4]), 1, [_op(2, [0, 1], 2)]),
        len(_header()) + 6,
    ),
    "constant_defined_twice": (
        _program([(2,), (2,), (2,)], _const(1, 1, [3, -4]) * 2, 2, [_op(2, [0, 1], 2)]),
        len(_header()) + 6 + 5,
    ),
    "constant_width_3": (
        _program([(2,), (2,), (2,)], _const(1, 1, [3, -4])[:2] + b"\x03" + b"\x00" * 6, 1, [_op(2, [0, 1], 2)]),
        len(_header()) + 8,
    ),
    "constant_truncated": (VALID[: len(_header()) + 10], len(_header()) + 9),
    "wrong_input_count": (
        _program([(2,), (2,), (2,)], _const(1, 1, [3, -4]), 1, [_op(2, [0], 2)]),
        OPS_AT + 1,
    ),
    "reads_undefined_tensor": (
        _program([(2,), (2,), (2,), (2,)], _const(1, 1, [3, -4]), 1, [_op(2, [0, 3], 2)], output_id=2),
        len(_header(shapes=[(2,)] * 4)) + 17,
    ),
    "input_id_beyond_table": (
        _program([(2,), (2,), (2,)], _const(1, 1, [3, -4]), 1, [_op(2, [0, 9], 2)]),
        OPS_AT + 4,
    ),
    "output_already_defined": (
        _program([(2,), (2,), (2,)], _const(1, 1, [3, -4]), 1, [_op(2, [0, 1], 1)], output_id=1),
        OPS_AT + 6,
    ),
    "reads_own_output": (
        _program([(2,), (2,), (2,)], _const(1, 1, [3, -4]), 1, [_op(2, [0, 2], 2)]),
        OPS_AT + 4,
    ),
    "wrong_attribute_count": (
        _program([(2,), (2,), (2,)], _const(1, 1, [3, -4]), 1, [_op(2, [0, 1], 2, [1])]),
        OPS_AT + 8,
    ),
    "clip_min_above_max": (
        _program([(2,), (2,)], b"", 0, [_op(8, [0], 1, [5, 4])]),
        len(_header(shapes=[(2,), (2,)])) + 6 + 2,
    ),
    "argmax_axis_out_of_range": (
        _program([(2,), ()], b"", 0, [_op(12, [0], 1, [1, 0, 0])]),
        len(_header(shapes=[(2,), ()])) + 6 + 2,
    ),
    "argmax_keepdims_2": (
        _program([(2,), ()], b"", 0, [_op(12, [0], 1, [0, 2, 0])]),
        len(_header(shapes=[(2,), ()])) + 6 + 2,
    ),
    "argmax_negative_axis": (
        _program([(2,), ()], b"", 0, [_op(12, [0], 1, [-1, 0, 0])]),
        len(_header(shapes=[(2,), ()])) + 6 + 2,
    ),
    "cast_to_width_3": (
        _program([(2,), (2,)], b"", 0, [_op(14, [0], 1, [3])]),
        len(_header(shapes=[(2,), (2,)])) + 6 + 2,
    ),
    "transpose_nd_not_a_permutation": (
        _program([(2, 3), (3, 2)], b"", 0, [_op(18, [0], 1, [0, 1, 1, 2])]),
        len(_header(shapes=[(2, 3), (3, 2)])) + 6 + 2,
    ),
    "transpose_nd_moves_the_padding": (
        _program([(2, 3), (3, 2)], b"", 0, [_op(18, [0], 1, [1, 0, 3, 2])]),
        len(_header(shapes=[(2, 3), (3, 2)])) + 6 + 2,
    ),
    "reduce_sum_axis_out_of_range": (
        _program([(2, 3), (2,)], b"", 0, [_op(16, [0], 1, [2, 0])]),
        len(_header(shapes=[(2, 3), (2,)])) + 6 + 2,
    ),
    "reduce_max_keepdims_2": (
        _program([(2, 3), (2,)], b"", 0, [_op(17, [0], 1, [1, 2])]),
        len(_header(shapes=[(2, 3), (2,)])) + 6 + 2,
    ),
    "div_by_zero_element": (
        _program([(2,), (2,), (2,)], _const(1, 2, [3, 0]), 1, [_op(5, [0, 1], 2)]),
        len(_header()) + 6 + 2 + 7,
    ),
    "trailing_byte": (VALID + b"\x00", len(VALID)),
    "tensor_never_defined": (
        _program([(2,), (2,), (2,), (2,)], _const(1, 1, [3, -4]), 1, [_op(2, [0, 1], 2)], output_id=2),
        None,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_program_reverts_with_the_offset_of_the_fault(verifier: Contract, case: str) -> None:
    program, offset = CASES[case]
    with pytest.raises(ProfileError):
        decode(program)
    expect_revert(_run(verifier, program), "MalformedProgram", len(program) if offset is None else offset)


@pytest.mark.parametrize("opcode", [0, 19, 20, 255])
def test_unknown_opcode_reverts_unsupported(verifier: Contract, opcode: int) -> None:
    program = _program([(2,), (2,)], b"", 0, [_op(opcode, [0], 1)])
    with pytest.raises(ProfileError):
        decode(program)
    expect_revert(_run(verifier, program), "UnsupportedOpcode", opcode)


SHAPE_CASES = {
    "matmul_inner_dims_differ": ([(2, 3), (2, 4), (2, 4)], _const(1, 1, [0] * 8), 1, [_op(1, [0, 1], 2)]),
    "matmul_rank_4": ([(1, 1, 2, 3), (3, 4), (1, 1, 2, 4)], _const(1, 1, [0] * 12), 1, [_op(1, [0, 1], 2)]),
    "matmul_batches_differ": ([(2, 2, 3), (3, 3, 4), (2, 2, 4)], _const(1, 1, [0] * 36), 1, [_op(1, [0, 1], 2)]),
    "matmul_rank_2_by_3": ([(2, 3), (2, 3, 4), (2, 2, 4)], _const(1, 1, [0] * 24), 1, [_op(1, [0, 1], 2)]),
    "gather_wrong_output": ([(3,), (5, 2), (3, 3)], _const(1, 1, [0] * 10), 1, [_op(15, [1, 0], 2)]),
    "gather_of_a_scalar": ([(3,), (), (3,)], _const(1, 1, [0]), 1, [_op(15, [1, 0], 2)]),
    "reduce_keeps_axis": ([(2, 3), (2, 3)], b"", 0, [_op(16, [0], 1, [1, 0])]),
    "transpose_nd_wrong_output": ([(2, 3, 4), (4, 3, 2)], b"", 0, [_op(18, [0], 1, [0, 1, 3, 2])]),
    "matmul_wrong_output": ([(2, 3), (3, 4), (2, 5)], _const(1, 1, [0] * 12), 1, [_op(1, [0, 1], 2)]),
    "no_broadcast": ([(2, 3), (2,), (2, 3)], _const(1, 1, [1, 2]), 1, [_op(2, [0, 1], 2)]),
    "broadcast_wrong_output": ([(2, 3), (3,), (3, 3)], _const(1, 1, [1, 2, 3]), 1, [_op(4, [0, 1], 2)]),
    "transpose_rank_3": ([(1, 2, 3), (3, 2, 1)], b"", 0, [_op(11, [0], 1)]),
    "transpose_same_shape": ([(2, 3), (2, 3)], b"", 0, [_op(11, [0], 1)]),
    "reshape_changes_count": ([(2, 3), (7,)], b"", 0, [_op(9, [0], 1)]),
    "flatten_to_rank_1": ([(2, 3), (6,)], b"", 0, [_op(10, [0], 1)]),
    "identity_reshapes": ([(2, 3), (3, 2)], b"", 0, [_op(13, [0], 1)]),
    "clip_changes_shape": ([(2, 3), (6,)], b"", 0, [_op(8, [0], 1, [0, 1])]),
    "argmax_keeps_axis": ([(2, 3), (2, 3)], b"", 0, [_op(12, [0], 1, [1, 0, 0])]),
    "argmax_keepdims_shape": ([(2, 3), (2,)], b"", 0, [_op(12, [0], 1, [1, 1, 0])]),
}


@pytest.mark.parametrize("case", sorted(SHAPE_CASES))
def test_op_with_mismatched_shapes_reverts_shape_mismatch(verifier: Contract, case: str) -> None:
    shapes, consts, n_consts, ops = SHAPE_CASES[case]
    # Put a valid op first so the index in the error is that of the faulty op.
    prefix_shape = shapes[0]
    shapes = [*shapes, prefix_shape]
    ops = [_op(13, [0], len(shapes) - 1), *ops]
    program = _program(shapes, consts, n_consts, ops, output_id=len(shapes) - 2)
    with pytest.raises(ProfileError):
        decode(program)
    expect_revert(_run(verifier, program), "ShapeMismatch", 1)


@pytest.mark.parametrize("length", [0, 8, 15, 17, 32])
def test_input_of_the_wrong_length_reverts(verifier: Contract, length: int) -> None:
    expect_revert(_run(verifier, VALID, b"\x01" * length), "InputLengthMismatch", 16, length)


def test_output_outside_its_width_saturates_like_the_reference(verifier: Contract) -> None:
    # Total semantics (docs/integer-profile.md): no input makes the challenge path revert; an output
    # value that does not fit the declared width is the nearest end of the width's range.
    program = _program([(4,), (4,), (4,)], _const(1, 1, [0, 1, 2, 3]), 1, [_op(2, [0, 1], 2)], in_w=1, out_w=1)
    ok = bytes([0x7C, 0x7C, 0x7C, 0x7C])
    assert bytes(_run(verifier, program, ok)) == bytes([0x7C, 0x7D, 0x7E, 0x7F])
    for x in (bytes([0x7F] * 4), bytes([0x00, 0x00, 0x00, 0x7E])):
        want = reference.run_bytes(decode(program), x)
        assert bytes(_run(verifier, program, x)) == want
    assert bytes(_run(verifier, program, bytes([0x7F] * 4))) == bytes([0x7F] * 4)
    negative = _program([(2,), (2,), (2,)], _const(1, 1, [-1, 0]), 1, [_op(2, [0, 1], 2)], in_w=1, out_w=1)
    assert bytes(_run(verifier, negative, bytes([0x80, 0x80]))) == bytes([0x80, 0x80])
    # Wider: an int64 sum saturates to int16's range on both sides; int64 arithmetic wraps first
    # (2^62 + 2^62 = -2^63), then the output saturates.
    wide = _program([(3,), (3,), (3,)], _const(1, 8, [2**61, -(2**61), 2**62]), 1, [_op(2, [0, 1], 2)], in_w=8,
                    out_w=2)
    x = b"".join(v.to_bytes(8, "big", signed=True) for v in (2**61, -(2**61), 2**62))
    want = b"".join(v.to_bytes(2, "big", signed=True) for v in (32767, -32768, -32768))
    assert bytes(_run(verifier, wide, x)) == want
    assert reference.run_bytes(decode(wide), x) == want


def test_stored_program_in_empty_chunk_reverts(verifier: Contract) -> None:
    nobody = "0x" + "00" * 19 + "42"
    expect_revert(call(verifier.functions.executeStored([nobody], X)), "EmptyChunk")


def test_decode_checks_nothing_the_input_could_fix(verifier: Contract) -> None:
    """A malformed program reverts the same way whatever the input (even one of the wrong length)."""
    program, offset = CASES["div_by_zero_element"]
    for inp in (X, b"", np.zeros(3, dtype=">i8").tobytes()):
        expect_revert(_run(verifier, program, inp), "MalformedProgram", offset)
