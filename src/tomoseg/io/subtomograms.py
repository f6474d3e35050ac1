"""Subtomograms on disk: one MRC volume stack or one MRC per particle, and a STAR file naming them.

The STAR file (``particles.star``) is RELION 3.1-style: ``data_optics`` with the
subtomograms' pixel size, and ``data_particles`` with ``rlnImageName`` (``k@stack.mrcs``,
k from 1, for a volume stack, or a path relative to the STAR file), the pick in the
source tomogram (``rlnCoordinateX/Y/Z``: 0-based voxels of that tomogram, see
:mod:`tomoseg.io.star`), its angles and score, ``rlnTomoName`` and
``rlnTomoTiltSeriesPixelSize`` (the source tomogram's voxel size). tomoseg's own
columns ``tsInside`` (fraction of the cube inside the tomogram) and ``tsBin`` ride along.
"""

from __future__ import annotations

import os
from pathlib import Path

import mrcfile
import numpy as np
import pandas as pd
import starfile

from tomoseg.errors import TomosegError
from tomoseg.types import Picks, TomogramInfo

STACK_NAME = "subtomograms.mrcs"
STAR_NAME = "particles.star"


def _write_mrc(path: Path, data: np.ndarray, voxel_size: float) -> None:
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.ascontiguousarray(data, dtype=np.float32))
        mrc.voxel_size = voxel_size


def write_subtomograms(
    folder: str | os.PathLike,
    stack: np.ndarray,
    picks: Picks,
    info: TomogramInfo,
    bin: int = 1,
    inside: np.ndarray | None = None,
    files: bool = False,
) -> Path:
    """Write cubes and ``particles.star`` into an existing (temporary) folder; returns the STAR path."""
    folder = Path(folder)
    voxel = float(info.voxel_size) * bin
    n = len(stack)
    if files:
        names = [f"subtomo_{i + 1:06d}.mrc" for i in range(n)]
        for name, cube in zip(names, stack):
            _write_mrc(folder / name, cube, voxel)
    else:
        _write_mrc(folder / STACK_NAME, stack, voxel)
        names = [f"{i + 1}@{STACK_NAME}" for i in range(n)]
    optics = pd.DataFrame({"rlnOpticsGroup": [1], "rlnOpticsGroupName": ["opticsGroup1"],
                           "rlnImagePixelSize": [voxel], "rlnImageSize": [stack.shape[-1]],
                           "rlnTomoTiltSeriesPixelSize": [float(info.voxel_size)],
                           "rlnImageDimensionality": [3]})
    particles = pd.DataFrame({
        "rlnImageName": names,
        "rlnTomoName": [info.name or "tomogram"] * n,
        "rlnCoordinateX": picks.xyz[:, 0], "rlnCoordinateY": picks.xyz[:, 1], "rlnCoordinateZ": picks.xyz[:, 2],
        "rlnAngleRot": picks.angles[:, 0], "rlnAngleTilt": picks.angles[:, 1], "rlnAnglePsi": picks.angles[:, 2],
        "rlnAutopickFigureOfMerit": np.asarray(picks.score, float),
        "rlnTomoTiltSeriesPixelSize": np.full(n, float(info.voxel_size)),
        "rlnOpticsGroup": np.ones(n, dtype=int),
        "tsInside": np.ones(n) if inside is None else np.asarray(inside, float),
        "tsBin": np.full(n, bin, dtype=int),
    })
    star = folder / STAR_NAME
    starfile.write({"optics": optics, "particles": particles}, star, overwrite=True)
    return star


def read_subtomograms(path: str | os.PathLike) -> tuple[np.ndarray, pd.DataFrame, float]:
    """Read ``particles.star`` and the cubes it names: (stack (n, b, b, b), particle table, voxel size)."""
    path = Path(path)
    if not path.is_file():
        raise TomosegError(f"{path}: no such file")
    try:
        blocks = starfile.read(path, always_dict=True, parse_as_string=["rlnTomoName", "rlnImageName"])
    except Exception as exc:
        raise TomosegError(f"{path}: not a readable STAR file ({' '.join(str(exc).split())})") from exc
    table = blocks.get("particles")
    if not isinstance(table, pd.DataFrame) or "rlnImageName" not in table.columns:
        raise TomosegError(f"{path}: no data_particles table with rlnImageName (write one with tomoseg extract)")
    if len(table) == 0:
        raise TomosegError(f"{path}: lists no particles")
    optics = blocks.get("optics")
    voxel = float(optics["rlnImagePixelSize"].iloc[0]) if isinstance(optics, pd.DataFrame) else 0.0
    cubes = []
    stacks: dict[Path, np.ndarray] = {}
    for name in table["rlnImageName"].astype(str):
        index, _, file = name.rpartition("@")
        file_path = path.parent / file
        try:
            if index:
                if file_path not in stacks:
                    with mrcfile.mmap(file_path, mode="r", permissive=True) as mrc:
                        data = np.asarray(mrc.data, dtype=np.float32)
                        voxel = voxel or float(mrc.voxel_size.x)
                    stacks[file_path] = data if data.ndim == 4 else data[None]
                cube = stacks[file_path][int(index) - 1]
            else:
                with mrcfile.open(file_path, mode="r", permissive=True) as mrc:
                    cube = np.asarray(mrc.data, dtype=np.float32)
                    voxel = voxel or float(mrc.voxel_size.x)
        except (OSError, ValueError, IndexError) as exc:
            raise TomosegError(f"{path}: cannot read subtomogram {name!r} ({exc})") from exc
        if cube.ndim != 3 or len(set(cube.shape)) != 1:
            raise TomosegError(f"{path}: subtomogram {name!r} is not a cube ({cube.shape})")
        cubes.append(cube)
    if len({c.shape for c in cubes}) != 1:
        raise TomosegError(f"{path}: subtomograms differ in size")
    return np.stack(cubes), table.reset_index(drop=True), voxel


def image_files(path: str | os.PathLike, table: pd.DataFrame) -> set[Path]:
    """The MRC files a subtomogram table at ``path`` names (stacks once)."""
    return {Path(path).parent / name.rpartition("@")[2] for name in table["rlnImageName"].astype(str)}


def picks_of(table: pd.DataFrame) -> Picks:
    """The particle positions (source tomogram voxels) and angles of a subtomogram table."""
    xyz = table[["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]].to_numpy(float)
    cols = ["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]
    angles = table[cols].to_numpy(float) if set(cols) <= set(table.columns) else np.zeros((len(table), 3))
    score = table["rlnAutopickFigureOfMerit"].to_numpy(float) if "rlnAutopickFigureOfMerit" in table else np.zeros(len(table))
    n = len(table)
    return Picks(xyz, score, np.zeros(n), np.zeros(n, dtype=np.int64), angles)


def write_subset_star(source: Path, table: pd.DataFrame, keep: np.ndarray, output: Path, final_folder: Path) -> None:
    """Write the kept rows of a subtomogram STAR file to ``output``, with image names
    relative to ``final_folder`` (where ``output`` will live)."""
    blocks = starfile.read(source, always_dict=True, parse_as_string=["rlnTomoName", "rlnImageName"])
    kept = table[keep].copy()
    rel = os.path.relpath(source.parent.resolve(), final_folder.resolve())

    def relocate(name: str) -> str:
        index, at, file = name.rpartition("@")
        return f"{index}{at}{os.path.normpath(os.path.join(rel, file))}"

    kept["rlnImageName"] = [relocate(n) for n in kept["rlnImageName"].astype(str)]
    out = {k: v for k, v in blocks.items() if k != "particles"}
    out["particles"] = kept
    starfile.write(out, output, overwrite=True)
