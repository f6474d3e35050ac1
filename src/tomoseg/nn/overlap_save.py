"""The whole network by overlap-save FFT tiling (METHOD.md section 5).

A slice is cut into overlapping input patches; each patch runs through the
three convolutions as *circular* FFT convolutions of a fixed size with
precomputed kernel spectra, and only the part of each output that no
wrap-around reached is kept ("overlap-save"). The kept parts tile the output
exactly, so the result equals ``conv2d`` with zero "same" padding at the slice
border: activations that fall outside the slice are zeroed between layers,
which is what ``conv2d`` sees at each layer.

Geometry for kernel size k (r = k // 2), half-resolution FFT size N and
output tile T = N - 2(k - 1) (half resolution):

- layer 1 works on a full-resolution patch of P = 2N + k - 1 pixels, starting
  2(k - 1) + r pixels before the tile (in full-resolution pixels), and keeps
  its 2N valid pixels; max pooling (before bias and ReLU, which commute with
  it) gives N x N half-resolution pixels starting k - 1 before the tile;
- layer 3 (size N, circular) is valid from index k - 1 on: the T + k - 1 pixels
  starting r before the tile;
- layer 4 (size N, circular) is valid from index 2(k - 1) on: the T x T tile.

Layer 3 is one batched real matrix product per frequency on interleaved
(re, im) pairs: (tiles x 2 Cin) times (2 Cin x 2 Cout).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tomoseg.nn.fftconv import fft_size, kernel_spectrum
from tomoseg.nn.network import SegNet


@dataclass(frozen=True)
class TilePlan:
    """Tile geometry for kernel size ``kernel`` and half-resolution FFT size ``fft``."""

    fft: int
    kernel: int = 15
    pool: int = 2

    def __post_init__(self) -> None:
        if self.pool != 2:
            raise ValueError("the overlap-save engine supports 2 x 2 pooling only")
        if self.tile < 1:
            raise ValueError(f"FFT size {self.fft} leaves no output for {self.kernel} x {self.kernel} kernels")

    @property
    def tile(self) -> int:
        """Output pixels per tile side (half resolution)."""
        return self.fft - 2 * (self.kernel - 1)

    @property
    def patch(self) -> int:
        """Input pixels per patch side (full resolution)."""
        return 2 * self.fft + self.kernel - 1

    @property
    def lead(self) -> int:
        """Full-resolution pixels a patch starts before its tile."""
        return 2 * (self.kernel - 1) + self.kernel // 2


def interleaved_mixer(k_hat: torch.Tensor) -> torch.Tensor:
    """Kernel spectra (Cout, Cin, P, Q) as real matrices (P*Q, 2 Cin, 2 Cout).

    ``[xr xi] @ [[kr ki], [-ki kr]] = [yr yi]`` is the complex product
    ``y = sum_i x_i k_i`` per frequency.
    """
    cout, cin, p, q = k_hat.shape
    kr = k_hat.real.permute(2, 3, 1, 0).reshape(p * q, cin, 1, cout, 1)
    ki = k_hat.imag.permute(2, 3, 1, 0).reshape(p * q, cin, 1, cout, 1)
    kf = torch.cat([torch.cat([kr, ki], dim=4), torch.cat([-ki, kr], dim=4)], dim=2)
    return kf.reshape(p * q, 2 * cin, 2 * cout).contiguous()


class PreparedNet:
    """A network's kernel spectra for one tile plan (computed once, reused per slab)."""

    def __init__(self, net: SegNet, plan: TilePlan) -> None:
        k = net.config.kernel
        if k != plan.kernel or net.config.pool != plan.pool:
            raise ValueError("the tile plan does not match the network")
        self.plan = plan
        with torch.no_grad():
            self.k1 = kernel_spectrum(net.conv1.weight, (fft_size(plan.patch),) * 2)[:, 0]  # (C, P, Q)
            self.m3 = interleaved_mixer(kernel_spectrum(net.conv3.weight, (plan.fft, plan.fft)))
            self.k4 = kernel_spectrum(net.conv4.weight, (plan.fft, plan.fft))[0]  # (C, N, N/2+1)
            self.b1 = net.conv1.bias.detach().view(1, -1, 1, 1)
            self.b3 = net.conv3.bias.detach().view(1, -1, 1, 1)
            self.b4 = net.conv4.bias.detach().view(1, -1, 1, 1)
        self.channels = net.config.channels


def _inside(start: torch.Tensor, length: int, limit: int) -> torch.Tensor:
    """(n_tiles, length) float mask of ``start[t] + i`` lying in ``[0, limit)``."""
    pos = start.view(-1, 1) + torch.arange(length, device=start.device).view(1, -1)
    return ((pos >= 0) & (pos < limit)).to(torch.float32)


