"""Data containers shared by the pipeline stages and the file formats.

They sit below both ``steps`` and ``io`` so that neither imports the other.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from tomoseg.errors import InvalidValue

Path_ = str | os.PathLike
"""A file name: a string or a path."""


@dataclass(frozen=True)
class Box:
    """A tile centre in voxels (``data[z, y, x]``) and whether it shows the feature."""

    x: int
    y: int
    z: int
    positive: bool


@dataclass(frozen=True)
class TrainingSet:
    """Tiles and masks of one feature, with where they came from.

    tiles: float32 (N, S, S), preprocessed intensities (not yet scaled by 1/3); with slab context
    K (:mod:`tomoseg.ops.context`) (N, 2K + 1, S, S), the tile's slice in the middle.
    masks: float32 (N, S, S) in {0, 1}, of the middle slice; all zero for negative tiles.
    positive: bool (N,). boxes: int64 (N, 3) tile centres as x, y, z voxels.
    voxel_size: A/voxel of the tomogram; preprocessing: its PreprocessConfig as
    a dict (None if unknown); source: the tomogram's path or name.
    """

    tiles: np.ndarray
    masks: np.ndarray
    positive: np.ndarray
    boxes: np.ndarray
    name: str
    voxel_size: float
    preprocessing: dict | None = None
    source: str = ""

    def __post_init__(self) -> None:
        n = len(self.tiles)
        if not (len(self.masks) == len(self.positive) == len(self.boxes) == n):
            raise InvalidValue("tiles, masks, positive and boxes must have the same length")
        if self.masks.ndim != 3 or self.tiles.shape[-2:] != self.masks.shape[-2:] or not (
                self.tiles.ndim == 3 or (self.tiles.ndim == 4 and self.tiles.shape[1] % 2 == 1)):
            raise InvalidValue("`tiles` must be (N, S, S), or (N, 2K + 1, S, S) with slab context, and masks (N, S, S)")

    @property
    def n_positive(self) -> int:
        return int(np.count_nonzero(self.positive))

    @property
    def n_negative(self) -> int:
        return int(len(self.positive) - self.n_positive)

    @property
    def tile_size(self) -> int:
        return int(self.tiles.shape[-1])

    @property
    def context(self) -> int:
        """Slices of context on each side of a tile's slice (0: plain 2D tiles)."""
        return 0 if self.tiles.ndim == 3 else (self.tiles.shape[1] - 1) // 2

    def inputs(self, index=slice(None)) -> np.ndarray:
        """The tiles at ``index`` as the network's input channels: (n, 2K + 1, S, S) float32."""
        tiles = self.tiles[index]
        return tiles[:, None] if tiles.ndim == 3 else tiles

    def middle(self, index=slice(None)) -> np.ndarray:
        """The tiles' own slices (without context): (n, S, S)."""
        tiles = self.tiles[index]
        return tiles if tiles.ndim == 3 else tiles[:, self.context]


@dataclass(frozen=True)
class Picks:
    """Picked particles, strongest first.

    xyz: float64 (n, 3) voxel coordinates x, y, z (index ``data[z, y, x]``).
    score: component mass (sum of scores); peak: maximum score; size: voxels.
    angles: float64 (n, 3) Euler angles rot, tilt, psi in degrees, RELION's
    ZYZ convention (see :mod:`tomoseg.ops.rotations`): the particle is the
    reference turned by ``tomoseg.ops.rotations.rotation(angles)`` (RELION's
    matrix), so the reference's z axis points along a filament's axis or a
    membrane's normal. Zero for blobs, whose orientation is unknown until aligned.
    """

    xyz: np.ndarray
    score: np.ndarray
    peak: np.ndarray
    size: np.ndarray
    angles: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.angles is None:
            object.__setattr__(self, "angles", np.zeros((len(self.xyz), 3)))
        if self.angles.shape != (len(self.xyz), 3):
            raise InvalidValue("`angles` must be (n, 3) like xyz")

    def __len__(self) -> int:
        return len(self.xyz)

    def take(self, index: np.ndarray) -> Picks:
        return Picks(self.xyz[index], self.score[index], self.peak[index], self.size[index], self.angles[index])


@dataclass(frozen=True)
class TomogramInfo:
    """What particle files need to know about the tomogram the particles are in.

    name: tomogram name written to particle files (RELION's rlnTomoName).
    voxel_size: A/voxel; origin: MRC header origin (x, y, z) in A;
    shape: (z, y, x) voxels, for centred coordinates and model headers.
    """

    name: str
    voxel_size: float
    shape: tuple[int, int, int]
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
