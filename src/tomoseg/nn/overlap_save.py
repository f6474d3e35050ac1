"""The whole network by overlap-save FFT tiling (METHOD.md section 5).

Each convolution is a *circular* FFT convolution of a fixed size with
precomputed kernel spectra, of which only the part that no wrap-around reached
is kept ("overlap-save"). The kept parts tile the output exactly, so the result
equals ``conv2d`` with zero "same" padding at the slice border: activations that
fall outside the slice are zeroed between layers, as ``conv2d`` sees them.

Two ideas make it fast on a CPU:

- **Channel pairs as complex numbers.** Every activation map is real, so two
  channels ``a`` and ``b`` travel as one complex map ``a + ib``: one complex
  FFT transforms both, and complex inverse FFTs are 2-3x faster than real
  (c2r) ones here (MKL on 2 cores). For a layer's input pairs ``z_j = a_j + i b_j``
  with spectra ``P_j`` and ``P*_j(f) = conj(P_j(-f))``, the real channels'
  spectra are ``A = (P + P*)/2`` and ``B = (P - P*)/2i``, so a layer is, per
  frequency, one complex matrix product of ``[P, P*]`` (tiles x 2 C/2) with a
  (C x C/2) matrix whose columns give the *output* pairs ``Y_2k + i Y_2k+1``:
  their inverse FFT is again a pair of real maps. Layer 4 (one output) needs
  only ``2 Re(ifft(sum_j P_j U_j))`` with ``U_j = (K_2j - i K_2j+1)/2``.
- **Decoupled layer 1.** Layer 1 (full resolution, 1 (or 2K + 1) -> C channels, followed by
  2 x 2 max pooling, bias and ReLU) runs on its own tiles with only a
  (k - 1)-pixel halo and writes a band of half-resolution activations; layers
  3 and 4 then run on square tiles of that band. Bands of whole tile rows keep
  memory bounded for any slice size.

Geometry for kernel size k (r = k // 2, e = k - 1) and half-resolution FFT
size N, output tile T = N - 2e: a circular convolution of a patch starting at
``s`` with the flipped kernel is valid from index ``e`` on, where index ``i``
is position ``s + i - r``. Layer 3's patch for a tile at ``t`` starts at
``t - e`` (valid outputs: positions ``t - r .. t + T + r``); layer 4's valid
outputs are indices ``2e ..`` = positions ``t .. t + T``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tomoseg.nn.fftconv import dft_matrix
from tomoseg.nn.network import SegNet


@dataclass(frozen=True)
class TilePlan:
    """Tile geometry and batching of the overlap-save engine.

    ``fft``: FFT size of layers 3-4 (half resolution); ``layer1_fft``: largest
    FFT size of layer 1 (full resolution; raised to the smallest fast size that
    leaves 2 output pixels if smaller); ``tiles_per_batch``: layer-3/4 tiles
    per matrix product; ``band_bytes``: bound on the band of layer-1 activations
    (whole rows of tiles, at least one). Besides the band, a network's kernel
    spectra (164 MB of layer-3 spectra for the paper's network at ``fft`` 160)
    and the tiles in flight (about 40 MB per tile, estimated from the sizes of
    the ~10 complex 20 x 160 x 160 arrays a tile passes through) are held.
    """

    fft: int = 160
    layer1_fft: int = 256
    kernel: int = 15
    pool: int = 2
    tiles_per_batch: int = 4
    band_bytes: int = 256 * 2**20

    def __post_init__(self) -> None:
        if self.pool != 2:
            raise ValueError("the overlap-save engine supports 2 x 2 pooling only")
        if self.tile < 1:
            raise ValueError(f"FFT size {self.fft} leaves no output for {self.kernel} x {self.kernel} kernels")
        if self.layer1_fft < self.kernel + 1:
            raise ValueError(f"layer-1 FFT size {self.layer1_fft} is too small for {self.kernel} x {self.kernel} kernels")
        if self.tiles_per_batch < 1:
            raise ValueError("tiles_per_batch must be at least 1")

    @property
    def tile(self) -> int:
        """Output pixels per tile side (half resolution)."""
        return self.fft - 2 * (self.kernel - 1)

    def layer1_split(self, length: int) -> tuple[int, int, int]:
        """Layer-1 tiles along one axis of ``length`` full-resolution pixels: (count, even
        output pixels per tile, FFT size). FFT sizes are fast ones (:func:`_smooth_sizes`) up to
        ``layer1_fft`` (small ones stay in cache); the least padded total wins, then the smaller size."""
        e = self.kernel - 1
        best = None
        for size in _smooth_sizes(e + 2, max(self.layer1_fft, e + 2)):
            most = size - e - (size - e) % 2
            count = -(-length // most)
            piece = -(-length // count)
            piece += piece % 2
            key = (count * size, size)
            if best is None or key < best[0]:
                best = (key, (count, piece, size))
        return best[1]

    @property
    def layer1_largest(self) -> int:
        """The largest FFT size :meth:`layer1_split` may choose."""
        e = self.kernel - 1
        return _smooth_sizes(e + 2, max(self.layer1_fft, e + 2))[-1]


@functools.lru_cache(maxsize=64)
def _smooth_sizes(lowest: int, highest: int) -> tuple[int, ...]:
    """Numbers 2^a, 3 x 2^a, 9 x 2^a (a >= 1) in [lowest, highest], or the smallest one >= lowest.

    Higher powers of 3 measured slower (162 = 2 x 3^4: 0.6x the speed of 160 or 192)."""
    every = sorted(2**a * 3**b for a in range(1, 20) for b in range(3))
    sizes = tuple(n for n in every if lowest <= n <= highest)
    return sizes or (next(n for n in every if n >= lowest),)


class PreparedNet:
    """A network's kernel spectra for one tile plan (computed once, reused per slab).

    Channels are padded to an even number with zero kernels (they stay zero).
    """

    def __init__(self, net: SegNet, plan: TilePlan) -> None:
        k = net.config.kernel
        if k != plan.kernel or net.config.pool != plan.pool:
            raise ValueError("the tile plan does not match the network")
        if any(p.dtype != torch.float32 for p in net.parameters()):
            raise ValueError("the FFT engine needs a float32 network")
        self.plan = plan
        c = net.config.channels
        c2 = c + c % 2
        self.pairs = c2 // 2
        with torch.no_grad():
            w1 = _pad_channels(net.conv1.weight.detach(), c2, dims=(0,)).flip(-2, -1)  # (C, Cin, k, k)
            self.inputs = w1.shape[1]
            w1 = w1[:, 0] if self.inputs == 1 else w1  # one slice: (C, k, k)
            self._w1 = torch.complex(w1[0::2], w1[1::2])  # (C/2, [Cin,] k, k): kernels of the output pairs
            self._g1: dict[tuple[int, int], torch.Tensor] = {}
            b1 = _pad_channels(net.conv1.bias.detach(), c2, dims=(0,))
            self._b1c = torch.complex(b1[0::2], b1[1::2])  # (C/2,)

            n = plan.fft
            # Pair combinations are linear, so they are formed on the small spatial kernels and
            # transformed once. Layer 3, output pair k, input pair j:
            # on P_j: (K[2k,2j] - i K[2k,2j+1] + i K[2k+1,2j] + K[2k+1,2j+1]) / 2,
            # on P*_j: (K[2k,2j] + i K[2k,2j+1] + i K[2k+1,2j] - K[2k+1,2j+1]) / 2.
            w3 = _pad_channels(net.conv3.weight.detach(), c2, dims=(0, 1)).flip(-2, -1)
            w00, w01, w10, w11 = w3[0::2, 0::2], w3[0::2, 1::2], w3[1::2, 0::2], w3[1::2, 1::2]
            on_p = torch.complex(w00 + w11, w10 - w01) / 2
            on_pstar = torch.complex(w00 - w11, w10 + w01) / 2
            m3 = torch.cat([on_p, on_pstar], dim=1).permute(2, 3, 1, 0)  # (k, k, C in, C/2 out)
            self.m3 = _spectrum(m3.reshape(k, k, -1), (n, n), channels_last=True).reshape(n * n, c2, self.pairs)
            b3 = _pad_channels(net.conv3.bias.detach(), c2, dims=(0,))
            self.dc3 = torch.complex(b3[0::2], b3[1::2]) * (n * n)  # biases as the DC term of ifft2

            w4 = _pad_channels(net.conv4.weight.detach(), c2, dims=(1,)).flip(-2, -1)[0]
            self.u4 = _spectrum(torch.complex(w4[0::2], -w4[1::2]) / 2, (n, n))  # (C/2, N, N)
            self.b4 = float(net.conv4.bias.detach()[0])
            i = torch.arange(n)
            neg = (-i) % n
            self.mirror = (neg.view(-1, 1) * n + neg.view(1, -1)).reshape(-1).to(w1.device)  # flat index of -f

    def g1(self, shape: tuple[int, int]) -> torch.Tensor:
        """Layer-1 spectra of the output pairs at FFT size ``shape``: (C/2, Ly, Lx), or (C/2, Cin, Ly, Lx)
        for several input slices (slab context)."""
        if shape not in self._g1:
            if len(self._g1) >= 8:
                self._g1.pop(next(iter(self._g1)))
            self._g1[shape] = _spectrum(self._w1, shape)
        return self._g1[shape]

    def dc1(self, shape: tuple[int, int]) -> torch.Tensor:
        """Layer-1 biases of the output pairs as the DC term of an inverse FFT of ``shape``."""
        return self._b1c * (shape[0] * shape[1])


def _spectrum(kernels: torch.Tensor, shape: tuple[int, int], channels_last: bool = False) -> torch.Tensor:
    """Zero-padded 2D DFT of small complex kernels, as matrix products with DFT matrices.

    ``kernels``: (..., k, k), or (k, k, C) when ``channels_last``. Returns (..., Ly, Lx) or
    (Ly, Lx, C), contiguous. Faster than ``fft2(..., s=shape)`` followed by a permute
    for 15 x 15 kernels, and gives the frequency-major layout directly.
    """
    k = kernels.shape[0] if channels_last else kernels.shape[-1]
    device = str(kernels.device)
    ey, ex = dft_matrix(shape[0], k, device=device), dft_matrix(shape[1], k, device=device)
    if not channels_last:
        lead = kernels.shape[:-2]
        flat = kernels.reshape(-1, k, k)  # one batch dimension: matmul's broadcasting of 2D @ 4D fails here
        return torch.matmul(torch.matmul(ey, flat), ex.T).reshape(*lead, *shape).contiguous()
    c = kernels.shape[2]
    t = torch.matmul(ex, kernels)  # (k_y, Lx, C): along x for each kernel row
    return torch.matmul(ey, t.reshape(k, -1)).reshape(shape[0], shape[1], c)


def _pad_channels(t: torch.Tensor, size: int, dims: tuple[int, ...]) -> torch.Tensor:
    for d in dims:
        if t.shape[d] < size:
            shape = list(t.shape)
            shape[d] = size - t.shape[d]
            t = torch.cat([t, t.new_zeros(shape)], dim=d)
    return t


def _layer1_band(prep: PreparedNet, xpad: torch.Tensor, band: torch.Tensor, row0: int, ho: int, wo: int) -> None:
    """Layer 1 + 2 x 2 max pooling + bias + ReLU into ``band`` (C/2, rows, cols) complex pairs.

    Band row ``i`` is half-resolution row ``row0 + i``; band column ``j`` is
    column ``j - e``. ``xpad`` is the slice (Cin, H', W') padded by ``r`` before and enough after;
    with several input slices their spectra are summed after the products.
    """
    plan = prep.plan
    e = plan.kernel - 1
    a, b = max(row0, 0), min(row0 + band.shape[1], ho)  # b > a: every band holds a row of tiles
    ny, sy, ly = plan.layer1_split(2 * (b - a))
    nx, sx, lx = plan.layer1_split(2 * wo)
    g, dc = prep.g1((ly, lx)), prep.dc1((ly, lx))
    real = torch.view_as_real(band)
    # zero what layer 1 does not write: rows outside [a, b), columns outside the slice
    real[:, : a - row0].zero_()
    real[:, b - row0 :].zero_()
    real[:, :, :e].zero_()
    real[:, :, e + wo :].zero_()
    several = prep.inputs > 1
    prod = torch.empty_like(g[:, 0] if several else g)
    whole = torch.empty_like(g) if several else None
    for iy in range(ny):
        y0 = 2 * a + iy * sy  # full-resolution row of the tile's first output
        hy = min(sy, 2 * b - y0) // 2
        for ix in range(nx):
            x0 = ix * sx
            hx = min(sx, 2 * wo - x0) // 2
            spectrum = torch.fft.fft2(xpad[:, y0 : y0 + ly, x0 : x0 + lx])  # (Cin, Ly, Lx)
            if several:
                torch.sum(torch.mul(g, spectrum, out=whole), dim=1, out=prod)
            else:
                torch.mul(g, spectrum[0], out=prod)
            prod[:, 0, 0] += dc  # + bias (max pooling commutes with it)
            h = torch.view_as_real(torch.fft.ifft2(prod))  # (C/2, Ly, Lx, 2)
            h = torch.maximum(h[:, e : e + 2 * hy : 2], h[:, e + 1 : e + 2 * hy : 2])
            h = torch.maximum(h[:, :, e : e + 2 * hx : 2], h[:, :, e + 1 : e + 2 * hx : 2])
            r0, c0 = y0 // 2 - row0, x0 // 2 + e
            real[:, r0 : r0 + hy, c0 : c0 + hx] = h.relu_()


def _layers34(prep: PreparedNet, z: torch.Tensor, inside: list[tuple[slice, slice]]) -> torch.Tensor:
    """Layers 3 (+ bias, ReLU) and 4 (+ bias) on (M, C/2, N, N) pair patches -> (M, T, T).

    ``inside[i]``: the rows and columns of tile ``i``'s layer-3 output that lie
    inside the slice (the rest is zeroed, as conv2d's padding sees it).
    """
    m, pairs, n, _ = z.shape
    e = prep.plan.kernel - 1
    p = torch.fft.fft2(z).view(m, pairs, n * n).permute(2, 0, 1)  # (N^2, M, C/2) view
    x = torch.empty(n * n, m, 2 * pairs, dtype=z.dtype, device=z.device)
    x[:, :, :pairs] = p
    x[:, :, pairs:] = x[:, :, :pairs].index_select(0, prep.mirror).conj_physical_()  # P*(f) = conj(P(-f))
    y = torch.bmm(x, prep.m3)  # (N^2, M, C/2): spectra of the output pairs
    y[0] += prep.dc3  # + bias
    z3 = torch.fft.ifft2(y.permute(1, 2, 0).reshape(m, pairs, n, n))
    h = torch.view_as_real(z3).relu_()
    for tile, (rows, cols) in zip(h, inside):
        if rows.start > 0 or rows.stop < n:
            tile[:, : rows.start].zero_()
            tile[:, rows.stop :].zero_()
        if cols.start > 0 or cols.stop < n:
            tile[:, :, : cols.start].zero_()
            tile[:, :, cols.stop :].zero_()
    s = (torch.fft.fft2(z3) * prep.u4).sum(dim=1)  # (M, N, N)
    return 2 * torch.fft.ifft2(s).real[:, 2 * e :, 2 * e :] + prep.b4


def _inside_range(start: int, length: int, limit: int) -> slice:
    """Indices ``i`` in [0, length) with ``start + i`` in [0, limit)."""
    return slice(min(max(-start, 0), length), max(min(limit - start, length), 0))


def overlap_save_forward(prep: PreparedNet, x: torch.Tensor) -> torch.Tensor:
    """The network's linear output for slices ``x`` (B, Cin, H, W), H and W even (Cin: 1, or
    ``2 context + 1`` slices).

    Returns (B, 1, H/2, W/2), equal to ``net(x)`` with conv2d. torch's own
    threads parallelise each operation.
    """
    plan = prep.plan
    batch, _, height, width = x.shape
    if x.dtype != torch.float32:
        raise ValueError(f"the FFT engine computes in float32, got {x.dtype}")
    if height % 2 or width % 2:
        raise ValueError(f"slice size must be even, got {height} x {width}")
    if x.shape[1] != prep.inputs:
        raise ValueError(f"the network takes {prep.inputs} input slice(s) per output slice, got {x.shape[1]}")
    ho, wo = height // 2, width // 2
    t, n, e, r = plan.tile, plan.fft, plan.kernel - 1, plan.kernel // 2
    ny, nx = -(-ho // t), -(-wo // t)
    cols = nx * t + 2 * e
    row_bytes = prep.pairs * cols * 8 * t
    rows_per_band = max(1, min(ny, (plan.band_bytes - prep.pairs * cols * 8 * 2 * e) // row_bytes))
    out = torch.empty(batch, ny * t, nx * t, dtype=x.dtype, device=x.device)
    rows3 = [_inside_range(ty * t - e - r, n, ho) for ty in range(ny)]
    cols3 = [_inside_range(tx * t - e - r, n, wo) for tx in range(nx)]
    pad = plan.layer1_largest  # room for the last layer-1 patch
    buffer = torch.empty(prep.pairs, rows_per_band * t + 2 * e, cols, dtype=torch.complex64, device=x.device)
    for b in range(batch):
        xpad = F.pad(x[b], (r, pad, r, pad))  # (Cin, H', W')
        for ty0 in range(0, ny, rows_per_band):
            ty1 = min(ny, ty0 + rows_per_band)
            band = buffer[:, : (ty1 - ty0) * t + 2 * e]
            _layer1_band(prep, xpad, band, ty0 * t - e, ho, wo)
            tiles = [(ty, tx) for ty in range(ty0, ty1) for tx in range(nx)]
            for i in range(0, len(tiles), plan.tiles_per_batch):
                group = tiles[i : i + plan.tiles_per_batch]
                z = torch.stack([band[:, (ty - ty0) * t : (ty - ty0) * t + n, tx * t : tx * t + n] for ty, tx in group])
                y = _layers34(prep, z, [(rows3[ty], cols3[tx]) for ty, tx in group])
                for (ty, tx), tile in zip(group, y):
                    out[b, ty * t : ty * t + t, tx * t : tx * t + t] = tile
    return out[:, None, :ho, :wo]