def _layer1_pooled(prep: PreparedNet, patches: torch.Tensor) -> torch.Tensor:
    """Layer 1 + pooling + bias + ReLU: (M, P, P) patches -> (M, C, N, N)."""
    plan = prep.plan
    size = fft_size(plan.patch)
    x_hat = torch.fft.rfft2(patches, s=(size, size))
    h = torch.fft.irfft2(x_hat.unsqueeze(1) * prep.k1.unsqueeze(0), s=(size, size))
    k1 = plan.kernel - 1
    h = h[..., k1 : k1 + 2 * plan.fft, k1 : k1 + 2 * plan.fft]
    return torch.relu(F.max_pool2d(h, 2, 2) + prep.b1)


def _layer3(prep: PreparedNet, h: torch.Tensor) -> torch.Tensor:
    """Layer 3 (circular, size N) + bias + ReLU on (M, C, N, N)."""
    m, c, n, _ = h.shape
    x_hat = torch.fft.rfft2(h)  # (M, C, N, Q)
    q = x_hat.shape[-1]
    xf = torch.view_as_real(x_hat.permute(2, 3, 0, 1)).reshape(n * q, m, 2 * c)
    yf = torch.bmm(xf, prep.m3)  # (N*Q, M, 2C)
    y_hat = torch.view_as_complex(yf.view(n, q, m, c, 2)).permute(2, 3, 0, 1)
    return torch.relu(torch.fft.irfft2(y_hat, s=(n, n)) + prep.b3)


def _layer4(prep: PreparedNet, h: torch.Tensor) -> torch.Tensor:
    """Layer 4 (circular, size N) + bias, valid T x T part: (M, C, N, N) -> (M, T, T)."""
    n = h.shape[-1]
    y_hat = (torch.fft.rfft2(h) * prep.k4.unsqueeze(0)).sum(dim=1)
    y = torch.fft.irfft2(y_hat, s=(n, n))
    k2 = 2 * (prep.plan.kernel - 1)
    return y[:, k2:, k2:] + prep.b4[0, 0]


def overlap_save_forward(prep: PreparedNet, x: torch.Tensor, tiles_per_batch: int = 32) -> torch.Tensor:
    """The network's linear output for slices ``x`` (B, 1, H, W), H and W even.

    Returns (B, 1, H/2, W/2), equal to ``net(x)`` with conv2d.
    """
    plan = prep.plan
    batch, _, height, width = x.shape
    if height % 2 or width % 2:
        raise ValueError(f"slice size must be even, got {height} x {width}")
    ho, wo = height // 2, width // 2
    t, n, k1 = plan.tile, plan.fft, plan.kernel - 1
    ny, nx = -(-ho // t), -(-wo // t)
    pad_h = 2 * (ny - 1) * t + plan.patch - plan.lead - height
    pad_w = 2 * (nx - 1) * t + plan.patch - plan.lead - width
    xp = F.pad(x[:, 0], (plan.lead, max(pad_w, 0), plan.lead, max(pad_h, 0)))
    patches = xp.unfold(1, plan.patch, 2 * t).unfold(2, plan.patch, 2 * t)  # (B, ny, nx, P, P)
    patches = patches[:, :ny, :nx].reshape(-1, plan.patch, plan.patch)

    # Which half-resolution pixels of each tile lie inside the slice.
    starts_y = torch.arange(ny, device=x.device) * t
    starts_x = torch.arange(nx, device=x.device) * t
    rows2, cols2 = _inside(starts_y - k1, n, ho), _inside(starts_x - k1, n, wo)
    rows3, cols3 = _inside(starts_y - k1 - plan.kernel // 2, n, ho), _inside(starts_x - k1 - plan.kernel // 2, n, wo)
    tile_y = torch.arange(ny, device=x.device).repeat_interleave(nx).repeat(batch)
    tile_x = torch.arange(nx, device=x.device).repeat(ny).repeat(batch)

    out = torch.empty(patches.shape[0], t, t, dtype=x.dtype, device=x.device)
    sub = max(1, tiles_per_batch // 4)
    for s in range(0, patches.shape[0], tiles_per_batch):
        e = min(patches.shape[0], s + tiles_per_batch)
        ty, tx = tile_y[s:e], tile_x[s:e]
        h = torch.cat([_layer1_pooled(prep, patches[i : min(e, i + sub)]) for i in range(s, e, sub)])
        h = h * (rows2[ty].unsqueeze(2) * cols2[tx].unsqueeze(1)).unsqueeze(1)
        h = _layer3(prep, h)
        h = h * (rows3[ty].unsqueeze(2) * cols3[tx].unsqueeze(1)).unsqueeze(1)
        out[s:e] = _layer4(prep, h)
    y = out.view(batch, ny, nx, t, t).permute(0, 1, 3, 2, 4).reshape(batch, 1, ny * t, nx * t)
    return y[:, :, :ho, :wo]
