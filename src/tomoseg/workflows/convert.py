"""Volumes from one format into another (MRC, TIFF, OME-Zarr), slab by slab: ``tomoseg convert``, the
dock's "Save maps..." and the napari plugin's writer.

The voxel size, the origin and tomoseg's header labels travel with the data (a score map stays a
score map, a label map keeps its legend); the data are read and written :data:`SLAB` slices at a
time, so memory stays flat in the volume's depth. A volume is stored in the narrowest type its format
holds without changing a value (:func:`stored_dtype`); an integer volume whose values no volume
format here holds is refused in one line, never wrapped.
"""

from __future__ import annotations

import numpy as np

from tomoseg.errors import TomosegError
from tomoseg.io.atomic import check_writable
from tomoseg.io.mrc import create_volume, read_volume, volume_format
from tomoseg.progress import Progress, report
from tomoseg.types import Path_

SLAB = 16
"""Slices read and written at a time."""

_MRC_TYPES = (np.int8, np.int16, np.uint16, np.float32)


def _value_range(data, slab: int = SLAB) -> tuple[int, int]:
    low, high = 0, 0
    for z0 in range(0, data.shape[0], slab):
        block = np.asarray(data[z0:z0 + slab])
        if block.size:
            low, high = min(low, int(block.min())), max(high, int(block.max()))
    return low, high


def stored_dtype(data, format: str, path: Path_ = "") -> np.dtype:
    """The type ``data`` is written as in ``format`` ("mrc", "tiff", "zarr"): floats as float32; bytes
    and booleans as unsigned bytes (in an MRC file, mode 0, whose bytes tomoseg reads as unsigned for
    label maps); other integers as the narrowest of uint8, int16, uint16 that holds their values (a
    napari labels layer is int32 or int64), else refused."""
    dtype = np.dtype(data.dtype)
    if dtype.kind == "f":
        return np.dtype(np.float32)
    if dtype.kind == "b" or dtype == np.uint8:
        return np.dtype(np.int8) if format == "mrc" else np.dtype(np.uint8)
    if dtype.kind not in "iu":
        raise TomosegError(f"{path}: cannot write {dtype} values as a volume (real or integer values only)")
    if dtype in (np.int8, np.int16, np.uint16):
        return dtype
    low, high = _value_range(data)
    for narrow in (np.uint8, np.int16, np.uint16):
        info = np.iinfo(narrow)
        if info.min <= low and high <= info.max:
            return stored_dtype(np.zeros(0, narrow), format, path)
    raise TomosegError(f"{path}: values {low}..{high} do not fit 16 bits; a volume is written with 8- or 16-bit "
                       f"integers or 32-bit floats")


def save_volume(
    path: Path_,
    data,
    voxel_size: float,
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
    labels: tuple[str, ...] = (),
    overwrite: bool = False,
    progress: Progress | None = None,
    inputs: tuple[Path_, ...] = (),
) -> None:
    """Write a (z, y, x) array (in memory, memory-mapped or a zarr array) to ``path`` in the format its
    extension names, :data:`SLAB` slices at a time, atomically (whole or not at all), with voxel size
    (A), origin (x, y, z, A) and header labels. ``inputs``: files ``path`` must not replace."""
    out = check_writable(path, inputs=inputs, overwrite=overwrite)
    format = volume_format(out)
    if np.ndim(data) != 3:
        raise TomosegError(f"{path}: a volume is (z, y, x); got an array of shape {tuple(np.shape(data))}")
    if not voxel_size or voxel_size <= 0:
        raise TomosegError(f"{path}: voxel size {voxel_size!r} A; give a positive voxel size")
    dtype = stored_dtype(data, format, path)
    depth = data.shape[0]
    with create_volume(out, tuple(data.shape), dtype, float(voxel_size), tuple(origin), tuple(labels)) as dst:
        for z0 in range(0, depth, SLAB):
            block = np.asarray(data[z0:z0 + SLAB])
            if block.dtype.itemsize == dtype.itemsize and block.dtype.kind in "iub" and dtype.kind in "iu":
                block = block.view(dtype)  # bytes as bytes: uint8 <-> int8, bool -> 0/1
            dst[z0:z0 + SLAB] = block.astype(dtype, copy=False)
            report(progress, min(z0 + SLAB, depth), depth, "writing")


def convert_file(
    input_path: Path_,
    output_path: Path_,
    voxel_size: float | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> tuple[tuple[int, int, int], float]:
    """Copy a volume into the format ``output_path``'s extension names, with its voxel size (or
    ``voxel_size`` where the header's is missing or wrong), origin and tomoseg header labels; an
    OME-Zarr input is read at its full-resolution level. Returns the shape and the voxel size."""
    check_writable(output_path, inputs=(input_path,), overwrite=overwrite)
    volume_format(output_path)
    with read_volume(input_path, voxel_size=voxel_size, mmap=True) as vol:
        save_volume(output_path, vol.data, vol.voxel_size, vol.origin, vol.labels, overwrite=overwrite,
                    progress=progress, inputs=(input_path,))
        return tuple(vol.data.shape), float(vol.voxel_size)
