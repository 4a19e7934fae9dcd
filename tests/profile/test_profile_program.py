"""Program bytes and canonical tensor I/O: round trips, a golden vector, and strict decoding."""

from __future__ import annotations

import numpy as np
import pytest
from eth_utils.crypto import keccak

from oracle.errors import EncodingError, ProfileError
from oracle.profile.codec import decode_tensor, encode_tensor, narrowest_width
from oracle.profile.opcodes import Opcode
from oracle.profile.program import Constant, Op, Program, commitment, decode, encode
from oracle.profile.reference import run, run_bytes

# input [1,2] (int8) x W [2,2] -> [1,2] -> ArgMax(axis=1, keepdims=0) -> [1] (int8)
GOLDEN_HEX = (
    "494f5031"
    "01"
    "01"
    "0004"
    "02"
    "00000001"
    "00000002"
    "02"
    "00000002"
    "00000002"
    "02"
    "00000001"
    "00000002"
    "01"
    "00000001"
    "0000"
    "0003"
    "0001"
    "0001"
    "01"
    "01ff0203"
    "0002"
    "01"
    "02"
    "0000"
    "0001"
    "0002"
    "00"
    "0c"
    "01"
    "0002"
    "0003"
    "03"
    "0000000000000001"
    "0000000000000000"
    "0000000000000000"
)


def golden_program() -> Program:
    return Program(
        input_width=1,
        output_width=1,
        shapes=((1, 2), (2, 2), (1, 2), (1,)),
        input_id=0,
        output_id=3,
        constants=(Constant(1, 1, np.array([[1, -1], [2, 3]])),),
        ops=(Op(Opcode.MATMUL, (0, 1), 2), Op(Opcode.ARGMAX, (2,), 3, (1, 0, 0))),
    )


def test_encode_matches_golden_bytes() -> None:
    assert encode(golden_program()).hex() == GOLDEN_HEX


def test_decode_golden_bytes_round_trips() -> None:
    data = bytes.fromhex(GOLDEN_HEX)
    program = decode(data)
    assert program == golden_program()
    assert encode(program) == data


def test_commitment_is_keccak_of_program_bytes() -> None:
    data = bytes.fromhex(GOLDEN_HEX)
    assert commitment(data) == bytes(keccak(data))
    assert len(commitment(data)) == 32


def test_golden_program_runs() -> None:
    # [3, 1] @ [[1,-1],[2,3]] = [5, 0] -> argmax 0; [-1, 2] -> [3, 7] -> 1
    assert run(golden_program(), np.array([[3, 1]])).tolist() == [0]
    assert run_bytes(golden_program(), bytes([0xFF, 0x02])) == b"\x01"


@pytest.mark.parametrize("cut", range(len(bytes.fromhex(GOLDEN_HEX))))
def test_decode_rejects_every_truncation(cut: int) -> None:
    with pytest.raises(ProfileError):
        decode(bytes.fromhex(GOLDEN_HEX)[:cut])


def test_decode_rejects_bad_magic() -> None:
    data = bytearray.fromhex(GOLDEN_HEX)
    data[3] ^= 1
    with pytest.raises(ProfileError, match="magic"):
        decode(bytes(data))


def test_decode_rejects_trailing_bytes() -> None:
    with pytest.raises(ProfileError, match="trailing"):
        decode(bytes.fromhex(GOLDEN_HEX) + b"\x00")


