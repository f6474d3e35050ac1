"""Subtomograms with a known answer: a template planted at known orientations.

For tests and benchmarks of alignment, averaging and 2D classification.
"""

from __future__ import annotations

import numpy as np
import torch

from tomoseg.ops.rotations import rotate_volumes
from tomoseg.ops.shells import wedge_mask


def asymmetric_template(n: int = 32, seed: int = 0) -> np.ndarray:
    """An n^3 density without symmetry: a large body, a smaller one and an arm of beads.

    Protein positive, about 0.6 n across, centred on voxel n // 2. float32.
    """
    rng = np.random.default_rng(seed)
    c = n // 2
    g = np.arange(n) - c
    z, y, x = np.meshgrid(g, g, g, indexing="ij")
    out = np.zeros((n, n, n), np.float64)
    blobs = [((-0.08, 0.0, -0.05), 0.10, 1.0), ((0.14, 0.06, 0.08), 0.07, 0.9), ((0.0, -0.17, 0.12), 0.06, 0.8)]
    arm = [((-0.05 + 0.06 * t, 0.10 + 0.04 * t, -0.12), 0.04, 0.7) for t in range(4)]
    for (bx, by, bz), r, a in blobs + arm:
        d2 = (x - bx * n) ** 2 + (y - by * n) ** 2 + (z - bz * n) ** 2
        out += a * np.exp(-d2 / (2 * (r * n) ** 2))
    out += 0.02 * rng.standard_normal(out.shape)  # a little texture, fixed by the seed
    return out.astype(np.float32)


def planted_subtomograms(
    template: np.ndarray,
    count: int,
    noise: float = 1.0,
    tilt_range: tuple[float, float] = (-60.0, 60.0),
    max_shift: float = 2.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Copies of ``template`` turned by random angles and moved by random shifts, seen through a wedge.

    Returns (stack (count, n, n, n) float32, angles (count, 3), shifts (count, 3) x, y, z voxels):
    particle i is the template turned by ``angles[i]`` (tomoseg's convention) about n // 2, then
    moved by ``shifts[i]``; the result and white noise of standard deviation ``noise`` times the
    template's are both filtered by the missing wedge of ``tilt_range``.
    """
    from scipy.spatial.transform import Rotation

    from tomoseg.ops.rotations import angles_of

    rng = np.random.default_rng(seed)
    n = template.shape[0]
    angles = angles_of(Rotation.random(count, random_state=seed))
    shifts = rng.uniform(-max_shift, max_shift, size=(count, 3))
    turned = rotate_volumes(torch.from_numpy(template.astype(np.float32)), angles).numpy()
    k = np.fft.fftfreq(n)
    phase = (shifts[:, 2, None, None, None] * k[None, :, None, None] + shifts[:, 1, None, None, None]
             * k[None, None, :, None] + shifts[:, 0, None, None, None] * k[None, None, None, :])
    wedge = wedge_mask(n, tilt_range)
    spectra = np.fft.fftn(turned, axes=(1, 2, 3)) * np.exp(-2j * np.pi * phase)
    sd = float(template.std())
    spectra = spectra + np.fft.fftn(rng.standard_normal(turned.shape) * noise * sd, axes=(1, 2, 3))
    stack = np.real(np.fft.ifftn(spectra * wedge, axes=(1, 2, 3))).astype(np.float32)
    return stack, angles, shifts
