"""Reading and writing volumes, keeping voxel size, origin and tomoseg's header labels.

The format follows the file's extension: MRC (``.mrc``, ``.rec``, ``.map``, ``.mrcs``) or
a TIFF stack with ImageJ metadata (``.tif``, ``.tiff``; :mod:`tomoseg.io.tiff`); any other
output extension is refused (:func:`volume_format`) rather than written in the wrong format.
Reading MRC is permissive (files from SerialEM-era tools lack the map ID) but
every problem that makes the data unusable is one clear
:class:`~tomoseg.errors.TomosegError` naming the file.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np

from tomoseg.errors import TomosegError, VoxelSizeMissing
from tomoseg.io.atomic import atomic_directory, atomic_output
from tomoseg.io.omezarr import SUFFIXES as ZARR_SUFFIXES
from tomoseg.io.omezarr import create_omezarr, finish_omezarr, is_zarr, open_omezarr, read_omezarr
from tomoseg.io.pages import release_pages
from tomoseg.io.tiff import SUFFIXES as TIFF_SUFFIXES
from tomoseg.io.tiff import create_tiff, is_tiff, open_tiff, read_tiff
from tomoseg.io.volume import LABEL_PREFIX, Volume

MRC_SUFFIXES = (".mrc", ".rec", ".map", ".mrcs")


def volume_format(path: str | os.PathLike) -> str:
    """"mrc", "tiff" or "zarr" (OME-Zarr), from an output path's extension; any other extension is a TomosegError
    (a volume is never written in a format its name does not say)."""
    suffix = Path(path).suffix.lower()
    if suffix in MRC_SUFFIXES:
        return "mrc"
    if suffix in TIFF_SUFFIXES:
        return "tiff"
    if suffix in ZARR_SUFFIXES:
        return "zarr"
    said = f"extension {suffix!r}" if suffix else "no extension"
    raise TomosegError(f"{path}: {said}: a volume is written as MRC ({', '.join(MRC_SUFFIXES)}), "
                       f"TIFF ({', '.join(TIFF_SUFFIXES)}) or OME-Zarr (.zarr); name the output with one of these")


def _open(path: Path, mode: str = "r") -> mrcfile.mrcfile.MrcFile:
    if not path.exists():
        raise TomosegError(f"{path}: no such file")
    if path.is_dir():
        raise TomosegError(f"{path}: is a directory, expected an MRC file")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mrc = mrcfile.mmap(path, mode=mode, permissive=True)
    except (ValueError, OSError, EOFError) as err:
        raise TomosegError(f"{path}: not a readable MRC file ({err})") from None
    if mrc.data is None:
        mrc.close()
        reasons = "; ".join(str(w.message) for w in caught) or "no data block"
        if "memmap" in reasons:
            reasons = "the data block is shorter than the header says (truncated file?)"
        raise TomosegError(f"{path}: not a readable MRC file ({reasons})")
    return mrc


def _voxel_size(path: Path, mrc: mrcfile.mrcfile.MrcFile, override: float | None) -> float:
    if override is not None:
        if not override > 0:
            raise TomosegError(f"{path}: `voxel_size` must be > 0, got {override}")
        return float(override)
    vs = mrc.voxel_size
    sizes = np.array([float(vs.x), float(vs.y), float(vs.z)])
    if not np.all(np.isfinite(sizes)) or not np.all(sizes > 0):
        raise VoxelSizeMissing(f"{path}: the header has no voxel size ({sizes[0]:g} A); give it with `voxel_size`")
    if sizes.max() > sizes.min() * 1.01:
        raise TomosegError(
            f"{path}: anisotropic voxel size {sizes[0]:g} x {sizes[1]:g} x {sizes[2]:g} A is not supported"
        )
    return float(sizes[0])


def read_volume(
    path: str | os.PathLike,
    ndim: int = 3,
    voxel_size: float | None = None,
    mmap: bool = True,
    header_only: bool = False,
    near_voxel_size: float | None = None,
) -> Volume:
    """Open an MRC file as a :class:`Volume` (memory-mapped by default).

    ``ndim=3`` refuses 2D images. ``voxel_size`` overrides the header's.
    Raises TomosegError for missing, non-MRC, truncated or wrong-dimension files.
    A ``.tif`` / ``.tiff`` file is read as a TIFF stack instead, into memory
    (:func:`tomoseg.io.tiff.read_tiff`); ``header_only`` reads only its metadata
    (the volume's data are then zeros of the right shape and type, taking no memory).
    A ``.zarr`` folder is read as OME-Zarr (:func:`tomoseg.io.omezarr.read_omezarr`; ``data`` is read
    chunk by chunk on slicing), at the multiscale level whose voxel size is ``near_voxel_size``
    if it has one.
    """
    path = Path(path)
    if is_tiff(path):
        return read_tiff(path, ndim=ndim, voxel_size=voxel_size, header_only=header_only)
    if is_zarr(path):
        return read_omezarr(path, ndim=ndim, voxel_size=voxel_size, header_only=header_only,
                            near_voxel_size=near_voxel_size)
    mrc = _open(path)
    data = mrc.data
    if ndim == 3 and (data.ndim != 3 or mrc.header.nz <= 1):
        shape = "x".join(str(n) for n in data.shape[::-1])
        mrc.close()
        raise TomosegError(f"{path}: is a {data.ndim}D image ({shape}); a 3D tomogram is needed")
    if data.dtype.kind not in "fiu":
        mrc.close()
        raise TomosegError(f"{path}: unsupported data type {data.dtype} (complex MRC modes are not volumes)")
    size = _voxel_size(path, mrc, voxel_size)
    origin = tuple(float(v) for v in (mrc.header.origin.x, mrc.header.origin.y, mrc.header.origin.z))
    n = int(mrc.header.nlabl)
    labels = tuple(
        bytes(lbl).decode("ascii", "replace").rstrip("\x00 ") for lbl in mrc.header.label[: max(n, 0)]
    )
    if not mmap:
        data = np.array(data)
        mrc.close()
    return Volume(data=data, voxel_size=size, origin=origin, labels=labels, closer=mrc.close if mmap else None)


def check_finite(path: str | os.PathLike, data: np.ndarray, chunk: int = 16) -> None:
    """Raise TomosegError if ``data`` holds NaN or infinity (checked slab by slab)."""
    if data.dtype.kind != "f":
        return
    for z0 in range(0, data.shape[0], chunk):
        if not np.isfinite(data[z0 : z0 + chunk]).all():
            raise TomosegError(f"{path}: contains NaN or infinite values (first near slice z={z0})")


def _update_stats(mrc: mrcfile.mrcfile.MrcFile, block: int = 1 << 22) -> None:
    """Header min, max, mean and rms, computed in blocks of ``block`` voxels (memory stays flat)."""
    data = mrc.data
    rows = max(1, block // max(1, data.shape[-1]))
    lo, hi, total, squares, count = np.inf, -np.inf, 0.0, 0.0, 0
    for z in range(data.shape[0]):
        for y0 in range(0, data.shape[1], rows):
            part = np.asarray(data[z, y0 : y0 + rows], dtype=np.float64)
            lo, hi = min(lo, float(part.min())), max(hi, float(part.max()))
            total += float(part.sum())
            squares += float(np.vdot(part, part))
            count += part.size
        release_pages(data[z : z + 1])
    mean = total / count
    mrc.header.dmin, mrc.header.dmax, mrc.header.dmean = lo, hi, mean
    mrc.header.rms = float(np.sqrt(max(squares / count - mean * mean, 0.0)))


def finish_header(mrc: mrcfile.mrcfile.MrcFile, voxel_size: float, origin, labels) -> None:
    """Set voxel size, origin, statistics and exactly these labels (no timestamp) on a written volume."""
    mrc.voxel_size = voxel_size
    mrc.header.origin.x, mrc.header.origin.y, mrc.header.origin.z = origin
    _update_stats(mrc)
    mrc.header.label[:] = b""  # no creation timestamp: same content, same bytes
    mrc.header.nlabl = 0
    for text in labels:
        mrc.add_label(text[:80])


@dataclass
class VolumeFile:
    """A volume file open for writing: ``data`` is its writable (z, y, x) memory map; ``finish``
    completes the header once the data are written (MRC statistics); ``close`` releases it."""

    data: np.ndarray
    finish: Callable[[], None]
    close: Callable[[], None]


def new_volume_file(path: Path, format: str, shape, dtype, voxel_size: float, origin, labels) -> VolumeFile:
    """Create a volume file of ``format`` ("mrc", "tiff" or "zarr") at ``path`` (any name: a temporary one)."""
    if format == "zarr":
        data = create_omezarr(path, shape, dtype, voxel_size, origin, labels)
        return VolumeFile(data, lambda: finish_omezarr(path, voxel_size, origin, labels), lambda: None)
    if format == "tiff":
        data = create_tiff(path, shape, dtype, voxel_size, origin, labels)
        return VolumeFile(data, data.flush, lambda: None)
    mrc = mrcfile.new_mmap(path, shape=tuple(shape), mrc_mode=mrc_mode(np.dtype(dtype)), overwrite=True)
    return VolumeFile(mrc.data, lambda: finish_header(mrc, voxel_size, origin, labels), mrc.close)


def reopen_volume_file(path: Path, format: str, voxel_size: float, origin, labels) -> VolumeFile | None:
    """Open a volume file made by :func:`new_volume_file` again for writing (None if unreadable)."""
    if format == "zarr":
        data = open_omezarr(path)
        return None if data is None else VolumeFile(data, lambda: finish_omezarr(path, voxel_size, origin, labels),
                                                    lambda: None)
    if format == "tiff":
        data = open_tiff(path)
        return None if data is None else VolumeFile(data, data.flush, lambda: None)
    try:
        mrc = mrcfile.mmap(path, mode="r+", permissive=True)
    except (ValueError, OSError, EOFError):
        return None
    if mrc.data is None:
        mrc.close()
        return None
    return VolumeFile(mrc.data, lambda: finish_header(mrc, voxel_size, origin, labels), mrc.close)


@contextlib.contextmanager
def create_volume(
    path: str | os.PathLike,
    shape: tuple[int, int, int],
    dtype: np.dtype | type,
    voxel_size: float,
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
    labels: tuple[str, ...] = (),
) -> Iterator[np.ndarray]:
    """Write a volume incrementally (MRC or TIFF, by ``path``'s extension): yields a writable
    (z, y, x) memory map.

    The file is created under a temporary name and renamed to ``path`` when the
    block ends without error (header statistics then updated); on error it is
    removed. Labels are ``tomoseg KEY: value`` strings (at most 9).
    """
    format = volume_format(path)
    with (atomic_directory(path, overwrite=True) if format == "zarr" else atomic_output(path)) as tmp:
        out = new_volume_file(tmp, format, shape, dtype, voxel_size, origin, labels)
        try:
            yield out.data
            out.finish()
        finally:
            out.close()


def write_volume(
    path: str | os.PathLike,
    data: np.ndarray,
    voxel_size: float,
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
    labels: tuple[str, ...] = (),
) -> None:
    """Write a whole (z, y, x) array atomically, with voxel size, origin and labels."""
    with create_volume(path, data.shape, data.dtype, voxel_size, origin, labels) as out:
        out[...] = data


_MODES = {np.dtype(np.int8): 0, np.dtype(np.int16): 1, np.dtype(np.float32): 2, np.dtype(np.uint16): 6}


def mrc_mode(dtype: np.dtype) -> int:
    """MRC2014 mode of a numpy dtype (labels are written as int8, mode 0)."""
    if dtype not in _MODES:
        raise ValueError(f"no MRC mode for {dtype}; use one of {', '.join(map(str, _MODES))}")
    return _MODES[dtype]


def header_label(key: str, value: str) -> str:
    """A ``tomoseg KEY: value`` header label (max 80 characters)."""
    text = f"{LABEL_PREFIX}{key}: {value}"
    if len(text) > 80:
        raise ValueError(f"header label too long: {text!r}")
    return text
