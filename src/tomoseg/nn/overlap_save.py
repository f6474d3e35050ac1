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

Layer 3 is one batched complex matrix product per frequency: (tiles x Cin)
times (Cin x Cout); on the CPU this measured faster than the real product on
interleaved (re, im) pairs that training uses, and needs half the memory.
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


class PreparedNet:
    """A network's kernel spectra for one tile plan (computed once, reused per slab)."""

    def __init__(self, net: SegNet, plan: TilePlan) -> None:
        k = net.config.kernel
        if k != plan.kernel or net.config.pool != plan.pool:
            raise ValueError("the tile plan does not match the network")
        self.plan = plan
        with torch.no_grad():
            self.k1 = kernel_spectrum(net.conv1.weight, (fft_size(plan.patch),) * 2)[:, 0]  # (C, P, Q)
            k3 = kernel_spectrum(net.conv3.weight, (plan.fft, plan.fft))  # (Cout, Cin, N, Q)
            self.m3 = k3.permute(2, 3, 1, 0).reshape(-1, k3.shape[1], k3.shape[0]).contiguous()  # (N*Q, Cin, Cout)
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
    e = k1 + 2 * plan.fft
    # 2 x 2 max pooling as the maximum of four strided views (faster than max_pool2d on a crop)
    h = torch.maximum(
        torch.maximum(h[..., k1:e:2, k1:e:2], h[..., k1:e:2, k1 + 1 : e : 2]),
        torch.maximum(h[..., k1 + 1 : e : 2, k1:e:2], h[..., k1 + 1 : e : 2, k1 + 1 : e : 2]),
    )
    return torch.relu(h + prep.b1)


def _layer3(prep: PreparedNet, h: torch.Tensor) -> torch.Tensor:
    """Layer 3 (circular, size N) + bias + ReLU on (M, C, N, N)."""
    m, c, n, _ = h.shape
    x_hat = torch.fft.rfft2(h)  # (M, C, N, Q)
    q = x_hat.shape[-1]
    xf = x_hat.permute(2, 3, 0, 1).reshape(n * q, m, c)
    y_hat = torch.bmm(xf, prep.m3).view(n, q, m, c).permute(2, 3, 0, 1)  # complex (M, C, N, Q)
    return torch.relu(torch.fft.irfft2(y_hat, s=(n, n)) + prep.b3)


def _layer4(prep: PreparedNet, h: torch.Tensor) -> torch.Tensor:
    """Layer 4 (circular, size N) + bias, valid T x T part: (M, C, N, N) -> (M, T, T)."""
    n = h.shape[-1]
    y_hat = (torch.fft.rfft2(h) * prep.k4.unsqueeze(0)).sum(dim=1)
    y = torch.fft.irfft2(y_hat, s=(n, n))
    k2 = 2 * (prep.plan.kernel - 1)
    return y[:, k2:, k2:] + prep.b4[0, 0]


def overlap_save_forward(
    prep: PreparedNet,
    x: torch.Tensor,
    tiles_per_batch: int = 8,
    layer1_tiles: int = 1,
) -> torch.Tensor:
    """The network's linear output for slices ``x`` (B, 1, H, W), H and W even.

    Returns (B, 1, H/2, W/2), equal to ``net(x)`` with conv2d. Tiles are processed
    ``tiles_per_batch`` at a time (layer 1 ``layer1_tiles`` at a time); torch's
    own threads parallelise each operation.
    """
    plan = prep.plan
    batch, _, height, width = x.shape
    if height % 2 or width % 2:
        raise ValueError(f"slice size must be even, got {height} x {width}")
    ho, wo = height // 2, width // 2
    t, n, k1, r = plan.tile, plan.fft, plan.kernel - 1, plan.kernel // 2
    ny, nx = -(-ho // t), -(-wo // t)
    pad_h = 2 * (ny - 1) * t + plan.patch - plan.lead - height
    pad_w = 2 * (nx - 1) * t + plan.patch - plan.lead - width
    xp = F.pad(x[:, 0], (plan.lead, max(pad_w, 0), plan.lead, max(pad_h, 0)))
    patches = xp.unfold(1, plan.patch, 2 * t).unfold(2, plan.patch, 2 * t)  # view (B, ny', nx', P, P)

    # Which half-resolution pixels of each tile lie inside the slice (layer 3 and layer 4 inputs).
    starts_y = torch.arange(ny, device=x.device) * t
    starts_x = torch.arange(nx, device=x.device) * t
    rows2, cols2 = _inside(starts_y - k1, n, ho), _inside(starts_x - k1, n, wo)
    rows3, cols3 = _inside(starts_y - k1 - r, n, ho), _inside(starts_x - k1 - r, n, wo)
    n_tiles = batch * ny * nx
    out = torch.empty(n_tiles, t, t, dtype=x.dtype, device=x.device)
    sub = max(1, min(layer1_tiles, tiles_per_batch))

    def run(s: int) -> None:
        e = min(n_tiles, s + tiles_per_batch)
        index = torch.arange(s, e, device=x.device)
        tb, ty, tx = index // (ny * nx), index // nx % ny, index % nx
        h = torch.cat([
            _layer1_pooled(prep, patches[tb[i : i + sub], ty[i : i + sub], tx[i : i + sub]])
            for i in range(0, e - s, sub)
        ])
        h = h * (rows2[ty].unsqueeze(2) * cols2[tx].unsqueeze(1)).unsqueeze(1)
        h = _layer3(prep, h)
        h = h * (rows3[ty].unsqueeze(2) * cols3[tx].unsqueeze(1)).unsqueeze(1)
        out[s:e] = _layer4(prep, h)

    for s in range(0, n_tiles, tiles_per_batch):
        run(s)
    y = out.view(batch, ny, nx, t, t).permute(0, 1, 3, 2, 4).reshape(batch, 1, ny * t, nx * t)
    return y[:, :, :ho, :wo]
