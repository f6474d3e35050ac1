"""Cutting cubic subtomograms out of a tomogram at particle positions."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tomoseg.errors import InvalidValue
from tomoseg.ops.binning import bin_volume
from tomoseg.progress import Progress, report


@dataclass(frozen=True)
class ExtractConfig:
    """box: edge of the output cubes in voxels after binning; bin: integer binning
    (block mean) of each cube; invert: flip the contrast (protein dark -> bright);
    normalise: mean 0, standard deviation 1 per cube."""

    box: int = 32
    bin: int = 1
    invert: bool = False
    normalise: bool = True

    def __post_init__(self) -> None:
        if self.box < 4:
            raise InvalidValue(f"`box` must be >= 4 voxels, got {self.box}")
        if self.bin < 1:
            raise InvalidValue(f"`bin` must be >= 1, got {self.bin}")

    def to_dict(self) -> dict:
        return asdict(self)


def box_start(xyz: np.ndarray, box: int, bin: int) -> np.ndarray:
    """First source voxel (x, y, z) of each cube, so that output voxel ``box // 2`` sits on the pick.

    A binned voxel j covers source voxels ``start + j * bin ... + bin - 1`` (centre
    ``start + j * bin + (bin - 1) / 2``); the start is rounded (halves up), so the pick lies within
    half a source voxel of the centre voxel.
    """
    return np.floor(np.asarray(xyz, float) - (box // 2) * bin - (bin - 1) / 2 + 0.5).astype(np.int64)


def extract_subtomograms(
    volume: np.ndarray, xyz: np.ndarray, config: ExtractConfig = ExtractConfig(), progress: Progress | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Cubes (n, box, box, box) float32 at (n, 3) x, y, z voxel positions of a (z, y, x) volume.

    Voxels outside the volume are filled with the mean of those inside. Returns the
    cubes and the fraction of each cube that lay inside the volume.
    """
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    size = config.box * config.bin
    starts = box_start(xyz, config.box, config.bin)
    shape = np.asarray(volume.shape[::-1])  # x, y, z
    out = np.zeros((len(xyz), config.box, config.box, config.box), np.float32)
    inside = np.zeros(len(xyz))
    for i, start in enumerate(starts):
        lo = np.maximum(start, 0)
        hi = np.minimum(start + size, shape)
        cube = np.empty((size, size, size), np.float32)
        if np.any(hi <= lo):
            cube[:] = 0.0
        else:
            part = np.asarray(volume[lo[2] : hi[2], lo[1] : hi[1], lo[0] : hi[0]], dtype=np.float32)
            cube[:] = float(part.mean())
            o = lo - start
            cube[o[2] : o[2] + part.shape[0], o[1] : o[1] + part.shape[1], o[0] : o[0] + part.shape[2]] = part
            inside[i] = part.size / size**3
        if config.bin > 1:
            cube = bin_volume(cube, config.bin)
        if config.invert:
            cube = -cube
        if config.normalise:
            sd = float(cube.std())
            cube = (cube - cube.mean()) / (sd if sd > 0 else 1.0)
        out[i] = cube
        report(progress, i + 1, len(xyz), "extract")
    return out, inside
