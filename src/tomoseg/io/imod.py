"""IMOD binary model files (``.mod``): one scattered-point object, one contour.

Format (IMOD "Binary File Format" binspec.html; teamtomo ``imodmodel``): all
numbers big-endian; ``IMOD`` ``V1.2``, a 232-byte model header (``pixsize`` and
``units``, -9 = nm as 3dmod writes it), then chunks: ``OBJT`` + 176-byte object
header (flag bit 9 = scattered points), ``CONT`` + 16-byte contour header and
``psize`` float (x, y, z) points, ``IEOF``. Other chunks carry a byte count
after their id (``MESH``: counts in its header) and are skipped on reading.

Coordinates (binspec "Model Coordinate Conventions"): pixel coordinates that
"range from 0 to NX in X and 0 to NY in Y, but from -0.5 to NZ - 0.5 in Z",
i.e. the centre of voxel (i, j, k) is the model point (i + 0.5, j + 0.5, k)
(PEET's ``index2ImodPoints.m``: 1-based MATLAB index minus (0.5, 0.5, 1)).
3dmod shows these 1-based. IMOD models have no per-point orientation (PEET
keeps angles in a separate motive list), so angles and scores are not written.
"""

from __future__ import annotations

import os
import struct

import numpy as np

from tomoseg.errors import TomosegError
from tomoseg.io.atomic import atomic_output
from tomoseg.types import Picks, TomogramInfo

OFFSET = np.array([0.5, 0.5, 0.0])  # model point = voxel index + OFFSET
UNITS_TO_ANGSTROM = {-12: 0.01, -10: 1.0, -9: 10.0, -6: 1e4, -3: 1e7, -2: 1e8, 1: 1e10, 3: 1e13}
MODEL_HEADER = struct.Struct(">128s 3i i I 4i 3f 3f 5i f 2i 3f")  # 232 bytes
OBJECT_HEADER = struct.Struct(">64s16IiIii3fi8Bii")  # 176 bytes
CONTOUR_HEADER = struct.Struct(">iIii")
SCATTERED = 1 << 9


def write_mod(path: str | os.PathLike, picks: Picks, info: TomogramInfo, radius: float | None = None) -> None:
    """Write picks as an IMOD model: one scattered object, points at voxel centres.

    radius: sphere radius (voxels) 3dmod draws; default from the median
    component size, ``(3 V / 4 pi)^(1/3)``.
    """
    if radius is None:
        sizes = np.asarray(picks.size, dtype=np.float64)
        volume = float(np.median(sizes)) if len(sizes) and np.median(sizes) > 0 else 100.0
        radius = (3 * volume / (4 * np.pi)) ** (1 / 3)
    nz, ny, nx = (int(s) for s in info.shape)
    header = MODEL_HEADER.pack(
        (info.name or "tomoseg picks").encode()[:127], nx, ny, nz, 1,  # name, xmax, ymax, zmax, objsize
        0, 1, 1, 0, 255,  # flags, drawmode, mousemode (model), black, white levels
        0.0, 0.0, 0.0, 1.0, 1.0, 1.0,  # offsets, scales
        0, 0, -1, 3, 128,  # current object, contour, point; res, thresh
        float(info.voxel_size) / 10.0, -9, 0, 0.0, 0.0, 0.0)  # pixsize in nm, units nm, csum, alpha..gamma
    obj = OBJECT_HEADER.pack(
        b"tomoseg picks", *([0] * 16), 1 if len(picks) else 0, SCATTERED, 0, 1,  # contsize, flags, axis, drawmode
        0.0, 1.0, 0.0, max(1, int(round(radius))),  # colour green, sphere radius
        0, 3, 1, 1, 0, 0, 0, 0, 0, 0)  # symbol, symsize, linewidths, style, symflags, pad, trans; mesh, surf
    points = (np.asarray(picks.xyz, dtype=np.float64) + OFFSET).astype(">f4")
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        f.write(b"IMODV1.2" + header + b"OBJT" + obj)
        if len(picks):
            f.write(b"CONT" + CONTOUR_HEADER.pack(len(picks), 0, 0, 0) + points.tobytes())
        f.write(b"IEOF")


def read_mod(path: str | os.PathLike, info: TomogramInfo | None = None, tomo_name: str | None = None
             ) -> tuple[Picks, dict]:
    """Read every contour point of an IMOD model into voxel coordinates (angles zero)."""
    data = open(path, "rb").read()
    if data[:8] != b"IMODV1.2" or len(data) < 8 + MODEL_HEADER.size + 4:
        raise TomosegError(f"{path}: not an IMOD V1.2 binary model (bad header)")
    head = MODEL_HEADER.unpack_from(data, 8)
    name, (nx, ny, nz), pixsize, units = head[0].split(b"\0")[0].decode(errors="replace"), head[1:4], head[21], head[22]
    pos, chunks = 8 + MODEL_HEADER.size, []
    try:
        while True:
            tag = data[pos:pos + 4]
            pos += 4
            if tag == b"IEOF":
                break
            if tag == b"OBJT":
                pos += OBJECT_HEADER.size
            elif tag == b"CONT":
                psize = CONTOUR_HEADER.unpack_from(data, pos)[0]
                pos += CONTOUR_HEADER.size
                chunks.append(np.frombuffer(data, ">f4", 3 * psize, pos).reshape(-1, 3))
                pos += 12 * psize
            elif tag == b"MESH":
                vsize, lsize = struct.unpack_from(">ii", data, pos)
                pos += 16 + 12 * vsize + 4 * lsize
            elif len(tag) == 4 and tag.isalpha():
                pos += 4 + struct.unpack_from(">i", data, pos)[0]
            else:
                raise ValueError(f"unknown chunk {tag!r} at byte {pos - 4}")
            if pos > len(data):
                raise ValueError("truncated")
    except (struct.error, ValueError) as exc:
        raise TomosegError(f"{path}: corrupt IMOD model ({exc})") from exc
    xyz = (np.concatenate(chunks).astype(np.float64) if chunks else np.zeros((0, 3))) - OFFSET
    n = len(xyz)
    factor = UNITS_TO_ANGSTROM.get(units)
    meta = {"format": "imod", "tomo_name": name, "shape": (nz, ny, nx),
            "voxel_size": pixsize * factor if factor else None}
    return Picks(xyz, np.zeros(n), np.zeros(n), np.zeros(n, dtype=np.int64)), meta
