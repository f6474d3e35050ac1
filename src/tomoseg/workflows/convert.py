"""Volumes from one format into another (MRC, TIFF, OME-Zarr), slab by slab: ``tomoseg convert``, the
dock's "Save maps..." and the napari plugin's writer.

The voxel size, the origin and tomoseg's header labels travel with the data (a score map stays a
score map, a label map keeps its legend); the data are read and written :data:`SLAB` slices at a
time, releasing the pages read, so memory stays flat in the volume's depth. Integers are stored in the
narrowest type the output format holds without changing a value (:func:`stored_dtype`), and refused in
one line where none does; real values are stored as 32-bit floats (tomoseg's one real type).
"""

from __future__ import annotations

import numpy as np

from tomoseg.errors import TomosegError
from tomoseg.io.atomic import check_writable
from tomoseg.io.mrc import create_volume, read_volume, volume_format
from tomoseg.io.pages import read_slab, write_slab
from tomoseg.progress import Progress, report
from tomoseg.types import Path_

SLAB = 16
"""Slices read and written at a time."""

_INTEGER_TYPES = {  # what each format holds, in the order tried
    "mrc": (np.int8, np.int16, np.uint16),  # MRC modes 0, 1, 6
    "tiff": (np.uint8, np.int16, np.uint16),  # tomoseg's TIFF writer stores bytes unsigned
    "zarr": (np.uint8, np.int8, np.int16, np.uint16),
}


def _value_range(data, slab: int = SLAB) -> tuple[int, int]:
    low, high = 0, 0
    for z0 in range(0, data.shape[0], slab):
        block = read_slab(data, z0, z0 + slab)
        if block.size:
            low, high = min(low, int(block.min())), max(high, int(block.max()))
    return low, high


def stored_dtype(data, format: str, path: Path_ = "") -> np.dtype:
    """The type ``data`` is written as in ``format`` ("mrc", "tiff", "zarr"): real values as float32;
    booleans and integers as their own type where the format holds it (native byte order), else as the
    first of the format's integer types that holds every value (one pass over the data to find its
    range): a napari labels layer (int32, int64) becomes bytes, bytes above 127 become 16-bit in MRC
    (whose mode 0 is signed). Values no type of the format holds are refused, never wrapped."""
    dtype = np.dtype(data.dtype)
    if dtype.kind == "f":
        return np.dtype(np.float32)
    if dtype.kind == "b":
        return np.dtype(_INTEGER_TYPES[format][0])
    if dtype.kind not in "iu":
        raise TomosegError(f"{path}: cannot write {dtype} values as a volume (real or integer values only)")
    kinds = [np.dtype(t) for t in _INTEGER_TYPES[format]]
    if dtype.newbyteorder("=") in kinds:
        return dtype.newbyteorder("=")
    low, high = _value_range(data)
    for kind in kinds:
        info = np.iinfo(kind)
        if info.min <= low and high <= info.max:
            return kind
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
    if not (voxel_size is not None and np.isfinite(voxel_size) and voxel_size > 0):
        raise TomosegError(f"{path}: voxel size {voxel_size!r} A; give a positive voxel size")
    check_labels(path, labels)
    dtype = stored_dtype(data, format, path)
    depth = data.shape[0]
    with create_volume(out, tuple(data.shape), dtype, float(voxel_size), tuple(origin), tuple(labels)) as dst:
        for z0 in range(0, depth, SLAB):
            block = read_slab(data, z0, z0 + SLAB)
            write_slab(dst, z0, block.astype(dtype, copy=False))  # exact: stored_dtype holds every value
            report(progress, min(z0 + SLAB, depth), depth, "writing")


def check_labels(path: Path_, labels) -> None:
    """Header labels a volume file keeps: at most 10, each at most 80 ASCII characters."""
    labels = tuple(labels)
    bad = [t for t in labels if not isinstance(t, str) or len(t) > 80 or not t.isascii()]
    if len(labels) > 10 or bad:
        raise TomosegError(f"{path}: header labels are at most 10 ASCII texts of at most 80 characters "
                           f"(got {len(labels)}{f', first bad one {str(bad[0])[:40]!r}...' if bad else ''})")


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


def layer_metadata(path: Path_, vol=None, calibrated: bool = True) -> dict:
    """What a napari layer shown from a volume file keeps of it, for the plugin's writer
    (:mod:`tomoseg.gui.writer`) to save it with: voxel size (None where the file recorded none:
    ``calibrated`` false), origin, header labels and the file. ``vol``: the file's volume, if read
    already (the tomoseg reader); else its header is read."""
    if vol is None:
        with read_volume(path, mmap=True) as vol:
            return layer_metadata(path, vol, calibrated)
    return {"voxel_size": float(vol.voxel_size) if calibrated else None, "origin": tuple(vol.origin),
            "path": str(path), "labels": tuple(vol.labels)}
