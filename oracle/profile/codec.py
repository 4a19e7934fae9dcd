"""The integer profile's canonical tensor codec: the bytes an attestation commits to and a challenge is judged on.

A tensor is row-major, each element a big-endian two's complement integer of its declared width (1, 2, 4
or 8 bytes), as in ``docs/integer-profile.md``. This is the one codec: the worker's input decoding and
output encoding (:mod:`oracle.runtime.codec`), the reference interpreter, the program format and the
verifier's conformance tests all use it, so an operator, a challenger and the chain cannot disagree on a
byte.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from oracle.errors import EncodingError

WIDTHS = (1, 2, 4, 8)
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

IntArray = npt.NDArray[np.int64]
Shape = tuple[int, ...]


def width_range(width: int) -> tuple[int, int]:
    """Inclusive value range of a signed two's complement integer of ``width`` bytes."""
    if width not in WIDTHS:
        raise EncodingError(f"element width must be one of {WIDTHS} bytes, got {width}")
    half = 1 << (8 * width - 1)
    return -half, half - 1


def narrowest_width(values: npt.NDArray[np.integer[Any]] | Sequence[int]) -> int:
    """Smallest storage width (1, 2, 4 or 8 bytes) that holds every value; gas grows with width."""
    arr = np.asarray(values)
    if arr.size == 0:
        return 1
    lo, hi = int(arr.min()), int(arr.max())
    for width in WIDTHS:
        wlo, whi = width_range(width)
        if wlo <= lo and hi <= whi:
            return width
    raise EncodingError(f"values [{lo}, {hi}] do not fit in int64")


def numel(shape: Shape) -> int:
    """Number of elements of a tensor of ``shape`` (1 for a scalar)."""
    n = 1
    for d in shape:
        n *= d
    return n


def _check_fits(arr: npt.NDArray[np.integer[Any]], width: int, what: str) -> IntArray:
    """Return ``arr`` as int64 after proving every element fits ``width`` bytes."""
    lo, hi = width_range(width)
    if not np.issubdtype(arr.dtype, np.integer):
        raise EncodingError(f"{what} must be an integer array, got dtype {arr.dtype}")
    if arr.size:
        amin, amax = int(arr.min()), int(arr.max())
        if amin < lo or amax > hi:
            raise EncodingError(
                f"{what} has values in [{amin}, {amax}], outside the {width}-byte range [{lo}, {hi}]"
            )
    return arr.astype(np.int64)


def encode_tensor(array: npt.ArrayLike, width: int) -> bytes:
    """Canonical bytes of a tensor: row-major, big-endian two's complement, ``width`` bytes each."""
    arr = np.asarray(array)
    values = _check_fits(arr, width, "tensor")
    return values.astype(f">i{width}").tobytes(order="C")


def saturate(values: IntArray, width: int) -> IntArray:
    """Clamp to the range of ``width``-byte integers: the defined value of an output that does not fit.

    Unreachable for compiled programs (the interval analysis proves the output fits); for a hand-built
    program it is the answer the verifier encodes too, so no input makes the challenge path revert.
    """
    lo, hi = width_range(width)
    return np.clip(np.asarray(values, dtype=np.int64), lo, hi)


def encode_output(array: npt.ArrayLike, width: int) -> bytes:
    """Canonical bytes of a model's integer output: a value that does not fit ``width`` saturates to its range
    (total semantics, docs/integer-profile.md "Semantics"), so an operator posts what the verifier computes."""
    arr = np.asarray(array)
    if not np.issubdtype(arr.dtype, np.integer):
        raise EncodingError(f"expected an integer tensor, got {arr.dtype}")
    return encode_tensor(saturate(arr.astype(np.int64), width), width)


def decode_tensor(data: bytes, shape: Sequence[int], width: int) -> IntArray:
    """Inverse of :func:`encode_tensor`; sign-extends to int64 and insists on the exact length."""
    width_range(width)
    shp = tuple(int(d) for d in shape)
    expected = numel(shp) * width
    if len(data) != expected:
        raise EncodingError(
            f"expected {expected} bytes ({numel(shp)} elements of {width} bytes for shape {list(shp)}), "
            f"got {len(data)}"
        )
    return np.frombuffer(data, dtype=f">i{width}").astype(np.int64).reshape(shp)
