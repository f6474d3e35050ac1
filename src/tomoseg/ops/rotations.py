"""Orientations: the one Euler convention of tomoseg, and rotating volumes.

Convention (RELION's): three angles ``rot, tilt, psi`` in degrees, intrinsic
ZYZ. The rotation ``R = Rotation.from_euler("ZYZ", [rot, tilt, psi],
degrees=True)`` acts on (x, y, z) vectors and takes the reference (average)
frame into the tomogram frame: a particle is the reference rotated by ``R``
about the particle's centre, i.e. ``particle(c + R @ r) = reference(r)``.
The reference's z axis therefore lies along ``R @ (0, 0, 1) = (cos rot sin tilt,
sin rot sin tilt, cos tilt)``, a filament's axis or a membrane's normal.
``R.as_matrix()`` is the transpose of RELION's ``Euler_angles2matrix``.

Volumes are (z, y, x) arrays; vectors are (x, y, z).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial.transform import Rotation


def rotation(angles: np.ndarray) -> Rotation:
    """Rotation(s) from ``(..., 3)`` rot, tilt, psi in degrees."""
    return Rotation.from_euler("ZYZ", np.asarray(angles, dtype=np.float64), degrees=True)


def angles_of(rot: Rotation) -> np.ndarray:
    """rot, tilt, psi in degrees (tilt in [0, 180]) of rotation(s)."""
    return rot.as_euler("ZYZ", degrees=True)


def angles_from_vectors(vectors: np.ndarray, psi: np.ndarray | float = 0.0) -> np.ndarray:
    """Euler angles (n, 3) that point the reference's z axis along each (x, y, z) vector.

    The in-plane angle psi (about that axis) is free; it is set to ``psi``.
    """
    v = np.asarray(vectors, dtype=np.float64).reshape(-1, 3)
    norm = np.linalg.norm(v, axis=1)
    if np.any(norm == 0):
        raise ValueError("cannot orient along a zero vector")
    v = v / norm[:, None]
    tilt = np.degrees(np.arccos(np.clip(v[:, 2], -1.0, 1.0)))
    rot = np.degrees(np.arctan2(v[:, 1], v[:, 0]))
    out = np.stack([rot, tilt, np.broadcast_to(psi, rot.shape)], axis=1)
    return out


def z_axes(angles: np.ndarray) -> np.ndarray:
    """The reference's z axis in the tomogram frame, (n, 3) x, y, z unit vectors."""
    return rotation(np.asarray(angles).reshape(-1, 3)).apply([0.0, 0.0, 1.0])


def angular_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle in degrees of the rotation taking orientation(s) ``a`` to ``b``."""
    return np.degrees((rotation(b) * rotation(a).inv()).magnitude())


def orientation_grid(step: float, seed: int | None = None) -> np.ndarray:
    """About uniformly spread orientations, roughly ``step`` degrees apart: (n, 3) angles.

    Directions for the z axis on a Fibonacci sphere with spacing ``step``,
    each with in-plane angles psi every ``step`` degrees. ``seed`` rotates the
    whole grid at random (different grids for different runs), else none.
    """
    if not 0 < step <= 180:
        raise ValueError(f"angular step must be in (0, 180], got {step}")
    area = 4 * math.pi / math.radians(step) ** 2
    n_dir = max(1, int(round(area)))
    i = np.arange(n_dir) + 0.5
    z = 1 - 2 * i / n_dir
    phi = math.pi * (1 + 5**0.5) * i
    r = np.sqrt(1 - z**2)
    dirs = np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)
    n_psi = max(1, int(round(360 / step)))
    psi = np.arange(n_psi) * (360.0 / n_psi)
    angles = np.concatenate([angles_from_vectors(dirs, p) for p in psi])
    if seed is not None:
        jitter = Rotation.random(random_state=seed)
        angles = angles_of(jitter * rotation(angles))
    return angles


def local_grid(centre: np.ndarray, step: float, extent: float) -> np.ndarray:
    """Orientations within about ``extent`` degrees of ``centre``, ``step`` apart (centre first)."""
    ticks = np.arange(-extent, extent + 1e-9, step)
    vecs = np.stack(np.meshgrid(ticks, ticks, ticks, indexing="ij"), axis=-1).reshape(-1, 3)
    vecs = vecs[np.linalg.norm(vecs, axis=1) <= extent + 1e-9]
    order = np.argsort(np.linalg.norm(vecs, axis=1), kind="stable")
    deltas = Rotation.from_rotvec(np.radians(vecs[order]))
    return angles_of(rotation(centre) * deltas)


def rotate_volumes(volumes: torch.Tensor, angles: np.ndarray, order: str = "bilinear") -> torch.Tensor:
    """Rotate cubic volumes about their centre voxel (``n // 2``), trilinear.

    volumes: (B, n, n, n) or (n, n, n) broadcast against B angle triplets.
    Returns (B, n, n, n): ``out(c + R r) = volume(c + r)``, i.e. the volume
    turned by ``R = rotation(angles)``; zero outside.
    """
    angles = np.asarray(angles, dtype=np.float64).reshape(-1, 3)
    if volumes.ndim == 3:
        volumes = volumes.expand(len(angles), *volumes.shape)
    n = volumes.shape[-1]
    if volumes.shape[-3:] != (n, n, n):
        raise ValueError("volumes must be cubic")
    # out(p) = vol(c + R^T (p - c)); grid_sample takes normalised (x, y, z) source points.
    inv = torch.as_tensor(rotation(angles).inv().as_matrix(), dtype=volumes.dtype, device=volumes.device)
    c = n // 2
    coords = torch.arange(n, dtype=volumes.dtype, device=volumes.device) - c
    zz, yy, xx = torch.meshgrid(coords, coords, coords, indexing="ij")
    p = torch.stack([xx, yy, zz], dim=-1).reshape(-1, 3)  # (n^3, 3) x, y, z
    src = torch.einsum("bij,pj->bpi", inv, p) + c  # (B, n^3, 3) voxel indices
    grid = (2 * src + 1) / n - 1  # align_corners=False
    grid = grid.reshape(len(angles), n, n, n, 3)
    out = F.grid_sample(volumes.unsqueeze(1), grid, mode=order, padding_mode="zeros", align_corners=False)
    return out.squeeze(1)
