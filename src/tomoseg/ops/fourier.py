"""Gaussian Fourier filters with cutoffs in Angstrom (periodic boundaries).

Both filters are real, radially symmetric transfer functions of the spatial
frequency ``s`` (1/Angstrom), with ``c = 1 / cutoff``:

* low-pass  ``H(s) = exp(-(s/c)^2)``      (gain 1 at DC, 1/e at the cutoff)
* high-pass ``H(s) = 1 - exp(-(s/c)^2)``  (gain 0 at DC, 1 - 1/e at the cutoff)
"""

from __future__ import annotations

import numpy as np
import scipy.fft


def _squared_frequency(shape: tuple[int, ...], voxel_size: float) -> np.ndarray:
    """|s|^2 in 1/A^2 on the half-spectrum grid of ``scipy.fft.rfftn``."""
    axes = [np.fft.fftfreq(n, d=voxel_size) for n in shape[:-1]]
    axes.append(np.fft.rfftfreq(shape[-1], d=voxel_size))
    s2 = np.zeros([len(a) for a in axes], dtype=np.float64)
    for dim, freq in enumerate(axes):
        view = [1] * len(shape)
        view[dim] = len(freq)
        s2 = s2 + (freq.reshape(view) ** 2)
    return s2


def gaussian_transfer(
    shape: tuple[int, ...],
    voxel_size: float,
    lowpass: float | None = None,
    highpass: float | None = None,
) -> np.ndarray:
    """Transfer function of a Gaussian low-pass and/or high-pass, rfftn layout.

    ``shape`` is the real-space shape (zyx), ``voxel_size`` in A/voxel, cutoffs
    in A (``None`` disables a filter). Returns float32 of shape
    ``shape[:-1] + (shape[-1] // 2 + 1,)``.
    """
    s2 = _squared_frequency(tuple(shape), float(voxel_size))
    h = np.ones_like(s2)
    if lowpass is not None:
        h *= np.exp(-s2 * float(lowpass) ** 2)
    if highpass is not None:
        h *= 1.0 - np.exp(-s2 * float(highpass) ** 2)
    return h.astype(np.float32)


def gaussian_filter_fourier(
    volume: np.ndarray,
    voxel_size: float,
    lowpass: float | None = None,
    highpass: float | None = None,
    workers: int = -1,
) -> np.ndarray:
    """Apply Gaussian low-/high-pass filters to a 2D or 3D array in Fourier space.

    ``volume``: float array (zyx or yx); ``voxel_size``: A/voxel; cutoffs in A.
    Boundaries are periodic. Returns float32 of the same shape.
    """
    if lowpass is None and highpass is None:
        return np.asarray(volume, dtype=np.float32).copy()
    data = np.asarray(volume, dtype=np.float32)
    spectrum = scipy.fft.rfftn(data, workers=workers)
    spectrum *= gaussian_transfer(data.shape, voxel_size, lowpass, highpass)
    return scipy.fft.irfftn(spectrum, s=data.shape, workers=workers).astype(np.float32)
