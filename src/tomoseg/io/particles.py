"""Particle lists: CSV (default), RELION 5 / 3.1 STAR, Dynamo, IMOD, EMAN2.

The one coordinate convention inside tomoseg: ``x, y, z`` are 0-based voxel
indices into ``data[z, y, x]`` of the tomogram the picks were made on, the
centre of the first voxel being 0; Angstrom = ``index * voxel_size + origin``
(origin from the MRC header, in A; the ``*_angst`` CSV columns). Orientations
are ``rot, tilt, psi`` in degrees, RELION's ZYZ convention
(:mod:`tomoseg.ops.rotations`), written to RELION files unchanged. Each format
module converts at its border and documents its own convention and source:

- ``csv``: columns x, y, z, score, peak, size_voxels, x_angst, y_angst,
  z_angst, rot, tilt, psi (this module).
- ``relion5`` / ``relion3``: :mod:`tomoseg.io.star` (centred Angstrom from the
  tomogram centre ``size / 2``; 0-based pixels).
- ``dynamo``: :mod:`tomoseg.io.dynamo` (1-based pixels; ZXZ angles).
- ``imod``: :mod:`tomoseg.io.imod` (voxel centre at (x + 0.5, y + 0.5, z)).
- ``eman2``: :mod:`tomoseg.io.eman2` (unbinned pixels from the centre n // 2).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from tomoseg.errors import InvalidValue, TomosegError
from tomoseg.io.atomic import atomic_output
from tomoseg.io.particle_formats import EXTENSIONS, FORMATS, PARTICLE_FORMATS
from tomoseg.types import Picks, TomogramInfo

ANGLE_COLUMNS = ("rot", "tilt", "psi")


def extension_of(format: str) -> str:
    """The file extension of a particle format (``.star`` for both RELION formats)."""
    if format not in FORMATS:
        raise InvalidValue(f"unknown particle `format` {format!r}; choose one of {', '.join(FORMATS)}")
    return PARTICLE_FORMATS[format].extension


def infer_format(path: str | os.PathLike, format: str | None = None) -> str:
    """The format named, or the one the file extension implies."""
    if format is not None:
        if format not in FORMATS:
            raise TomosegError(f"{path}: unknown particle `format` {format!r}; choose one of {', '.join(FORMATS)}")
        return format
    suffix = Path(path).suffix.lower()
    if suffix not in EXTENSIONS:
        raise TomosegError(f"{path}: cannot tell the particle format from the extension {suffix or '(none)'!r}; "
                           f"use one of {', '.join(EXTENSIONS)} or name a format ({', '.join(FORMATS)})")
    return EXTENSIONS[suffix]


def picks_table(
    picks: Picks, voxel_size: float, origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
) -> pd.DataFrame:
    """The picks as a table with voxel and Angstrom coordinates and angles."""
    table = pd.DataFrame(
        {
            "x": picks.xyz[:, 0],
            "y": picks.xyz[:, 1],
            "z": picks.xyz[:, 2],
            "score": picks.score,
            "peak": picks.peak,
            "size_voxels": picks.size,
        }
    )
    for axis, o in zip("xyz", origin):
        table[f"{axis}_angst"] = table[axis] * voxel_size + o
    for i, name in enumerate(ANGLE_COLUMNS):
        table[name] = picks.angles[:, i]
    return table


def write_csv(path: str | os.PathLike, picks: Picks, info: TomogramInfo) -> None:
    table = picks_table(picks, info.voxel_size, info.origin)
    with atomic_output(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.10g")


def read_csv(path: str | os.PathLike, info: TomogramInfo | None = None, tomo_name: str | None = None
             ) -> tuple[Picks, dict]:
    """A CSV particle list (x, y, z voxels; tomoseg's also has x_angst, y_angst, z_angst).

    info: the tomogram the picks are wanted in. When the Angstrom columns do not
    match its grid (the list was made on a binned or resampled tomogram), the
    positions come from them instead, with a warning.
    """
    try:
        table = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise TomosegError(f"{path}: not a readable CSV file ({' '.join(str(exc).split())})") from exc
    missing = [c for c in "xyz" if c not in table.columns]
    if missing:
        raise TomosegError(f"{path}: CSV particle list lacks column(s) {', '.join(missing)}")
    n = len(table)

    def column(name: str, default: float = 0.0) -> np.ndarray:
        return table[name].to_numpy(dtype=np.float64) if name in table.columns else np.full(n, default)

    try:
        xyz = table[["x", "y", "z"]].to_numpy(dtype=np.float64)
        angles = np.stack([column(c) for c in ANGLE_COLUMNS], axis=1) if n else np.zeros((0, 3))
        if info is not None and n and all(f"{a}_angst" in table.columns for a in "xyz"):
            angst = table[["x_angst", "y_angst", "z_angst"]].to_numpy(dtype=np.float64)
            on_grid = (angst - np.asarray(info.origin)) / info.voxel_size
            if np.abs(on_grid - xyz).max() > 0.5:
                warnings.warn(f"{path}: positions taken from its x_angst, y_angst, z_angst columns (the list was "
                              f"made on a tomogram with another voxel size or origin than {info.voxel_size:g} A)")
                xyz = on_grid
        picks = Picks(xyz, column("score"), column("peak"), column("size_voxels").astype(np.int64), angles)
    except (ValueError, TypeError) as exc:
        raise TomosegError(f"{path}: non-numeric values in a CSV particle list ({exc})") from exc
    return picks, {"format": "csv"}


def write_particles(path: str | os.PathLike, picks: Picks, info: TomogramInfo, format: str | None = None) -> None:
    """Write picks in ``format`` (one of FORMATS, else from the extension), atomically."""
    fmt = infer_format(path, format)
    if not info.voxel_size > 0:
        raise TomosegError(f"{path}: the voxel size must be positive, got {info.voxel_size}")
    PARTICLE_FORMATS[fmt].write(path, picks, info)


def read_particles(path: str | os.PathLike, format: str | None = None, info: TomogramInfo | None = None,
                   tomo_name: str | None = None) -> tuple[Picks, dict]:
    """Read a particle list in any of FORMATS into tomoseg voxel coordinates and angles.

    Returns (picks, metadata): the metadata holds what the file says, e.g.
    ``format``, ``voxel_size``, ``tomo_name``, ``shape`` (z, y, x). info: the
    tomogram the picks belong to, needed for centred coordinates (RELION 5,
    EMAN2) in files not written by tomoseg. tomo_name selects a tomogram in a
    multi-tomogram STAR file. STAR files are told apart by their columns.
    """
    fmt = infer_format(path, format)
    if not Path(path).is_file():
        raise TomosegError(f"{path}: no such file")
    return PARTICLE_FORMATS[fmt].read(path, info=info, tomo_name=tomo_name)
