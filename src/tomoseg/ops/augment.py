"""Augmentation that imitates other imaging conditions: contrast, blur, noise and offset per tile.

The paper augments only by rotation, so a network learns the contrast, resolution and noise of
its one training tomogram. Tomograms taken nearer or further from focus, with another dose or
another B-factor, differ exactly there (after preprocessing's normalisation to mean 0, sd 1:
features of another contrast relative to the noise, sharper or blurrier). :func:`imaging_jitter`
draws, for every tile independently, within ranges that grow with ``strength``:

- a contrast factor ``c``, log-uniform in ``[1 / (1 + strength), 1 + strength]``;
- a Gaussian blur of ``sigma`` uniform in ``[0, BLUR_PX * strength]`` pixels (a B-factor's envelope,
  a lower resolution), or a sharpening (the inverse filter with a quarter of that sigma) half the time;
- additive white noise of standard deviation uniform in ``[0, NOISE_SD * strength]`` (in the tile's
  units, sd 1 = the tomogram's);
- an offset uniform in ``[-OFFSET * strength, OFFSET * strength]``;

then clamps to the range the preprocessing's clamp gives (``limit``). Masks are untouched: the
feature is where it was. ``strength`` 0 returns the tiles unchanged.
"""

from __future__ import annotations

import numpy as np
import torch

BLUR_PX = 1.0
"""Largest blur sigma in pixels at strength 1 (a 10 A-voxel tomogram: 10 A, about B = 8 pi^2 sigma^2 ~ 800 A^2)."""
NOISE_SD = 0.5
"""Largest added noise sd at strength 1, relative to the tomogram's sd (1 after preprocessing)."""
OFFSET = 0.2
"""Largest offset at strength 1, in the tomogram's sd."""


def gaussian_gains(size: int, sigma: torch.Tensor) -> torch.Tensor:
    """Fourier gains ``exp(-2 pi^2 sigma^2 |k|^2)`` (k in cycles/pixel) of Gaussian blurs of ``sigma`` pixels
    (shape (N,)), on an rfft2 grid of size x size: (N, 1, size, size // 2 + 1)."""
    ky = torch.fft.fftfreq(size, dtype=sigma.dtype)
    kx = torch.fft.rfftfreq(size, dtype=sigma.dtype)
    k2 = ky[:, None] ** 2 + kx[None, :] ** 2
    return torch.exp(-2 * np.pi**2 * sigma.view(-1, 1, 1, 1) ** 2 * k2)


def imaging_jitter(tiles: torch.Tensor, strength: float, rng: np.random.Generator, limit: float | None = 3.0,
                   unit: float = 1.0) -> torch.Tensor:
    """Tiles (N, 1, S, S) as if imaged otherwise (see the module); a new tensor.

    ``unit``: the tiles' scale relative to the tomogram's sd (the network's inputs are scaled by 1/3:
    pass ``unit=1/3`` and ``limit=3``, the clamp in sd). Seeded by ``rng``.
    """
    if strength <= 0:
        return tiles
    n, size = tiles.shape[0], tiles.shape[-1]
    draw = lambda low, high: torch.as_tensor(rng.uniform(low, high, n), dtype=tiles.dtype)  # noqa: E731
    contrast = torch.exp(draw(-np.log1p(strength), np.log1p(strength))).view(-1, 1, 1, 1)
    sigma = draw(0.0, BLUR_PX * strength)
    sharpen = torch.as_tensor(rng.random(n) < 0.5)
    gains = gaussian_gains(size, sigma)
    gains = torch.where(sharpen.view(-1, 1, 1, 1), 1.0 / gaussian_gains(size, sigma / 4), gains)
    filtered = torch.fft.irfft2(torch.fft.rfft2(tiles) * gains, s=(size, size))
    noise = torch.as_tensor(rng.standard_normal(tiles.shape), dtype=tiles.dtype)
    noise_sd = draw(0.0, NOISE_SD * strength).view(-1, 1, 1, 1)
    offset = draw(-OFFSET * strength, OFFSET * strength).view(-1, 1, 1, 1)
    out = contrast * filtered + unit * (noise_sd * noise + offset)
    if limit is not None:
        out = out.clamp(-limit * unit, limit * unit)
    return out.contiguous()
