"""Fourier-space tools for cubic boxes: missing wedge, FSC, low-pass (:mod:`tomoseg.ops.fourier`), masks.

All work on the full (not half) spectrum in numpy's unshifted ``fftn`` layout
of a (z, y, x) box of edge ``n``; frequencies are in cycles per voxel
(Nyquist = 0.5). Resolution in A = voxel_size / frequency.
"""

from __future__ import annotations

import math

import numpy as np

from tomoseg.ops.fourier import cosine_lowpass


def frequencies(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(kz, ky, kx) broadcastable frequency grids of an n^3 box, cycles/voxel."""
    k = np.fft.fftfreq(n)
    return k[:, None, None], k[None, :, None], k[None, None, :]


def radius_grid(n: int) -> np.ndarray:
    """|k| in cycles/voxel on the n^3 fftn grid."""
    kz, ky, kx = frequencies(n)
    return np.sqrt(kz**2 + ky**2 + kx**2)


def wedge_mask(n: int, tilt_range: tuple[float, float] = (-60.0, 60.0)) -> np.ndarray:
    """Fourier coverage of a single-axis tilt series about y: 1 measured, 0 missing.

    A view tilted by theta (degrees, about the y axis) samples the central plane
    that holds ky and the direction (cos theta, -sin theta) in (kx, kz); the
    series covers every direction between ``tilt_range``. The DC voxel and the
    ky axis are always measured. float32 (n, n, n), fftn layout.
    """
    lo, hi = sorted(float(t) for t in tilt_range)
    if hi - lo >= 180:
        return np.ones((n, n, n), np.float32)
    kz, _, kx = frequencies(n)
    # angle of (kx, kz) folded into (-90, 90]: the plane of tilt theta holds phi = -theta
    phi = np.degrees(np.arctan2(-kz, kx))
    phi = np.where(phi > 90, phi - 180, np.where(phi <= -90, phi + 180, phi))
    measured = (phi >= lo - 1e-6) & (phi <= hi + 1e-6)
    measured = measured | ((kz == 0) & (kx == 0))
    return np.broadcast_to(measured, (n, n, n)).astype(np.float32)


def shell_index(n: int) -> np.ndarray:
    """Integer shell of each voxel (round(|k| * n)), n^3 fftn layout."""
    return np.rint(radius_grid(n) * n).astype(np.int64)


def fsc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Fourier shell correlation of two n^3 volumes, shells 0 .. n // 2."""
    fa, fb = np.fft.fftn(a), np.fft.fftn(b)
    shells = shell_index(a.shape[0]).ravel()
    nshell = a.shape[0] // 2 + 1
    keep = shells < nshell
    s = shells[keep]
    cross = np.bincount(s, weights=np.real(fa * np.conj(fb)).ravel()[keep], minlength=nshell)
    pa = np.bincount(s, weights=(np.abs(fa) ** 2).ravel()[keep], minlength=nshell)
    pb = np.bincount(s, weights=(np.abs(fb) ** 2).ravel()[keep], minlength=nshell)
    return cross / np.sqrt(np.maximum(pa * pb, 1e-30))


def resolution_at(curve: np.ndarray, n: int, voxel_size: float, threshold: float = 0.143) -> float:
    """Resolution (A) where the FSC first falls below ``threshold``, linearly interpolated.

    Shell i is frequency i / n cycles/voxel. If it never falls below, Nyquist
    (2 x voxel size); if shell 1 is already below, the box size.
    """
    for i in range(1, len(curve)):
        if curve[i] < threshold:
            f0, f1 = (i - 1) / n, i / n
            c0, c1 = curve[i - 1], curve[i]
            f = f0 + (c0 - threshold) / (c0 - c1) * (f1 - f0) if c0 != c1 else f1
            return voxel_size / max(f, 1.0 / n)
    return 2.0 * voxel_size


def lowpass_box(volume: np.ndarray, voxel_size: float, resolution: float, width: float = 0.05) -> np.ndarray:
    """Low-pass a cube to ``resolution`` A: the cosine-edged filter of :func:`tomoseg.ops.fourier.cosine_lowpass`
    (gain 1/2 at the resolution, an edge ``width`` cycles/voxel wide)."""
    h = cosine_lowpass(radius_grid(volume.shape[0]), voxel_size, resolution, width)
    return np.real(np.fft.ifftn(np.fft.fftn(volume) * h)).astype(np.float32)


def soft_sphere(n: int, radius: float, edge: float = 3.0) -> np.ndarray:
    """A sphere of ``radius`` voxels about the centre voxel (n // 2) with a cosine edge, float32."""
    c = n // 2
    g = np.arange(n) - c
    r = np.sqrt(g[:, None, None] ** 2 + g[None, :, None] ** 2 + g[None, None, :] ** 2)
    t = np.clip((r - radius) / max(edge, 1e-6), 0.0, 1.0)
    return (0.5 + 0.5 * np.cos(math.pi * t)).astype(np.float32)
