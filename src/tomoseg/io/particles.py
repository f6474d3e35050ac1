"""Particle lists: CSV (default) and RELION STAR (path ends in ``.star``).

Coordinate convention, everywhere in tomoseg: ``x, y, z`` are 0-based voxel
indices into ``data[z, y, x]`` of the tomogram the picks were made on;
``x_angst`` etc. are ``index * voxel_size + origin`` (origin from the MRC
header, in A). STAR files carry the voxel coordinates as ``rlnCoordinateX/Y/Z``
with ``rlnTomoName`` and the voxel size in
``rlnTomoTiltSeriesPixelSize``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import starfile

from tomoseg.io.atomic import atomic_output
from tomoseg.types import Picks


def picks_table(
    picks: Picks, voxel_size: float, origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
) -> pd.DataFrame:
    """The picks as a table with voxel and Angstrom coordinates."""
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
    return table


def write_picks(
    path: str | os.PathLike,
    picks: Picks,
    voxel_size: float,
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
    tomo_name: str = "",
) -> None:
    """Write picks as RELION STAR if ``path`` ends in ``.star``, else as CSV."""
    table = picks_table(picks, voxel_size, origin)
    with atomic_output(path) as tmp:
        if Path(path).suffix.lower() == ".star":
            star = pd.DataFrame(
                {
                    "rlnTomoName": [tomo_name] * len(table),
                    "rlnCoordinateX": table["x"],
                    "rlnCoordinateY": table["y"],
                    "rlnCoordinateZ": table["z"],
                    "rlnAutopickFigureOfMerit": table["score"],
                    "rlnTomoTiltSeriesPixelSize": np.full(len(table), float(voxel_size)),
                }
            )
            starfile.write({"particles": star}, tmp, overwrite=True)
        else:
            table.to_csv(tmp, index=False, float_format="%.6g")


def read_picks(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV or STAR particle list back as a table with x, y, z columns."""
    if Path(path).suffix.lower() == ".star":
        star = starfile.read(path, always_dict=True)
        table = next(iter(star.values()))
        return table.rename(
            columns={"rlnCoordinateX": "x", "rlnCoordinateY": "y", "rlnCoordinateZ": "z",
                     "rlnAutopickFigureOfMerit": "score"}
        )
    return pd.read_csv(path)
