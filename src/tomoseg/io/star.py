"""RELION particle STAR files: RELION 5 (centred Angstrom) and RELION 3.1/4 (pixels).

tomoseg side (see :mod:`tomoseg.io.particles`): ``x, y, z`` are 0-based voxel
indices into ``data[z, y, x]``; ``rot, tilt, psi`` are written to
``rlnAngleRot/Tilt/Psi`` unchanged (tomoseg uses RELION's angles).

RELION 3.1 / 4 (``relion3``): ``rlnCoordinateX/Y/Z`` are pixels counted from 0,
so ``rlnCoordinateX = x``. Sources: RELION crops a particle around array index
``(long) rlnCoordinateX`` of the 0-indexed tomogram (``src/preprocessing.cpp``,
``extractParticlesFromOneFrame``: ``x0 = xpos + FIRST_XMIPP_INDEX(size)``); the
RELION 4 tomography code puts voxel i of its tomograms at pixel ``i * binning``
(``programs/reconstruct_tomogram.cpp``: "use zero-origins from relion-4.1
onwards"; 4.0 used origin 1 but added 1 back in ``ParticleSet::getPosition``,
which cancels). Blocks: ``data_optics`` (pixel sizes; no CTF values, which
tomoseg does not know) then ``data_particles``.

RELION 5 (``relion5``): ``rlnCenteredCoordinateX/Y/ZAngst = (x - size_x / 2) *
pixel size``: ``ParticleSet::getParticleCoordDecenteredPixel`` adds
``tomo_centre = (w0 / 2.0, h0 / 2.0, d0 / 2.0)`` (float division,
``TomogramSet::loadTomogram``) to the centred Angstroms / pixel size, and voxel i
of a RELION tomogram is pixel ``i * binning`` (``RealSpaceBackprojection``:
``origin + x * spacing``, origin 0). The result does not depend on binning.
(RELION's napari picker uses ``size / 2 - 1`` and ``setProjectionMatrix`` uses
``int(size / 2)``: both differ from the extraction code for some sizes; see
3dem/relion issues #1137 and #1280.) The file has ``data_particles`` first (the
block ``relion_tomo_import_particles`` reads) and no optics block: RELION 5
builds the optics groups, CTF included, from ``tomograms.star``
(``ParticleSet::read``). A ``data_global`` block after it records the tomogram
size (voxels) and voxel size with RELION's own ``tomograms.star`` labels, so the
centred coordinates can be read back; RELION ignores it.

Orientation: only ``rlnAngleRot/Tilt/Psi`` are written (no
``rlnTomoSubtomogram*``, i.e. identity subtomogram frame). On reading, both are
combined as RELION does (``ParticleSet::getMatrix3x3``: ``A = A_subtomo *
A_particle`` with ``A`` = RELION's ``Euler_angles2matrix`` = the transpose of
``Rotation.from_euler("ZYZ", angles)``), and origins are subtracted as in
``ParticleSet::getPosition``: ``position -= A_subtomo @ rlnOrigin*Angst``.
RELION's ``A`` takes reference (box) coordinates to particle (tomogram)
coordinates: ``getMatrix4x4`` "maps coordinates from particle space to tomogram
space"; ``Projector`` samples the reference at ``A^-1 k``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import starfile
from scipy.spatial.transform import Rotation

from tomoseg.errors import TomosegError
from tomoseg.io.atomic import atomic_output
from tomoseg.types import Picks, TomogramInfo

XYZ = ("X", "Y", "Z")
ANGLES = ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")
SUBTOMO = ("rlnTomoSubtomogramRot", "rlnTomoSubtomogramTilt", "rlnTomoSubtomogramPsi")
CENTRED = tuple(f"rlnCenteredCoordinate{a}Angst" for a in XYZ)
COORDS = tuple(f"rlnCoordinate{a}" for a in XYZ)
ORIGINS = tuple(f"rlnOrigin{a}Angst" for a in XYZ)


def relion5_centre(shape: tuple[int, int, int]) -> np.ndarray:
    """RELION 5's tomogram centre (x, y, z) in voxels for a (z, y, x) shape: size / 2."""
    return np.asarray(shape[::-1], dtype=np.float64) / 2.0


def _name(info: TomogramInfo) -> str:
    return info.name.strip() or "tomogram"


