"""How a client turns float features into a converted model's canonical input integers (:class:`Quantizer`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from oracle.profile.codec import IntArray, encode_tensor, width_range


@dataclass(frozen=True)
class Quantizer:
    """How a client turns float features into the model's canonical input integers.

    ``q = clip(rint((x - offset) * scale), lo, hi)`` per feature, where ``rint`` rounds half to even
    (IEEE default, ``numpy.rint``) and ``[lo, hi]`` is the range of the input width. Scales are
    powers of two, so the multiplication is exact in float64.
    """

    offset: tuple[float, ...]
    scale: tuple[float, ...]
    width: int
    shape: tuple[int, ...]

    @classmethod
    def identity(cls, n_features: int, width: int, shape: Sequence[int] | None = None) -> Quantizer:
        """Features that already are integers (e.g. pixel intensities 0..16)."""
        return cls((0.0,) * n_features, (1.0,) * n_features, width, tuple(shape or (1, n_features)))

    @classmethod
    def calibrate(cls, x: npt.ArrayLike, width: int, headroom: float = 2.0) -> Quantizer:
        """Center each feature on its calibration range and scale by a power of two so the range uses
        ``1/headroom`` of the input width (values beyond are clipped)."""
        arr = np.asarray(x, dtype=np.float64)
        lo, hi = arr.min(axis=0), arr.max(axis=0)
        center = (lo + hi) / 2.0
        half = (hi - lo) / 2.0
        qmax = width_range(width)[1]
        scales = []
        for h in half:
            if h <= 0:
                scales.append(1.0)
            else:
                scales.append(float(2.0 ** math.floor(math.log2(qmax / (headroom * float(h))))))
        return cls(tuple(float(c) for c in center), tuple(scales), width, (1, int(arr.shape[1])))

    @property
    def n_features(self) -> int:
        return len(self.scale)

    def quantize(self, x: npt.ArrayLike) -> IntArray:
        """Quantize a batch ``[N, F]`` (or one sample ``[F]``) of float features to int64."""
        arr = np.asarray(x, dtype=np.float64)
        lo, hi = width_range(self.width)
        q = np.rint((arr - np.asarray(self.offset)) * np.asarray(self.scale))
        result: IntArray = np.clip(q, lo, hi).astype(np.int64)
        return result

    def encode(self, sample: npt.ArrayLike) -> bytes:
        """Canonical input bytes of one float sample."""
        q = self.quantize(np.asarray(sample, dtype=np.float64).reshape(-1)).reshape(self.shape)
        return encode_tensor(q, self.width)

    def to_dict(self) -> dict[str, Any]:
        return {
            "formula": "clip(rint((x - offset) * scale), -2^(8*width-1), 2^(8*width-1)-1)",
            "offset": list(self.offset),
            "scale": list(self.scale),
            "width": self.width,
            "shape": list(self.shape),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Quantizer:
        return cls(
            tuple(float(v) for v in d["offset"]),
            tuple(float(v) for v in d["scale"]),
            int(d["width"]),
            tuple(int(v) for v in d["shape"]),
        )
