"""Points on continuous features: along filaments and on membranes.

Both start from ``scores >= threshold``, drop connected pieces too small to
matter (in A of length or A^2 of area), and sample points at a fixed spacing
by greedy non-maximum suppression (strongest score first, no two points
closer than ``spacing``). Orientation comes from a principal-component
analysis of the feature's voxels within ``spacing`` of each point:

- filaments: the voxels are first thinned to a centre line (3D
  skeletonisation after closing the tube's lumen); points lie on the centre
  line and the axis is the direction of largest spread of nearby centre-line
  voxels;
- membranes: points lie on the strongest voxels (the middle of the bilayer's
  score ridge) and the normal is the direction of smallest spread of nearby
  membrane voxels, pointing away from the membrane piece's centre (outwards
  on a vesicle).

Orientations are stored as Euler angles whose reference z axis is the filament
axis or membrane normal (:func:`tomoseg.ops.rotations.angles_from_vectors`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
from skimage.morphology import skeletonize

from tomoseg.errors import InvalidValue
from tomoseg.ops.morphology import binary_closing_ball
from tomoseg.ops.rotations import angles_from_vectors
from tomoseg.steps.pick import suppress_close
from tomoseg.types import Picks


class _PointsConfig:
    """What both continuous modes' configs share: their validation (``POSITIVE`` fields > 0,
    ``NON_NEGATIVE`` fields >= 0, else an InvalidValue naming the field) and ``to_dict``."""

    POSITIVE: tuple[str, ...] = ()
    NON_NEGATIVE: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in self.POSITIVE:
            if not getattr(self, name) > 0:
                raise InvalidValue(f"`{name}` must be > 0, got {getattr(self, name)}")
        for name in self.NON_NEGATIVE:
            if not getattr(self, name) >= 0:
                raise InvalidValue(f"`{name}` must be >= 0, got {getattr(self, name)}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class FilamentConfig(_PointsConfig):
    """threshold: score needed; diameter: filament diameter in A (closes the lumen
    of tubes, e.g. 250 for microtubules, 70 for actin); spacing: A between points
    along a filament; min_length: drop pieces shorter than this (A); edge: drop
    points closer than this to the volume's border (A)."""

    POSITIVE: ClassVar = ("diameter", "spacing")
    NON_NEGATIVE: ClassVar = ("min_length", "edge")

    threshold: float = 1.0
    diameter: float = 250.0
    spacing: float = 80.0
    min_length: float = 500.0
    edge: float = 0.0


@dataclass(frozen=True)
class MembraneConfig(_PointsConfig):
    """threshold: score needed; spacing: A between points on the surface;
    min_area: drop pieces with a smaller area than this (A^2, estimated as
    volume / thickness); thickness: membrane thickness in A; edge: as for filaments."""

    POSITIVE: ClassVar = ("spacing", "thickness")
    NON_NEGATIVE: ClassVar = ("min_area", "edge")

    threshold: float = 1.0
    spacing: float = 100.0
    min_area: float = 1.0e5
    thickness: float = 50.0
    edge: float = 0.0


