"""2D convolution in Fourier space, identical to ``conv2d`` with zero "same" padding.

The input is zero-padded to at least ``H + k - 1`` by ``W + k - 1`` (no
wrap-around), multiplied by the kernel spectra, and cropped back. Channel
mixing is one batched complex matrix product per frequency. Differentiable
(torch autograd runs through ``rfft2``/``irfft2``). The whole-slice inference
engine uses it; training uses :mod:`tomoseg.nn.spectral`, the same function with
hand-written backward passes (faster).
"""

from __future__ import annotations

import functools

import scipy.fft
import torch


@functools.lru_cache(maxsize=256)
def fft_size(n: int) -> int:
    """Smallest fast FFT length >= n for real transforms (products of 2, 3 and 5)."""
    return scipy.fft.next_fast_len(int(n), real=True)


@functools.lru_cache(maxsize=64)
def dft_matrix(n: int, k: int, rows: int | None = None, centred: bool = False, device: str = "cpu") -> torch.Tensor:
    """(rows, k) complex64 matrix ``exp(-2 pi i f v / n)``: the size-n DFT of a length-k signal.

    Frequencies ``f < rows`` (default n; ``n // 2 + 1`` for a real FFT's last
    axis); taps ``v = t``, or ``v = k // 2 - t`` when ``centred`` (the spectrum of
    a kernel centred on the origin and mirrored, so that multiplying spectra
    computes conv2d's cross-correlation). Cached per device (``str(device)``):
    do not modify the result.
    """
    f = torch.arange(n if rows is None else rows, dtype=torch.float64).view(-1, 1)
    t = torch.arange(k, dtype=torch.float64).view(1, -1)
    v = k // 2 - t if centred else t
    angle = -2.0 * torch.pi * f * v / n
    return torch.polar(torch.ones_like(angle), angle).to(device=device, dtype=torch.complex64)


def kernel_spectrum(weight: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """rfft2 of the flipped kernels, zero-padded to ``shape``.

    ``weight``: (Cout, Cin, k, k) cross-correlation kernels (conv2d layout).
    Returns complex (Cout, Cin, shape[0], shape[1] // 2 + 1).
    """
    return torch.fft.rfft2(weight.flip(-2, -1), s=shape)


def mix_channels(x_hat: torch.Tensor, k_hat: torch.Tensor) -> torch.Tensor:
    """Per-frequency channel mixing: ``y[b, o] = sum_i x[b, i] * k[o, i]``.

    ``x_hat``: (B, Cin, P, Q); ``k_hat``: (Cout, Cin, P, Q). Returns (B, Cout, P, Q).
    """
    batch, cin, p, q = x_hat.shape
    cout = k_hat.shape[0]
    if cin == 1:
        return x_hat * k_hat[:, 0].unsqueeze(0)
    if cout == 1:
        return (x_hat * k_hat).sum(dim=1, keepdim=True)
    # The complex product as one real matrix product on interleaved (re, im)
    # pairs: [xr xi] @ [[kr ki], [-ki kr]]. torch's complex bmm on the CPU loops
    # over the batch; a real bmm does not.
    xf = torch.view_as_real(x_hat.permute(2, 3, 0, 1).reshape(p * q, batch, cin))
    xf = xf.reshape(p * q, batch, 2 * cin)
    kr = k_hat.real.permute(2, 3, 1, 0).reshape(p * q, cin, 1, cout, 1)
    ki = k_hat.imag.permute(2, 3, 1, 0).reshape(p * q, cin, 1, cout, 1)
    kf = torch.cat([torch.cat([kr, ki], dim=4), torch.cat([-ki, kr], dim=4)], dim=2)
    yf = torch.bmm(xf, kf.reshape(p * q, 2 * cin, 2 * cout))
    yf = torch.view_as_complex(yf.reshape(p * q, batch, cout, 2))
    return yf.reshape(p, q, batch, cout).permute(2, 3, 0, 1)


def fft_conv2d_same(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, padding=k // 2)`` computed with FFTs.

    ``x``: (B, Cin, H, W) float; ``weight``: (Cout, Cin, k, k) with odd k.
    Returns (B, Cout, H, W) on x's device and dtype.
    """
    k = weight.shape[-1]
    if weight.shape[-2] != k or k % 2 == 0:
        raise ValueError(f"kernels must be square with odd size, got {tuple(weight.shape)}")
    height, width = x.shape[-2:]
    shape = (fft_size(height + k - 1), fft_size(width + k - 1))
    y_hat = mix_channels(torch.fft.rfft2(x, s=shape), kernel_spectrum(weight, shape))
    r = k // 2
    y = torch.fft.irfft2(y_hat, s=shape)[..., r : r + height, r : r + width]
    if bias is not None:
        y = y + bias.view(1, -1, 1, 1)
    return y
