"""Canonical I/O encodings the worker decodes inputs from and encodes outputs into.

- Integer tensors (``EXACT`` models, and integer tensors of ``ATTESTED`` models): row-major, each element a
  big-endian two's complement integer of the declared width (1, 2, 4 or 8 bytes), as in
  ``docs/integer-profile.md``. The width is the registered byte length divided by the element count. An
  output value that does not fit the width saturates to its range (the profile's defined output).
- Float tensors (``ATTESTED`` models): row-major, each element a **big-endian IEEE-754 binary32**
  (4 bytes). Every NaN output is written as the canonical quiet NaN ``0x7FC00000`` so that two honest
  operators never differ on NaN payload bits; ``-0.0`` is kept as is.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import prod

import numpy as np
import numpy.typing as npt

from oracle.errors import EncodingError

INT_WIDTHS = (1, 2, 4, 8)
FLOAT_WIDTH = 4
CANONICAL_NAN = np.frombuffer(b"\x7f\xc0\x00\x00", dtype=">f4")[0]


def numel(shape: Sequence[int]) -> int:
    return int(prod(shape)) if shape else 1


def int_width(length: int, shape: Sequence[int]) -> int:
    """The element width implied by a registered byte length and a static shape."""
    n = numel(shape)
    if length % n or length // n not in INT_WIDTHS:
        raise EncodingError(f"{length} bytes do not hold {n} integer elements of 1, 2, 4 or 8 bytes "
                            f"(shape {list(shape)})")
    return length // n


def decode_int(data: bytes, shape: Sequence[int], width: int) -> npt.NDArray[np.int64]:
    if len(data) != numel(shape) * width:
        raise EncodingError(f"expected {numel(shape) * width} bytes for shape {list(shape)} x {width}, "
                            f"got {len(data)}")
    return np.frombuffer(data, dtype=f">i{width}").astype(np.int64).reshape(tuple(shape))


def encode_int(array: npt.ArrayLike, width: int) -> bytes:
    arr = np.asarray(array)
    if not np.issubdtype(arr.dtype, np.integer):
        raise EncodingError(f"expected an integer tensor, got {arr.dtype}")
    # A value that does not fit saturates to the width's range: the integer profile's defined output
    # (docs/integer-profile.md, "Semantics"), so the worker posts what the on-chain verifier computes.
    lo, hi = -(1 << (8 * width - 1)), (1 << (8 * width - 1)) - 1
    return np.clip(arr.astype(np.int64), lo, hi).astype(f">i{width}").tobytes(order="C")


def decode_float(data: bytes, shape: Sequence[int]) -> npt.NDArray[np.float32]:
    if len(data) != numel(shape) * FLOAT_WIDTH:
        raise EncodingError(f"expected {numel(shape) * FLOAT_WIDTH} bytes of float32 for shape {list(shape)}, "
                            f"got {len(data)}")
    return np.frombuffer(data, dtype=">f4").astype(np.float32).reshape(tuple(shape))


def encode_float(array: npt.ArrayLike) -> bytes:
    arr = np.asarray(array, dtype=np.float32).copy()
    arr[np.isnan(arr)] = CANONICAL_NAN
    return arr.astype(">f4").tobytes(order="C")