def _keep_large(mask: np.ndarray, min_voxels: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pieces (26-connected) with at least ``min_voxels`` voxels: (labels, sizes by label,
    mask of the kept pieces' voxels)."""
    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    size = np.bincount(labels.ravel(), minlength=n + 1)
    kept = size >= max(1.0, min_voxels)
    kept[0] = False
    return labels, size, kept[labels]  # a lookup, not np.isin (its temporaries are 4-8x the volume)


def _inside(xyz: np.ndarray, shape: tuple[int, ...], margin: float) -> np.ndarray:
    upper = np.array(shape[::-1], dtype=np.float64) - 1 - margin
    return np.all((xyz >= margin) & (xyz <= upper), axis=1)


def _principal_axes(points: np.ndarray, centres: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Largest- and smallest-spread directions (x, y, z) of ``points`` within ``radius`` of each centre."""
    tree = cKDTree(points)
    major = np.zeros((len(centres), 3))
    minor = np.zeros((len(centres), 3))
    for i, c in enumerate(centres):
        near = points[tree.query_ball_point(c, r=radius)]
        if len(near) < 3:
            major[i], minor[i] = (0, 0, 1), (0, 0, 1)
            continue
        d = near - near.mean(axis=0)
        _, vecs = np.linalg.eigh(d.T @ d)
        major[i], minor[i] = vecs[:, 2], vecs[:, 0]
    return major, minor


def _empty() -> Picks:
    z = np.zeros(0)
    return Picks(np.zeros((0, 3)), z, z, z.astype(np.int64), np.zeros((0, 3)))


def _spaced_points(zyx: np.ndarray, scores: np.ndarray, labels: np.ndarray, voxel_size: float, config
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Candidate voxels ``zyx`` as x, y, z points with their score and piece (``labels``), and the
    indices of those kept: strongest first, ``config.spacing`` A apart, ``config.edge`` A inside."""
    xyz = zyx[:, ::-1].astype(np.float64)
    value = scores[tuple(zyx.T)].astype(np.float64)
    piece = labels[tuple(zyx.T)]
    idx = np.flatnonzero(_inside(xyz, scores.shape, config.edge / voxel_size))
    order = idx[np.argsort(-value[idx], kind="stable")]
    return xyz, value, piece, suppress_close(xyz, order, config.spacing / voxel_size)


def pick_filaments(scores: np.ndarray, voxel_size: float, config: FilamentConfig = FilamentConfig()) -> Picks:
    """Points every ``spacing`` A along the centre lines of filaments in a (z, y, x) score map.

    score: the score map at the point; peak: the same; size: voxels of the filament piece.
    Angles put the reference's z axis along the filament (its sign is arbitrary).
    """
    mask = scores >= config.threshold
    radius = config.diameter / 2 / voxel_size
    if radius >= 1:
        mask = binary_closing_ball(mask, int(math.ceil(radius)))
    area = math.pi * max(radius, 0.5) ** 2
    labels, sizes, pieces = _keep_large(mask, config.min_length / voxel_size * area)
    del mask
    if not pieces.any():
        return _empty()
    skeleton = skeletonize(pieces) > 0
    del pieces
    zyx = np.argwhere(skeleton)
    if len(zyx) == 0:
        return _empty()
    xyz, value, piece, kept = _spaced_points(zyx, scores, labels, voxel_size, config)
    if len(kept) == 0:
        return _empty()
    axis, _ = _principal_axes(xyz, xyz[kept], max(config.spacing / voxel_size, 3.0))
    return Picks(xyz[kept], value[kept], value[kept], sizes[piece[kept]].astype(np.int64), angles_from_vectors(axis))


def pick_membranes(scores: np.ndarray, voxel_size: float, config: MembraneConfig = MembraneConfig()) -> Picks:
    """Points ``spacing`` A apart on membranes in a (z, y, x) score map, with their normals.

    score: the score map at the point; peak: the same; size: voxels of the membrane piece.
    """
    mask = scores >= config.threshold
    min_voxels = config.min_area * config.thickness / voxel_size**3
    labels, _, pieces = _keep_large(mask, min_voxels)
    del mask
    if not pieces.any():
        return _empty()
    zyx = np.argwhere(pieces)
    del pieces
    xyz, value, piece, kept = _spaced_points(zyx, scores, labels, voxel_size, config)
    if len(kept) == 0:
        return _empty()
    _, normal = _principal_axes(xyz, xyz[kept], max(config.spacing / voxel_size, 3.0))
    centres = np.stack([np.bincount(piece, weights=xyz[:, a], minlength=labels.max() + 1) for a in range(3)], axis=1)
    counts = np.bincount(piece, minlength=labels.max() + 1)
    centres = centres / np.maximum(counts, 1)[:, None]
    outward = xyz[kept] - centres[piece[kept]]
    flip = np.einsum("ij,ij->i", normal, outward) < 0
    normal[flip] *= -1
    sizes = counts[piece[kept]].astype(np.int64)
    return Picks(xyz[kept], value[kept], value[kept], sizes, angles_from_vectors(normal))
