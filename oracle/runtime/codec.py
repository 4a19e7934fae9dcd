"""Canonical I/O encodings: what a request's input bytes and a result's output bytes mean, for the worker
and the challenger alike.

- Integer tensors (``EXACT`` models, and integer tensors of ``ATTESTED`` models): the integer profile's codec,
  imported from its spec :mod:`oracle.profile.codec` (row-major, big-endian two's complement of the
  declared width, 1, 2, 4 or 8 bytes; an output value that does not fit saturates), the one codec that
  decides who gets slashed. The width is the registered byte length divided by the element count.
- Float tensors (``ATTESTED`` models): row-major, each element a **big-endian IEEE-754 binary32**
  (4 bytes). Every NaN output is written as the canonical quiet NaN ``0x7FC00000`` so that two honest
  operators never differ on NaN payload bits; ``-0.0`` is kept as is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from oracle.errors import EncodingError
from oracle.profile.codec import WIDTHS as INT_WIDTHS
from oracle.profile.codec import decode_tensor as decode_int
from oracle.profile.codec import encode_output as encode_int
from oracle.profile.codec import numel

__all__ = ["CANONICAL_NAN", "FLOAT_WIDTH", "INT_WIDTHS", "decode_float", "decode_int", "encode_float",
           "encode_int", "int_width", "numel"]

FLOAT_WIDTH = 4
CANONICAL_NAN = np.frombuffer(b"\x7f\xc0\x00\x00", dtype=">f4")[0]


def int_width(length: int, shape: Sequence[int]) -> int:
    """The element width implied by a registered byte length and a static shape."""
    n = numel(tuple(shape))
    if length % n or length // n not in INT_WIDTHS:
        raise EncodingError(f"{length} bytes do not hold {n} integer elements of 1, 2, 4 or 8 bytes "
                            f"(shape {list(shape)})")
    return length // n


def decode_float(data: bytes, shape: Sequence[int]) -> npt.NDArray[np.float32]:
    if len(data) != numel(tuple(shape)) * FLOAT_WIDTH:
        raise EncodingError(f"expected {numel(tuple(shape)) * FLOAT_WIDTH} bytes of float32 for shape "
                            f"{list(shape)}, got {len(data)}")
    return np.frombuffer(data, dtype=">f4").astype(np.float32).reshape(tuple(shape))


def encode_float(array: npt.ArrayLike) -> bytes:
    arr = np.asarray(array, dtype=np.float32).copy()
    arr[np.isnan(arr)] = CANONICAL_NAN
    return arr.astype(">f4").tobytes(order="C")
