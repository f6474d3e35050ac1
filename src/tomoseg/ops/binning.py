"""Integer binning by block mean."""

from __future__ import annotations

import numpy as np

from tomoseg.errors import InvalidValue


def bin_volume(volume: np.ndarray, factor: int, slab_bytes: int = 256 * 2**20) -> np.ndarray:
    """Bin a (z, y, x) array by ``factor`` in every axis with a block mean.

    Trailing voxels that do not fill a whole block are dropped (as IMOD's
    ``binvol`` and EMAN2 do). Returns float32 of shape ``shape // factor``.
    The input (e.g. a memory-mapped int8 or int16 tomogram) is converted to
    float32 in slabs of about ``slab_bytes``, so memory holds the binned volume
    and one slab, not a float32 copy of the input.
    """
    if factor < 1:
        raise InvalidValue(f"`bin` factor must be >= 1, got {factor}")
    if factor == 1:
        return np.array(volume, dtype=np.float32)
    nz, ny, nx = (n // factor for n in volume.shape)
    if min(nz, ny, nx) == 0:
        raise InvalidValue(f"volume of shape {volume.shape} is smaller than one {factor}^3 bin")
    out = np.empty((nz, ny, nx), dtype=np.float32)
    rows = max(1, slab_bytes // (8 * factor**3 * ny * nx))  # binned slices per slab (float64 sums)
    for z0 in range(0, nz, rows):
        z1 = min(nz, z0 + rows)
        block = np.asarray(volume[z0 * factor : z1 * factor, : ny * factor, : nx * factor], dtype=np.float32)
        blocks = block.reshape(z1 - z0, factor, ny, factor, nx, factor)
        out[z0:z1] = blocks.mean(axis=(1, 3, 5), dtype=np.float64)
    return out


def binned_origin(
    origin: tuple[float, float, float], voxel_size: float, factor: int
) -> tuple[float, float, float]:
    """The origin (A) of a volume binned by ``factor``, so that positions stay put.

    With ``A = index * voxel_size + origin``, binned voxel 0 is the mean of raw
    voxels 0 .. factor - 1, centred ``(factor - 1) / 2`` raw voxels in.
    """
    shift = (factor - 1) / 2 * float(voxel_size)
    return tuple(float(o) + shift for o in origin)
