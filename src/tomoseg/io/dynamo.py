"""Dynamo table files (``.tbl``): plain-text numeric tables, one particle a row.

Columns (1-based, Dynamo's ``dthelp``; wiki "Table convention"; teamtomo
``dynamotable/convention.py``): 1 tag, 2 aligned, 3 averaged, 4-6 dx dy dz
(shifts from the box centre, pixels), 7 tdrot, 8 tilt, 9 narot (degrees), 10 cc,
11 cc2, 12 cpu, 13 ftype, 14-17 y/x min/max tilt, 18-19 fs1 fs2, 20 tomo,
21 reg, 22 class, 23 annotation, 24-26 x y z (pixels in the original volume),
27 dshift, 28 daxis, 29 dnarot, 30 dcc, 31 otag, 32 npar, 33 -, 34 ref,
35 sref, 36 apix (A/pixel). Real tables have 35 to 40+ columns and may hold
complex numbers (e.g. ``0+1.2e-06i`` in daxis): only the columns used are parsed.

Positions: Dynamo counts pixels from 1 (wiki "Volume center": "Dynamo uses the
convention of counting pixels with the index 1, (not 0)"), so column 24 is
``x + 1`` and the particle centre read back is ``x = col24 + dx - 1`` (shifts
added as dynamo2relion does). ``tomo`` is 1, ``cc`` the score, ``apix`` the
voxel size; the missing-wedge columns are left 0 (set them in Dynamo).

Angles: Dynamo's ``dynamo_euler2matrix([tdrot, tilt, narot])`` is
``Rz(narot) @ Rx(tilt) @ Rz(tdrot)`` (copied in scipion-em-dynamo
``convert.py``), i.e. ``Rotation.from_euler("zxz", [tdrot, tilt, narot])``
(extrinsic). teamtomo ``eulerangles`` (``constants.py``) classes both RELION
(ZYZ intrinsic) and Dynamo (ZXZ extrinsic) as passive, right-handed, so the two
matrices are the same: ``from_euler("ZYZ", [rot, tilt, psi]) ==
from_euler("zxz", [tdrot, tilt, narot])``, which gives
``tdrot = psi - 90, tilt = tilt, narot = rot + 90``.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
from scipy.spatial.transform import Rotation

from tomoseg.errors import TomosegError
from tomoseg.io.atomic import atomic_output
from tomoseg.types import Picks, TomogramInfo

N_COLUMNS = 36


def relion_to_dynamo(angles: np.ndarray) -> np.ndarray:
    """RELION rot, tilt, psi (n, 3) -> Dynamo tdrot, tilt, narot (n, 3), degrees."""
    with warnings.catch_warnings():  # gimbal lock at tilt 0/180 still gives an equivalent triplet
        warnings.simplefilter("ignore", UserWarning)
        rot = Rotation.from_euler("ZYZ", np.asarray(angles, np.float64).reshape(-1, 3), degrees=True)
        return rot.as_euler("zxz", degrees=True)


def dynamo_to_relion(angles: np.ndarray) -> np.ndarray:
    """Dynamo tdrot, tilt, narot (n, 3) -> RELION rot, tilt, psi (n, 3), degrees."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        rot = Rotation.from_euler("zxz", np.asarray(angles, np.float64).reshape(-1, 3), degrees=True)
        return rot.as_euler("ZYZ", degrees=True)


def write_tbl(path: str | os.PathLike, picks: Picks, info: TomogramInfo) -> None:
    """Write picks as a Dynamo table (positions 1-based, angles converted)."""
    n = len(picks)
    table = np.zeros((n, N_COLUMNS))
    table[:, 0] = np.arange(1, n + 1)  # tag
    table[:, 1] = 1  # aligned: needed for Dynamo alignment projects
    table[:, 6:9] = relion_to_dynamo(picks.angles)
    table[:, 9] = picks.score
    table[:, 19] = 1  # tomo
    table[:, 21] = 1  # class
    table[:, 23:26] = picks.xyz + 1.0
    table[:, 35] = info.voxel_size
    with atomic_output(path) as tmp:
        np.savetxt(tmp, table, fmt="%.10g")


def read_tbl(path: str | os.PathLike, info: TomogramInfo | None = None, tomo_name: str | None = None
             ) -> tuple[Picks, dict]:
    """Read a Dynamo table into tomoseg voxel coordinates and RELION angles."""
    rows, number = [], 0
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                words = line.split()
                if not words:
                    continue
                if len(words) < 26:
                    raise TomosegError(f"{path}: line {number} has {len(words)} columns, a Dynamo table needs 26+")
                used = words[:26] + (words[35:36] or ["0"])
                rows.append([float(w) for w in used])
    except UnicodeDecodeError as exc:  # a ValueError too: catch it first
        raise TomosegError(f"{path}: not a text Dynamo table") from exc
    except ValueError as exc:
        raise TomosegError(f"{path}: line {number} is not a Dynamo table row ({exc})") from exc
    t = np.asarray(rows, dtype=np.float64).reshape(-1, 27)
    xyz = t[:, 23:26] + t[:, 3:6] - 1.0
    n = len(t)
    picks = Picks(xyz, t[:, 9].copy(), np.zeros(n), np.zeros(n, dtype=np.int64), dynamo_to_relion(t[:, 6:9]))
    apix = float(t[0, 26]) if n and t[0, 26] > 0 else None
    tomos = sorted({int(v) for v in t[:, 19]})
    return picks, {"format": "dynamo", "voxel_size": apix, "tomo_numbers": tomos}