def _patched(offset_hex: int, new: str) -> bytes:
    data = bytearray.fromhex(GOLDEN_HEX)
    raw = bytes.fromhex(new)
    data[offset_hex // 2 : offset_hex // 2 + len(raw)] = raw
    return bytes(data)


def _offset(marker: str) -> int:
    """Hex offset of the field after the given prefix of GOLDEN_HEX parts."""
    return GOLDEN_HEX.index(marker)


@pytest.mark.parametrize(
    ("field_hex", "replacement", "match"),
    [
        ("000000030001", "0009", "inputId"),  # input id out of range
        ("000300010001", "0009", "outputId"),  # output id out of range
        ("00010101ff", "0007", "out of range"),  # constant names a missing tensor
        ("00010101ff", "000103", "width"),  # constant width 3
        ("010200000001", "13", "opcode"),  # unknown opcode (19)
        ("010200000001", "01020000000a", "out of range"),  # op input out of range
        ("0c010002", "0c010003", "before it is defined"),  # reads its own output
        ("494f503101", "494f503103", "widths"),  # input width 3
    ],
)
def test_decode_rejects_bad_fields(field_hex: str, replacement: str, match: str) -> None:
    with pytest.raises(ProfileError, match=match):
        decode(_patched(_offset(field_hex), replacement))


def test_decode_rejects_rank_above_four() -> None:
    with pytest.raises(ProfileError, match="rank"):
        decode(_patched(_offset("02000000010000000202"), "05"))


def test_program_rejects_ssa_violation() -> None:
    good = golden_program()
    with pytest.raises(ProfileError, match="already defined"):
        Program(1, 1, good.shapes, 0, 3, good.constants, (Op(Opcode.MATMUL, (0, 1), 1), good.ops[1]))


def test_program_rejects_undefined_tensor() -> None:
    good = golden_program()
    with pytest.raises(ProfileError, match="neither"):
        Program(1, 1, good.shapes + ((1,),), 0, 3, good.constants, good.ops)


def test_program_rejects_shape_mismatch() -> None:
    good = golden_program()
    with pytest.raises(ProfileError, match="MATMUL produces"):
        Program(1, 1, ((1, 2), (2, 2), (1, 3), (1,)), 0, 3, good.constants, good.ops)


def test_program_rejects_zero_constant_divisor_and_accepts_a_computed_one() -> None:
    shapes = ((1, 2), (2,), (1, 2))
    with pytest.raises(ProfileError, match="zero"):
        Program(1, 1, shapes, 0, 2, (Constant(1, 1, np.array([1, 0])),), (Op(Opcode.DIV, (0, 1), 2),))
    # A computed divisor is legal in the format (x / 0 is 0); the compiler proves it non-zero.
    p = Program(1, 1, ((1, 2), (1, 2)), 0, 1, (), (Op(Opcode.DIV, (0, 0), 1),))
    assert run(p, np.array([[0, -5]])).tolist() == [[0, 1]]


def test_program_rejects_constant_outside_its_width() -> None:
    too_wide = Constant(1, 1, np.array([200]))
    with pytest.raises(ProfileError, match="storage width"):
        Program(1, 1, ((1,), (1,), (1,)), 0, 2, (too_wide,), (Op(Opcode.ADD, (0, 1), 2),))


def test_program_rejects_wrong_attribute_count() -> None:
    with pytest.raises(ProfileError, match="attributes"):
        Program(1, 1, ((1, 2), (1,)), 0, 1, (), (Op(Opcode.ARGMAX, (0,), 1, (1, 0)),))


@pytest.mark.parametrize("width", [1, 2, 4, 8])
def test_tensor_round_trip_at_the_extremes(width: int) -> None:
    lo, hi = -(1 << (8 * width - 1)), (1 << (8 * width - 1)) - 1
    x = np.array([[lo, -1, 0], [1, hi, 7]], dtype=np.int64)
    data = encode_tensor(x, width)
    assert len(data) == 6 * width
    assert np.array_equal(decode_tensor(data, (2, 3), width), x)


def test_tensor_encoding_is_big_endian_twos_complement() -> None:
    assert encode_tensor(np.array([1, -2]), 2) == bytes.fromhex("0001fffe")
    assert decode_tensor(bytes.fromhex("80"), (1,), 1).tolist() == [-128]


def test_tensor_encoding_rejects_out_of_range_and_floats() -> None:
    with pytest.raises(EncodingError, match="outside"):
        encode_tensor(np.array([128]), 1)
    with pytest.raises(EncodingError, match="integer"):
        encode_tensor(np.array([1.0]), 1)
    with pytest.raises(EncodingError, match="width"):
        encode_tensor(np.array([1]), 3)


def test_tensor_decoding_rejects_wrong_length() -> None:
    with pytest.raises(EncodingError, match="expected 4 bytes"):
        decode_tensor(b"\x00" * 3, (2,), 2)


def test_run_rejects_input_outside_declared_width() -> None:
    with pytest.raises(EncodingError, match="input width"):
        run(golden_program(), np.array([[200, 0]]))


def test_narrowest_width() -> None:
    assert narrowest_width([-128, 127]) == 1
    assert narrowest_width([128]) == 2
    assert narrowest_width([-(2**31)]) == 4
    assert narrowest_width([2**31]) == 8
