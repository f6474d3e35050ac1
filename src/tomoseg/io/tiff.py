"""Reading TIFF stacks as volumes (ImageJ/Fiji, cylindra, tifffile), voxel size included.

A 3D stack (z, y, x) is memory-mapped where its pixels lie in one block (as tomoseg
and ImageJ write them), else read into memory. The voxel size comes from the ImageJ
metadata: the X and Y resolution tags (pixels per ``unit``) and ``spacing`` (z
step), with ``unit`` nm, micron / um or A. A stack without them needs the voxel
size given explicitly. The origin comes from ImageJ's ``xorigin``, ``yorigin`` and
``zorigin`` (in voxels, ImageJ's sign: position = (index - origin) x voxel size), else
it is (0, 0, 0); tomoseg's header labels travel in ImageJ's ``Info`` text.

Volumes are written as ImageJ hyperstacks (what Fiji, napari and cylindra read): voxel
size in nm in the resolution tags and ``spacing``, the origin and labels as above.
ImageJ has no signed 8-bit type: int8 label maps are written as uint8.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import tifffile

from tomoseg.errors import TomosegError, VoxelSizeMissing
from tomoseg.io.volume import Volume

SUFFIXES = (".tif", ".tiff")

#: Angstrom per unit, for the units ImageJ and its relatives write (lower case).
UNIT_ANGSTROM = {
    "nm": 10.0, "nanometer": 10.0, "nanometers": 10.0,
    "micron": 1e4, "microns": 1e4, "um": 1e4, "\u00b5m": 1e4, "\u03bcm": 1e4, "micrometer": 1e4,
    "a": 1.0, "\u00e5": 1.0, "angstrom": 1.0, "angstroms": 1.0,
}


def is_tiff(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in SUFFIXES


def _imagej_metadata(voxel_size: float, origin, labels) -> dict:
    """imwrite's keywords for a (z, y, x) stack with this geometry and these header labels."""
    nm = float(voxel_size) / UNIT_ANGSTROM["nm"]
    meta = {"axes": "ZYX", "unit": "nm", "spacing": nm}
    for axis, value in zip("xyz", origin):
        if value:
            meta[f"{axis}origin"] = -float(value) / float(voxel_size)
    if labels:
        meta["Info"] = "\n".join(labels)
    return {"imagej": True, "resolution": (1.0 / nm, 1.0 / nm), "metadata": meta}


def create_tiff(path: str | os.PathLike, shape, dtype, voxel_size: float, origin=(0.0, 0.0, 0.0),
                labels: tuple[str, ...] = ()) -> np.memmap:
    """Create an ImageJ TIFF stack at ``path`` and return its pixels as a writable memory map."""
    dtype = np.dtype(np.uint8) if np.dtype(dtype) == np.int8 else np.dtype(dtype)
    return tifffile.memmap(path, shape=tuple(shape), dtype=dtype, **_imagej_metadata(voxel_size, origin, labels))


def open_tiff(path: str | os.PathLike, mode: str = "r+") -> np.memmap | None:
    """A TIFF stack's pixels as a memory map, or None where they cannot be mapped (compressed,
    tiled or scattered pixels)."""
    try:
        data = tifffile.memmap(path, mode=mode)
    except (ValueError, OSError, tifffile.TiffFileError):
        return None
    return data if data.ndim == 3 else None


def _origin_and_labels(meta: dict, voxel_size: float) -> tuple[tuple[float, float, float], tuple[str, ...]]:
    """Origin (x, y, z) in A and tomoseg's header labels from ImageJ metadata."""
    try:
        origin = tuple(-float(meta.get(f"{axis}origin", 0.0)) * voxel_size for axis in "xyz")
    except (TypeError, ValueError):
        origin = (0.0, 0.0, 0.0)
    info = meta.get("Info")
    labels = tuple(line for line in str(info).splitlines() if line.startswith("tomoseg ")) if info else ()
    return origin, labels


def _resolution(page: tifffile.TiffPage, name: str) -> float | None:
    """Pixels per unit from a resolution tag, if present and usable."""
    tag = page.tags.get(name)
    if tag is None:
        return None
    num, den = tag.value
    return num / den if den and num else None


def tiff_voxel_size(path: Path, tif: tifffile.TiffFile) -> float | None:
    """Isotropic voxel size in A from ImageJ metadata; None if the file does not say."""
    meta = tif.imagej_metadata or {}
    unit = str(meta.get("unit", "")).strip().lower().replace("\\u00b5", "\u00b5")
    if unit not in UNIT_ANGSTROM:
        return None
    page = tif.pages[0]
    per_unit = [_resolution(page, "XResolution"), _resolution(page, "YResolution")]
    if per_unit[0] is None:
        return None
    sizes = [UNIT_ANGSTROM[unit] / r for r in per_unit if r is not None]
    if meta.get("spacing") is not None:
        sizes.append(UNIT_ANGSTROM[unit] * float(meta["spacing"]))
    if not all(math.isfinite(s) and s > 0 for s in sizes):
        return None
    if max(sizes) > min(sizes) * 1.01:
        raise TomosegError(
            f"{path}: anisotropic voxel size {' x '.join(f'{s:g}' for s in sizes)} A is not supported"
        )
    return float(sizes[0])


def read_tiff(path: str | os.PathLike, ndim: int = 3, voxel_size: float | None = None, header_only: bool = False):
    """A TIFF stack as a :class:`~tomoseg.io.mrc.Volume` (memory-mapped where it can be).

    ``voxel_size`` overrides the metadata's. Raises TomosegError for missing,
    unreadable, non-3D or non-real files and for a missing voxel size.
    ``header_only``: the pixels are not read; the data are read-only zeros of the
    stack's shape and type that take no memory (for checking many files quickly).
    """

    path = Path(path)
    if not path.exists():
        raise TomosegError(f"{path}: no such file")
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            if len(tif.series) > 1:
                raise TomosegError(f"{path}: holds {len(tif.series)} image series (pages of different shapes "
                                   "or types); a tomogram is one stack of equal slices")
            if "S" in series.axes and series.shape[series.axes.index("S")] > 1:
                raise TomosegError(f"{path}: is an RGB or multi-sample image; a tomogram has one value per voxel")
            if header_only:
                data = np.broadcast_to(np.zeros((), series.dtype), tuple(n for n in series.shape if n != 1))
            else:
                data = open_tiff(path, mode="r")
                data = np.squeeze(series.asarray()) if data is None else data
            size = tiff_voxel_size(path, tif) if voxel_size is None else None
            imagej = tif.imagej_metadata or {}
    except (tifffile.TiffFileError, ValueError, OSError, IndexError) as err:
        raise TomosegError(f"{path}: not a readable TIFF file ({err})") from None
    if ndim == 3 and data.ndim != 3:
        shape = "x".join(str(n) for n in data.shape[::-1])
        what = "image (a time series or multichannel stack?)" if data.ndim > 3 else "image"
        raise TomosegError(f"{path}: is a {data.ndim}D {what} ({shape}); a 3D tomogram (one stack of slices) is needed")
    if data.dtype.kind not in "fiu":
        raise TomosegError(f"{path}: unsupported data type {data.dtype}")
    if voxel_size is not None:
        if not voxel_size > 0:
            raise TomosegError(f"{path}: `voxel_size` must be > 0, got {voxel_size}")
        size = float(voxel_size)
    if size is None:
        raise VoxelSizeMissing(f"{path}: the TIFF metadata give no voxel size in nm, um or A; give it with `voxel_size`")
    origin, labels = _origin_and_labels(imagej, size)
    return Volume(data=data, voxel_size=size, origin=origin, labels=labels)
