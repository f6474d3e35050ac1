"""Integer binning by block mean."""

from __future__ import annotations

import numpy as np


def bin_volume(volume: np.ndarray, factor: int) -> np.ndarray:
    """Bin a (z, y, x) array by ``factor`` in every axis with a block mean.

    Trailing voxels that do not fill a whole block are dropped (as IMOD's
    ``binvol`` and EMAN2 do). Returns float32 of shape ``shape // factor``.
    """
    if factor < 1:
        raise ValueError(f"bin factor must be >= 1, got {factor}")
    data = np.asarray(volume, dtype=np.float32)
    if factor == 1:
        return data.copy()
    nz, ny, nx = (n // factor for n in data.shape)
    if min(nz, ny, nx) == 0:
        raise ValueError(f"volume of shape {data.shape} is smaller than one {factor}^3 bin")
    cropped = data[: nz * factor, : ny * factor, : nx * factor]
    blocks = cropped.reshape(nz, factor, ny, factor, nx, factor)
    return blocks.mean(axis=(1, 3, 5), dtype=np.float64).astype(np.float32)


def binned_origin(
    origin: tuple[float, float, float], voxel_size: float, factor: int
) -> tuple[float, float, float]:
    """The origin (A) of a volume binned by ``factor``, so that positions stay put.

    With ``A = index * voxel_size + origin``, binned voxel 0 is the mean of raw
    voxels 0 .. factor - 1, centred ``(factor - 1) / 2`` raw voxels in.
    """
    shift = (factor - 1) / 2 * float(voxel_size)
    return tuple(float(o) + shift for o in origin)
