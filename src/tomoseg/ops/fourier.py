"""Fourier filters, one convention: a cutoff is a resolution in Angstrom (a period; or in pixels
where an image has no voxel size, i.e. Angstrom at 1 A/pixel), and every filter states its gain there.

With ``s`` the spatial frequency (1/A) and ``c = 1 / cutoff``, two shapes:

* Gaussian low-pass  ``H(s) = exp(-(s/c)^2)``      (gain 1 at DC, 1/e at the cutoff): preprocessing
  (:mod:`tomoseg.steps.preprocess`, EMAN2's ``filter.lowpass.gauss``) and the images of 2D
  classification (:mod:`tomoseg.steps.classify2d`);
* Gaussian high-pass ``H(s) = 1 - exp(-(s/c)^2)``  (gain 0 at DC, 1 - 1/e at the cutoff);
* cosine-edged low-pass (:func:`cosine_lowpass`): gain 1 below and 0 above a band ``width``
  wide centred on ``c``, 1/2 at the cutoff: averaging (:mod:`tomoseg.steps.average`,
  :func:`tomoseg.ops.shells.lowpass_box`), where a map is limited to the resolution its FSC reached.

Boundaries are periodic.
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


def cosine_lowpass(radius: np.ndarray, voxel_size: float, resolution: float, width: float = 0.05) -> np.ndarray:
    """Transfer of the cosine-edged low-pass at ``resolution`` A, for spatial frequencies ``radius`` in
    cycles/voxel (any grid: ``tomoseg.ops.shells.radius_grid``, a cropped spectrum): 1 below
    ``voxel_size / resolution - width / 2``, 0 above ``+ width / 2``, 1/2 at the cutoff. float64."""
    cut = voxel_size / resolution
    h = np.clip((cut + width / 2 - np.asarray(radius, dtype=np.float64)) / width, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * h)


def gaussian_lowpass_images(images: np.ndarray, cutoff: float) -> np.ndarray:
    """Each (..., b, b) image low-passed by the Gaussian with gain 1/e at ``cutoff`` pixels (0 = unchanged). float64."""
    images = np.asarray(images, dtype=np.float64)
    if cutoff <= 0:
        return images
    shape = images.shape[-2:]
    gain = np.exp(-_squared_frequency(shape, 1.0) * float(cutoff) ** 2)  # float64, as the images
    return np.fft.irfft2(np.fft.rfft2(images) * gain, s=shape)