def write_relion5(path: str | os.PathLike, picks: Picks, info: TomogramInfo) -> None:
    """Write a RELION 5 particle STAR file (centred Angstrom coordinates)."""
    if any(s <= 0 for s in info.shape):
        raise TomosegError(f"{path}: RELION 5 coordinates need the tomogram size, got shape {info.shape}")
    centred = (picks.xyz - relion5_centre(info.shape)) * info.voxel_size
    name = _name(info)
    particles = pd.DataFrame({"rlnTomoName": [name] * len(picks)})
    for col, values in zip(CENTRED + ANGLES, np.hstack([centred, picks.angles]).T):
        particles[col] = values
    particles["rlnAutopickFigureOfMerit"] = np.asarray(picks.score, dtype=np.float64)
    nz, ny, nx = info.shape
    tomograms = pd.DataFrame({"rlnTomoName": [name], "rlnTomoSizeX": [nx], "rlnTomoSizeY": [ny],
                              "rlnTomoSizeZ": [nz], "rlnTomoTiltSeriesPixelSize": [float(info.voxel_size)],
                              "rlnTomoTomogramBinning": [1.0]})
    with atomic_output(path) as tmp:
        starfile.write({"particles": particles, "global": tomograms}, tmp, overwrite=True)


def write_relion3(path: str | os.PathLike, picks: Picks, info: TomogramInfo) -> None:
    """Write a RELION 3.1/4 particle STAR file (0-based pixel coordinates)."""
    px = float(info.voxel_size)
    optics = pd.DataFrame({"rlnOpticsGroup": [1], "rlnOpticsGroupName": ["opticsGroup1"],
                           "rlnImagePixelSize": [px], "rlnMicrographPixelSize": [px],
                           "rlnTomoTiltSeriesPixelSize": [px], "rlnImageDimensionality": [3]})
    n, name = len(picks), _name(info)
    particles = pd.DataFrame({"rlnTomoName": [name] * n, "rlnMicrographName": [name] * n})
    for col, values in zip(COORDS + ANGLES, np.hstack([picks.xyz, picks.angles]).T):
        particles[col] = values
    for col in ORIGINS:
        particles[col] = np.zeros(n)
    particles["rlnOpticsGroup"] = np.ones(n, dtype=int)
    particles["rlnAutopickFigureOfMerit"] = np.asarray(picks.score, dtype=np.float64)
    with atomic_output(path) as tmp:
        starfile.write({"optics": optics, "particles": particles}, tmp, overwrite=True)


