"""Preprocessing: bin, invert, Gaussian band-pass in Angstrom, resample, normalise, clamp.

METHOD.md section 1. The whole volume is filtered in Fourier space with
periodic boundaries, optionally resampled to another voxel size (so a network
trained at one voxel size can be applied to data taken at another), then
normalised to mean 0 / sd 1 and clamped.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy import ndimage

from tomoseg.errors import InvalidValue
from tomoseg.ops.binning import bin_volume
from tomoseg.ops.fourier import gaussian_filter_fourier


@dataclass(frozen=True)
class PreprocessConfig:
    """How a tomogram is preprocessed; a model records it and checks it.

    lowpass, highpass: Gaussian cutoffs in Angstrom (None disables).
    bin: integer block-mean binning factor. invert: multiply by -1 first.
    clamp: clamp to +-clamp standard deviations after normalising (None: no clamp).
    resample: voxel size in A to resample to after binning and filtering (cubic
    spline; None: keep the binned voxel size).
    """

    lowpass: float | None = 20.0
    highpass: float | None = 4000.0
    bin: int = 1
    invert: bool = False
    clamp: float | None = 3.0
    resample: float | None = None

    def __post_init__(self) -> None:
        if self.bin < 1:
            raise InvalidValue(f"`bin` must be >= 1, got {self.bin}")
        for name in ("lowpass", "highpass", "clamp", "resample"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise InvalidValue(f"`{name}` must be > 0, got {value}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PreprocessConfig:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def describe(self) -> str:
        """A compact one-line form (``resample`` only when set)."""
        def fmt(v: object) -> str:
            return "none" if v is None else f"{v:g}" if isinstance(v, float) else str(v).lower()

        items = {k: v for k, v in self.to_dict().items() if not (k == "resample" and v is None)}
        return " ".join(f"{k}={fmt(v)}" for k, v in items.items())

    @classmethod
    def parse(cls, text: str) -> PreprocessConfig:
        """Inverse of :meth:`describe`."""
        values: dict[str, object] = {}
        for item in text.split():
            key, _, raw = item.partition("=")
            if key in ("lowpass", "highpass", "clamp", "resample"):
                values[key] = None if raw == "none" else float(raw)
            elif key == "bin":
                values[key] = int(raw)
            elif key == "invert":
                values[key] = raw == "true"
        return cls(**values)

    def output_voxel_size(self, voxel_size: float) -> float:
        return float(self.resample) if self.resample is not None else float(voxel_size) * self.bin

    def reaching(self, voxel_size: float, target: float, tolerance: float = 0.01) -> PreprocessConfig:
        """These filters, with the binning that brings ``voxel_size`` to ``target`` A: an integer
        factor where one fits within ``tolerance`` (relative), else the largest factor below,
        then resampling to ``target``."""
        ratio = float(target) / float(voxel_size)
        factor = max(1, round(ratio))
        if abs(factor - ratio) <= tolerance * ratio:
            return replace(self, bin=factor, resample=None)
        return replace(self, bin=max(1, int(np.floor(ratio))), resample=float(target))

    def ineffective_filters(self, voxel_size: float) -> list[str]:
        """What in this band-pass the data at ``voxel_size`` A (before binning) cannot show: a
        low-pass or high-pass cutoff finer than the Nyquist limit (2 voxels after binning) has
        (almost) no effect, or leaves nothing. One sentence each; empty when all is well."""
        nyquist = 2.0 * float(voxel_size) * self.bin
        where = f"the Nyquist limit ({nyquist:g} A at {voxel_size * self.bin:g} A per voxel)"
        found = []
        if self.lowpass is not None and self.lowpass < nyquist:
            found.append(f"the low-pass cutoff {self.lowpass:g} A is finer than {where}: it filters almost "
                         f"nothing; choose a cutoff above {nyquist:g} A, or none")
        if self.highpass is not None and self.highpass <= nyquist:
            found.append(f"the high-pass cutoff {self.highpass:g} A is finer than {where}: it removes all "
                         "detail")
        return found

    def same_filters(self, other: PreprocessConfig) -> bool:
        """Whether two tomograms preprocessed with these look alike to a network: the same
        band-pass and clamp. Binning and resampling only set the voxel size, which is
        checked on its own; inverting depends on the source's contrast convention (it
        makes density dark in both when one source stored it bright)."""
        keys = ("lowpass", "highpass", "clamp")
        return all(getattr(self, k) == getattr(other, k) for k in keys)


def resample(volume: np.ndarray, voxel_size: float, target: float) -> np.ndarray:
    """Resample a (z, y, x) volume from ``voxel_size`` to ``target`` A/voxel (cubic spline).

    Voxel 0 stays where it is (so the origin is unchanged); the output covers the
    input: ``floor((n - 1) * voxel_size / target) + 1`` voxels per axis. Low-pass
    first when shrinking, or the spline aliases. Returns float32.
    """
    step = float(target) / float(voxel_size)
    if step == 1.0:
        return np.asarray(volume, dtype=np.float32)
    shape = tuple(int(np.floor((n - 1) / step + 1e-9)) + 1 for n in volume.shape)
    # What affine_transform's prefilter does for mode "nearest" (pad 12 voxels by the edge values,
    # spline-filter), in place in float32: its own makes two float64 copies of the volume.
    pad = 12
    coefficients = np.pad(np.asarray(volume, dtype=np.float32), pad, mode="edge")
    ndimage.spline_filter(coefficients, order=3, output=coefficients, mode="nearest")
    return ndimage.affine_transform(coefficients, np.full(3, step), offset=pad, output_shape=shape,
                                    output=np.float32, order=3, mode="nearest", prefilter=False)


def normalise(volume: np.ndarray, clamp: float | None = 3.0) -> np.ndarray:
    """Scale to mean 0, sd 1 over the whole volume, then clamp to +-``clamp``.

    Returns float32 of the same shape. A constant volume is an error.
    """
    data = np.asarray(volume, dtype=np.float32)
    mean = float(data.mean(dtype=np.float64))
    sd = float(data.std(dtype=np.float64))
    if not sd > 0:
        raise InvalidValue("the volume is constant (standard deviation 0)")
    out = (data - np.float32(mean)) / np.float32(sd)
    if clamp is not None:
        np.clip(out, -clamp, clamp, out=out)
    return out


def preprocess(
    volume: np.ndarray, voxel_size: float, config: PreprocessConfig = PreprocessConfig(), workers: int = -1
) -> np.ndarray:
    """Preprocess a tomogram as the networks expect it.

    ``volume``: (z, y, x) array, any real dtype; ``voxel_size``: A/voxel of the
    input. ``workers``: threads of the Fourier filter (-1: all cores). Returns
    float32 (z, y, x) at ``config.output_voxel_size(voxel_size)``.
    """
    data = bin_volume(volume, config.bin)
    if config.invert:
        data = -data
    binned = float(voxel_size) * config.bin
    data = gaussian_filter_fourier(data, binned, config.lowpass, config.highpass, workers=workers)
    if config.resample is not None:
        if config.resample > binned and (config.lowpass is None or config.lowpass < 2 * config.resample):
            warnings.warn(f"resampling to {config.resample:g} A keeps detail finer than its Nyquist limit "
                          f"({2 * config.resample:g} A), which aliases; a low-pass of at least that avoids it")
        data = resample(data, binned, config.resample)
    return normalise(data, config.clamp)
