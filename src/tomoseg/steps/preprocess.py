"""Preprocessing: bin, invert, Gaussian band-pass in Angstrom, normalise, clamp.

METHOD.md section 1. The whole volume is filtered in Fourier space with
periodic boundaries, then normalised to mean 0 / sd 1 and clamped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tomoseg.ops.binning import bin_volume
from tomoseg.ops.fourier import gaussian_filter_fourier


@dataclass(frozen=True)
class PreprocessConfig:
    """How a tomogram is preprocessed; a model records it and checks it.

    lowpass, highpass: Gaussian cutoffs in Angstrom (None disables).
    bin: integer block-mean binning factor. invert: multiply by -1 first.
    clamp: clamp to +-clamp standard deviations after normalising (None: no clamp).
    """

    lowpass: float | None = 20.0
    highpass: float | None = 4000.0
    bin: int = 1
    invert: bool = False
    clamp: float | None = 3.0

    def __post_init__(self) -> None:
        if self.bin < 1:
            raise ValueError(f"bin must be >= 1, got {self.bin}")
        for name in ("lowpass", "highpass", "clamp"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PreprocessConfig:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def describe(self) -> str:
        """A compact one-line form, stored in MRC header labels."""
        def fmt(v: object) -> str:
            return "none" if v is None else f"{v:g}" if isinstance(v, float) else str(v).lower()

        return " ".join(f"{k}={fmt(v)}" for k, v in self.to_dict().items())

    @classmethod
    def parse(cls, text: str) -> PreprocessConfig:
        """Inverse of :meth:`describe`."""
        values: dict[str, object] = {}
        for item in text.split():
            key, _, raw = item.partition("=")
            if key in ("lowpass", "highpass", "clamp"):
                values[key] = None if raw == "none" else float(raw)
            elif key == "bin":
                values[key] = int(raw)
            elif key == "invert":
                values[key] = raw == "true"
        return cls(**values)

    def output_voxel_size(self, voxel_size: float) -> float:
        return float(voxel_size) * self.bin


def normalise(volume: np.ndarray, clamp: float | None = 3.0) -> np.ndarray:
    """Scale to mean 0, sd 1 over the whole volume, then clamp to +-``clamp``.

    Returns float32 of the same shape. A constant volume is an error.
    """
    data = np.asarray(volume, dtype=np.float32)
    mean = float(data.mean(dtype=np.float64))
    sd = float(data.std(dtype=np.float64))
    if not sd > 0:
        raise ValueError("the volume is constant (standard deviation 0)")
    out = (data - np.float32(mean)) / np.float32(sd)
    if clamp is not None:
        np.clip(out, -clamp, clamp, out=out)
    return out


def preprocess(
    volume: np.ndarray, voxel_size: float, config: PreprocessConfig = PreprocessConfig()
) -> np.ndarray:
    """Preprocess a tomogram as the networks expect it.

    ``volume``: (z, y, x) array, any real dtype; ``voxel_size``: A/voxel of the
    input. Returns float32 (z, y, x) at ``config.output_voxel_size(voxel_size)``.
    """
    data = bin_volume(volume, config.bin)
    if config.invert:
        data = -data
    data = gaussian_filter_fourier(
        data, config.output_voxel_size(voxel_size), config.lowpass, config.highpass
    )
    return normalise(data, config.clamp)