def _compose(part: np.ndarray, sub: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Total angles and the subtomogram matrices A_sub (n, 3, 3) from RELION's two angle sets."""
    r_part = Rotation.from_euler("ZYZ", part, degrees=True)
    if sub is None:
        return part, np.broadcast_to(np.eye(3), (len(part), 3, 3))
    r_sub = Rotation.from_euler("ZYZ", sub, degrees=True)
    with warnings.catch_warnings():  # gimbal lock (tilt 0 or 180) still gives a valid rotation
        warnings.simplefilter("ignore", UserWarning)
        total = (r_part * r_sub).as_euler("ZYZ", degrees=True)  # (A_sub A_part)^T = R_part R_sub
    return total, r_sub.inv().as_matrix()


def _columns(table: pd.DataFrame, names: tuple[str, ...]) -> np.ndarray | None:
    if not all(c in table.columns for c in names):
        return None
    return table[list(names)].to_numpy(dtype=np.float64).reshape(-1, len(names))


def _pixel_size(blocks: dict, table: pd.DataFrame) -> float | None:
    optics = blocks.get("optics")
    for label in ("rlnTomoTiltSeriesPixelSize", "rlnMicrographPixelSize", "rlnImagePixelSize"):
        if isinstance(optics, pd.DataFrame) and label in optics.columns and len(optics):
            return float(optics[label].iloc[0])
    for label in ("rlnTomoTiltSeriesPixelSize", "rlnDetectorPixelSize"):
        if label in table.columns and len(table):
            return float(table[label].iloc[0])
    return None


def read_star(path: str | os.PathLike, info: TomogramInfo | None = None,
              tomo_name: str | None = None) -> tuple[Picks, dict]:
    """Read a RELION 3.1/4/5 particle STAR file into tomoseg voxel coordinates.

    info: the tomogram the coordinates are wanted in. RELION 5 centred
    coordinates need its size and voxel size (else the file's ``data_global``
    block is used); RELION 3.1/4 pixel coordinates are rescaled from the file's
    pixel size to ``info.voxel_size``. tomo_name selects one tomogram of a
    multi-tomogram file. Returns (picks, metadata).
    """
    try:
        blocks = starfile.read(path, always_dict=True, parse_as_string=["rlnTomoName"])
    except Exception as exc:  # starfile raises assorted parser errors
        raise TomosegError(f"{path}: not a readable STAR file ({' '.join(str(exc).split())})") from exc
    table = next((b for b in blocks.values() if isinstance(b, pd.DataFrame)
                  and (set(CENTRED) <= set(b.columns) or set(COORDS) <= set(b.columns))), None)
    if table is None:
        raise TomosegError(f"{path}: no particle table with rlnCoordinateX/Y/Z or rlnCenteredCoordinateX/Y/ZAngst")
    names = table["rlnTomoName"].astype(str) if "rlnTomoName" in table.columns else None
    if names is not None:
        unique = list(dict.fromkeys(names))
        if tomo_name is not None:
            table, names = table[names == tomo_name], names[names == tomo_name]
        elif len(unique) > 1:
            raise TomosegError(f"{path}: holds particles of {len(unique)} tomograms ({', '.join(unique[:3])}, ...); "
                               "choose one with tomo_name")
    name = tomo_name if tomo_name is not None else (names.iloc[0] if names is not None and len(names) else None)
    part = _columns(table, ANGLES)
    angles, a_sub = _compose(np.zeros((len(table), 3)) if part is None else part, _columns(table, SUBTOMO))
    origins = _columns(table, ORIGINS)
    shift_angst = np.zeros((len(table), 3)) if origins is None else np.einsum("nij,nj->ni", a_sub, origins)
    meta: dict = {"format": "relion5" if set(CENTRED) <= set(table.columns) else "relion3", "tomo_name": name}
    if meta["format"] == "relion5":
        centred = _columns(table, CENTRED) - shift_angst
        if info is not None:
            px, size, binning = float(info.voxel_size), np.asarray(info.shape[::-1], float), 1.0
        else:
            px, size, binning = _tomogram_from_global(path, blocks, name)
        xyz = (centred / px + size / 2.0) / binning
        meta.update(voxel_size=px * binning, shape=tuple(int(round(s / binning)) for s in size[::-1]))
    else:
        px = _pixel_size(blocks, table)
        coords = _columns(table, COORDS)
        if px is not None:
            coords = coords - shift_angst / px
        scale = px / info.voxel_size if (info is not None and px is not None) else 1.0
        xyz = coords * scale
        meta["voxel_size"] = info.voxel_size if info is not None else px
    score = (table["rlnAutopickFigureOfMerit"].to_numpy(dtype=np.float64)
             if "rlnAutopickFigureOfMerit" in table.columns else np.zeros(len(table)))
    n = len(table)
    return Picks(xyz, score, np.zeros(n), np.zeros(n, dtype=np.int64), np.asarray(angles, float)), meta


def _tomogram_from_global(path, blocks: dict, name: str | None) -> tuple[float, np.ndarray, float]:
    """(pixel size, size x y z in pixels, binning) of tomogram ``name`` from a ``data_global`` block."""
    glob = blocks.get("global")
    labels = ["rlnTomoSizeX", "rlnTomoSizeY", "rlnTomoSizeZ", "rlnTomoTiltSeriesPixelSize"]
    if isinstance(glob, pd.DataFrame) and set(labels) <= set(glob.columns) and len(glob):
        named = name is not None and "rlnTomoName" in glob.columns
        rows = glob[glob["rlnTomoName"].astype(str) == str(name)] if named else glob
        if len(rows):
            row = rows.iloc[0]
            binning = float(row["rlnTomoTomogramBinning"]) if "rlnTomoTomogramBinning" in rows.columns else 1.0
            return (float(row["rlnTomoTiltSeriesPixelSize"]),
                    np.array([row["rlnTomoSizeX"], row["rlnTomoSizeY"], row["rlnTomoSizeZ"]], float), binning)
    raise TomosegError(f"{Path(path)}: RELION 5 centred coordinates need the tomogram size and voxel size; "
                       "the file has no data_global block for it, so pass the tomogram's info")
