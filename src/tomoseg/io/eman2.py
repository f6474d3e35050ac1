"""EMAN2 tomogram info files (``info/<tomogram>_info.json``) with ``boxes_3d``.

Layout (EMAN2 ``programs/e2spt_boxer22.py`` and ``e2spt_extract.py``): each box
is ``[x, y, z, "source", score, class_index]``; ``class_list`` maps the class
index (a string) to ``{"boxsize": ..., "name": ...}``.

Coordinates: since 2018-09 ("the new metadata standard ... coordinates at full
size from center of tomogram", e2spt_boxer22), when the file has
``apix_unbin`` the boxes are relative to the tomogram centre in unbinned pixels
of size ``apix_unbin``; the boxer converts them with ``b / apix * apix_unbin +
n // 2``, so voxel x is box ``(x - n // 2) * voxel_size / apix_unbin``. (EMAN2's
template matcher uses ``n / 2``: half a voxel apart for odd n.) Without
``apix_unbin`` (older files) boxes are 0-based voxel indices of the tomogram
(e2spt_extract subtracts ``n // 2`` itself). tomoseg writes the new standard:
it keeps an existing file's other keys (tilt parameters etc.) and its
``apix_unbin`` (else sets it to the voxel size), replaces ``boxes_3d`` and
``class_list``, and records the tomogram in ``tomoseg_tomogram`` so the
centred boxes can be read back. EMAN2 boxes have no orientation.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from tomoseg.errors import TomosegError
from tomoseg.io.atomic import atomic_output
from tomoseg.types import Picks, TomogramInfo


def _centre(shape) -> np.ndarray:
    """EMAN2's centre (x, y, z) of a (z, y, x) volume: n // 2."""
    return np.asarray([int(s) // 2 for s in shape[::-1]], dtype=np.float64)


def _load(path: str | os.PathLike) -> dict:
    try:
        js = json.loads(Path(path).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise TomosegError(f"{path}: not a JSON file ({' '.join(str(exc).split())})") from exc
    if not isinstance(js, dict):
        raise TomosegError(f"{path}: not an EMAN2 info file (JSON top level is not an object)")
    return js


def write_eman2(path: str | os.PathLike, picks: Picks, info: TomogramInfo,
                boxsize: int | None = None, label: str = "tomoseg") -> None:
    """Write picks as ``boxes_3d`` of an EMAN2 info JSON (centred, unbinned pixels).

    boxsize: box size in unbinned pixels for ``class_list``; default about 1.5
    times the diameter of a sphere of the median component volume.
    """
    if any(s <= 0 for s in info.shape):
        raise TomosegError(f"{path}: EMAN2 centred boxes need the tomogram size, got shape {info.shape}")
    js = _load(path) if Path(path).is_file() else {}
    apix_unbin = float(js.get("apix_unbin") or info.voxel_size)
    scale = info.voxel_size / apix_unbin
    if boxsize is None:
        volume = float(np.median(picks.size)) if len(picks) and np.median(picks.size) > 0 else 1000.0
        boxsize = 2 * int(np.ceil(0.75 * (6 * volume / np.pi) ** (1 / 3) * scale))
    boxes = (np.asarray(picks.xyz, dtype=np.float64) - _centre(info.shape)) * scale
    js["apix_unbin"] = apix_unbin
    js["boxes_3d"] = [[float(x), float(y), float(z), "tomoseg", float(s), 0]
                      for (x, y, z), s in zip(boxes, picks.score)]
    js["class_list"] = {"0": {"boxsize": int(boxsize), "name": label}}
    js["tomoseg_tomogram"] = {"name": info.name, "voxel_size": float(info.voxel_size),
                              "shape_zyx": [int(s) for s in info.shape],
                              "origin_xyz": [float(o) for o in info.origin]}
    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps(js, indent=1), encoding="utf-8")


def read_eman2(path: str | os.PathLike, info: TomogramInfo | None = None, tomo_name: str | None = None
               ) -> tuple[Picks, dict]:
    """Read ``boxes_3d`` of an EMAN2 info JSON into tomoseg voxel coordinates.

    info: the tomogram the boxes belong to (needed for centred boxes unless the
    file was written by tomoseg).
    """
    js = _load(path)
    boxes = js.get("boxes_3d", [])
    try:
        xyz = np.array([[float(v) for v in b[:3]] for b in boxes], dtype=np.float64).reshape(-1, 3)
        score = np.array([float(b[4]) if len(b) > 4 else 0.0 for b in boxes], dtype=np.float64)
    except (TypeError, ValueError, IndexError) as exc:
        raise TomosegError(f"{path}: boxes_3d entries must be [x, y, z, source, score, class]") from exc
    ours = js.get("tomoseg_tomogram") or {}
    meta: dict = {"format": "eman2", "tomo_name": ours.get("name"), "voxel_size": ours.get("voxel_size")}
    if "apix_unbin" in js:
        voxel_size = info.voxel_size if info is not None else ours.get("voxel_size")
        shape = info.shape if info is not None else ours.get("shape_zyx")
        if voxel_size is None or shape is None:
            raise TomosegError(f"{path}: EMAN2 boxes are relative to the tomogram centre; "
                               "pass the tomogram's info (size and voxel size)")
        xyz = xyz * float(js["apix_unbin"]) / voxel_size + _centre(shape)
        meta.update(voxel_size=float(voxel_size), shape=tuple(int(s) for s in shape))
    n = len(xyz)
    return Picks(xyz, score, np.zeros(n), np.zeros(n, dtype=np.int64)), meta
