"""Orientations: the one Euler convention of tomoseg, and rotating volumes.

Convention (RELION's): three angles ``rot, tilt, psi`` in degrees, ZYZ, and
the rotation matrix ``A`` of RELION's ``Euler_angles2matrix``. ``rotation(angles)``
returns that ``A`` as a scipy ``Rotation`` (``Rotation.from_euler("ZYZ", angles,
degrees=True).inv()``); it acts on (x, y, z) vectors and takes the reference
(average) frame into the tomogram frame: a particle is the reference turned by
``A`` about the particle's centre, ``particle(c + A @ r) = reference(r)`` (RELION:
"maps coordinates from particle space to tomogram space"). The reference's z
axis therefore lies along ``A @ (0, 0, 1) = (-sin tilt cos psi, sin tilt sin psi,
cos tilt)``: a filament's axis or a membrane's normal fixes tilt and psi, and
rot is the free spin about it (as in RELION's helical priors).

Volumes are (z, y, x) arrays; vectors are (x, y, z).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial.transform import Rotation


def rotation(angles: np.ndarray) -> Rotation:
    """RELION's ``A`` for ``(..., 3)`` rot, tilt, psi in degrees: reference frame to tomogram frame."""
    return Rotation.from_euler("ZYZ", np.asarray(angles, dtype=np.float64), degrees=True).inv()


def angles_of(rot: Rotation) -> np.ndarray:
    """rot, tilt, psi in degrees (tilt in [0, 180]) of rotation(s).

    At tilt 0 or 180 only rot + psi is defined; psi is then 0.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # scipy's gimbal-lock note
        return rot.inv().as_euler("ZYZ", degrees=True)


def angles_from_vectors(vectors: np.ndarray, rot: np.ndarray | float = 0.0) -> np.ndarray:
    """Euler angles (n, 3) that point the reference's z axis along each (x, y, z) vector.

    tilt and psi follow from the vector; the spin about it, rot, is free and set to ``rot``.
    """
    v = np.asarray(vectors, dtype=np.float64).reshape(-1, 3)
    norm = np.linalg.norm(v, axis=1)
    if np.any(norm == 0):
        raise ValueError("cannot orient along a zero vector")
    v = v / norm[:, None]
    tilt = np.degrees(np.arccos(np.clip(v[:, 2], -1.0, 1.0)))
    psi = np.degrees(np.arctan2(v[:, 1], -v[:, 0]))
    return np.stack([np.broadcast_to(rot, tilt.shape), tilt, psi], axis=1)


def z_axes(angles: np.ndarray) -> np.ndarray:
    """The reference's z axis in the tomogram frame, (n, 3) x, y, z unit vectors."""
    return rotation(np.asarray(angles).reshape(-1, 3)).apply([0.0, 0.0, 1.0])


def angular_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle in degrees of the rotation taking orientation(s) ``a`` to ``b``."""
    return np.degrees((rotation(b) * rotation(a).inv()).magnitude())


def orientation_grid(step: float, seed: int | None = None) -> np.ndarray:
    """About uniformly spread orientations, roughly ``step`` degrees apart: (n, 3) angles.

    Directions for the z axis on a Fibonacci sphere with spacing ``step``,
    each with spins (rot) about it every ``step`` degrees. ``seed`` rotates the
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
    n_spin = max(1, int(round(360 / step)))
    spins = np.arange(n_spin) * (360.0 / n_spin)
    angles = np.concatenate([angles_from_vectors(dirs, r) for r in spins])
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
