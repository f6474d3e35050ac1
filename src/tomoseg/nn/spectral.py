"""The network's forward pass for training, with hand-written FFT backward passes.

Same function and gradients as :meth:`SegNet.forward` with ``conv2d`` (zero
"same" padding, no wrap-around), about 1.4x faster per training step here than
autograd through :func:`tomoseg.nn.fftconv.fft_conv2d_same` (docs/benchmarks.md).

Each convolution is a :class:`torch.autograd.Function` whose backward pass is
written out (correlation theorem), instead of autograd through FFTs, padding,
crops and matrix products (which stores and copies much more):

- forward: ``y = irfft2(X H)[:H, :W]`` with ``X = rfft2(x)`` on an ``N x M`` grid
  (``N >= H + k - 1``) and ``H`` the spectrum of the kernel centred on the
  origin (``h[s] = w[r - s]``, ``r = k // 2``), so ``y`` is conv2d's output;
- input gradient: ``dx = irfft2(dY conj(H))[:H, :W]`` (correlation with ``h``);
- kernel gradient: ``dw[t] = c[r - t]`` with ``c = irfft2(sum_b dY conj(X))``,
  evaluated at the k x k taps only.

Channel mixing (layer 3) is one complex batched matrix product per frequency on
contiguous frequency-major copies. Layer 1 and pooling are one function
(:class:`PooledInputConv`) working on complex channel pairs. Kernel spectra
come from two small DFT-matrix products per step.
"""

from __future__ import annotations


import torch
from torch.autograd.function import once_differentiable

from tomoseg.nn.fftconv import dft_matrix, fft_size
from tomoseg.nn.network import SegNet


def kernel_spectra(weight: torch.Tensor, shape: tuple[int, int], half: bool = True) -> torch.Tensor:
    """Spectra of the centred kernels on a ``shape`` grid: complex (N, M//2+1, Cin, Cout).

    ``weight``: (Cout, Cin, k, k), conv2d's cross-correlation layout, real or
    complex. ``half=False``: all M frequencies of the last axis. Two matrix
    products with DFT matrices: ``H[n, m, c, o] = sum_uv ay[n, u] w[o, c, u, v] ax[m, v]``.
    """
    cout, cin, k = weight.shape[0], weight.shape[1], weight.shape[-1]
    device = str(weight.device)
    ay = dft_matrix(shape[0], k, centred=True, device=device)
    ax = dft_matrix(shape[1], k, shape[1] // 2 + 1 if half else None, centred=True, device=device)
    columns = ax.shape[0]
    w = weight.detach().permute(2, 1, 0, 3).reshape(k * cin * cout, k).to(torch.complex64)
    a = (w @ ax.T).view(k, cin, cout, columns).permute(0, 3, 1, 2).reshape(k, columns * cin * cout)
    return (ay @ a).view(shape[0], columns, cin, cout)


def _freq_major(spectra: torch.Tensor) -> torch.Tensor:
    """(B, C, N, M) -> contiguous (N * M, B, C): one matrix per frequency, for ``bmm``."""
    b, c, n, m = spectra.shape
    return spectra.permute(2, 3, 0, 1).contiguous().view(n * m, b, c)


def _batch_major(mixed: torch.Tensor, n: int) -> torch.Tensor:
    """(N * M, B, C) -> (B, C, N, M) (a view; the inverse FFT copies what it needs)."""
    f, b, c = mixed.shape
    return mixed.view(n, f // n, b, c).permute(2, 3, 0, 1)


class SpectralConv(torch.autograd.Function):
    """conv2d with zero "same" padding and no bias, on (B, Cin, H, W) inputs."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:  # noqa: D102
        height, width = x.shape[-2:]
        k = weight.shape[-1]
        shape = (fft_size(height + k - 1), fft_size(width + k - 1))
        spectra = torch.fft.rfft2(x, s=shape)  # (B, Cin, N, M)
        kernels = kernel_spectra(weight, shape)  # (N, M, Cin, Cout)
        cin, cout = kernels.shape[-2:]
        if cin == 1 or cout == 1:
            by_channel = kernels.permute(2, 3, 0, 1)  # (Cin, Cout, N, M)
            if cin == 1:
                mixed = spectra * by_channel  # (B, 1, N, M) * (1, Cout, N, M)
            else:
                mixed = (spectra * by_channel[:, 0]).sum(dim=1, keepdim=True)
        else:
            spectra = _freq_major(spectra)
            mixed = _batch_major(torch.bmm(spectra, kernels.view(-1, cin, cout)), shape[0])
        y = torch.fft.irfft2(mixed, s=shape)[..., :height, :width]
        ctx.save_for_backward(spectra, kernels)
        ctx.geometry = (height, width, k, shape)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, dy: torch.Tensor):  # noqa: D102
        spectra, kernels = ctx.saved_tensors
        height, width, k, shape = ctx.geometry
        cin, cout = kernels.shape[-2:]
        dy_hat = torch.fft.rfft2(dy, s=shape)  # (B, Cout, N, M)
        by_channel = kernels.permute(2, 3, 0, 1)  # (Cin, Cout, N, M)
        matrix = not (cin == 1 or cout == 1)
        if matrix:
            dy_hat = _freq_major(dy_hat)
        dx = None
        if ctx.needs_input_grad[0]:
            if cout == 1:
                dx_hat = dy_hat * by_channel[:, 0].conj()  # (B, 1, N, M) * (Cin, N, M)
            elif cin == 1:
                dx_hat = (dy_hat * by_channel[0].conj()).sum(dim=1, keepdim=True)
            else:
                adjoint = kernels.conj_physical().transpose(2, 3).reshape(-1, cout, cin)
                dx_hat = _batch_major(torch.bmm(dy_hat, adjoint), shape[0])
            dx = torch.fft.irfft2(dx_hat, s=shape)[..., :height, :width]
        dweight = None
        if ctx.needs_input_grad[1]:
            # c[s] = sum_b sum_m dy[m] x[m - s]: spectrum sum_b dY conj(X), (Cin, Cout, N, M)
            if matrix:
                g = torch.bmm(spectra.conj_physical().transpose(1, 2), dy_hat)  # (F, Cin, Cout)
            else:
                g = (spectra.conj().unsqueeze(2) * dy_hat.unsqueeze(1)).sum(dim=0).permute(2, 3, 0, 1)
            dweight = _kernel_gradient(g.reshape(shape[0], -1, cin, cout), shape, k)
        return dx, dweight


def _kernel_gradient(g: torch.Tensor, shape: tuple[int, int], k: int) -> torch.Tensor:
    """Kernel gradient from ``g = sum_b dY conj(X)``, frequency-major (N, M//2+1, Cin, Cout).

    ``dw[o, c, t] = c[r - t]`` with ``c = irfft2(g)``, evaluated only at the k x k
    taps with the DFT matrices of :func:`kernel_spectra` (adjoint): ``Re(ay^H g (a ax^*))
    / (N M)`` where ``a`` counts each frequency of the half spectrum once or twice.
    """
    n, half, cin, cout = g.shape
    m = shape[1]
    ay = dft_matrix(n, k, centred=True, device=str(g.device))  # (N, k)
    ax = dft_matrix(m, k, half, centred=True, device=str(g.device))  # (M//2+1, k)
    twice = torch.full((half, 1), 2.0, device=g.device)
    twice[0] = 1.0
    if m % 2 == 0:
        twice[-1] = 1.0
    bx = (ax.conj() * twice / (n * m)).to(ax.dtype)  # (M//2+1, k)
    rows = (ay.conj().T @ g.reshape(n, -1)).view(k, half, cin * cout)  # (k, M//2+1, Cin Cout)
    taps = torch.matmul(rows.transpose(1, 2), bx).real  # (k_y, Cin Cout, k_x)
    return taps.view(k, cin, cout, k).permute(2, 1, 0, 3).contiguous()


def _max_of_phases(phases: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Maximum over dimension 2 of (B, C, P, h, w) and the index of the first maximum
    (uint8, or int16 for more than 256 phases)."""
    out = phases[:, :, 0]
    dtype = torch.uint8 if phases.shape[2] <= 256 else torch.int16
    code = torch.zeros(out.shape, dtype=dtype, device=out.device)
    for s in range(1, phases.shape[2]):
        better = (phases[:, :, s] > out).to(dtype)
        out = torch.maximum(out, phases[:, :, s])
        code += better * (s - code)  # masked_fill_ and where are ~20x slower here
    return out, code


class PooledInputConv(torch.autograd.Function):
    """Layer 1 and pooling: ``max_pool2d(conv2d(x, w), p)``, no bias, for one input channel (or
    several: slab context, whose products are summed over the input channels).

    Output channels travel in pairs as complex maps (channel 2j real, 2j+1
    imaginary): one complex inverse FFT makes two output maps and one complex
    FFT transforms two gradient maps, about twice as fast here as real FFTs of
    each. The maps are then copied once into pooling-phase-major order
    ``(B, C, p * p, H / p, W / p)``, so pooling and its gradient work on
    contiguous slabs (torch's pooling backward costs more than the FFTs).
    Ties send the gradient to the first maximum of a window in row-major order.
    Only the kernel gradient is computed (the input is data).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, p: int) -> torch.Tensor:  # noqa: D102
        if ctx.needs_input_grad[0]:
            raise ValueError("PooledInputConv computes no input gradient: its input must be data")
        b, _, height, width = x.shape
        cout, _, k, _ = weight.shape
        shape = (fft_size(height + k - 1), fft_size(width + k - 1))
        if cout % 2:
            weight = torch.cat([weight, weight.new_zeros((1,) + weight.shape[1:])])
        pairs = torch.complex(weight[0::2], weight[1::2])  # (C/2, Cin, k, k)
        kernels = kernel_spectra(pairs, shape, half=False)  # (N, M, Cin, C/2)
        spectra = torch.fft.fft2(x.to(kernels.dtype), s=shape)  # (B, Cin, N, M)
        by_input = kernels.permute(2, 3, 0, 1)  # (Cin, C/2, N, M)
        products = spectra[:, :1] * by_input[0]  # (B, 1, N, M) * (C/2, N, M)
        for c in range(1, x.shape[1]):  # slab context: sum over the input slices (faster than einsum here)
            products += spectra[:, c : c + 1] * by_input[c]
        maps = torch.view_as_real(torch.fft.ifft2(products))  # (B, C/2, N, M, 2)
        rows, cols = height // p, width // p
        grid = maps[:, :, : rows * p, : cols * p].reshape(b, -1, rows, p, cols, p, 2)
        # (B, C/2, rows, i, cols, j, part) -> (B, C/2, part, i, j, rows, cols): channel 2 c + part
        phases = grid.permute(0, 1, 6, 3, 5, 2, 4).reshape(b, -1, p * p, rows, cols)
        pooled, code = _max_of_phases(phases)
        ctx.save_for_backward(spectra, code)
        ctx.geometry = (cout, k, shape, p)
        return pooled[:, :cout]

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):  # noqa: D102
        spectra, code = ctx.saved_tensors
        cout, k, shape, p = ctx.geometry
        b, channels, rows, cols = code.shape
        if cout < channels:
            grad = torch.cat([grad, grad.new_zeros((b, channels - cout, rows, cols))], dim=1)
        dphases = grad.new_zeros((b, channels, p * p, rows, cols))
        dphases.scatter_(2, code.unsqueeze(2).long(), grad.unsqueeze(2))
        # (B, C/2, part, i, j, rows, cols) -> planar maps (B, C/2, part, H, W) -> complex pairs
        planar = dphases.view(b, channels // 2, 2, p, p, rows, cols).permute(0, 1, 2, 5, 3, 6, 4)
        planar = planar.reshape(b, channels // 2, 2, rows * p, cols * p)
        dmaps_hat = torch.fft.fft2(torch.complex(planar[:, :, 0], planar[:, :, 1]), s=shape)
        # c[s] = sum_b sum_m dy[m] x[m - s]: spectrum sum_b dY conj(X), two channels per map
        cin = spectra.shape[1]
        if cin == 1:
            corr = torch.fft.ifft2((dmaps_hat * spectra.conj()).sum(dim=0)).unsqueeze(1)  # (C/2, 1, N, M)
        else:  # slab context: one correlation per input slice
            corr = torch.fft.ifft2(torch.stack([(dmaps_hat * spectra[:, c : c + 1].conj()).sum(dim=0)
                                                for c in range(cin)], dim=1))  # (C/2, Cin, N, M)
        r = k // 2
        rows_k = (r - torch.arange(k, device=grad.device)) % shape[0]
        cols_k = (r - torch.arange(k, device=grad.device)) % shape[1]
        window = torch.view_as_real(corr[:, :, rows_k][:, :, :, cols_k])  # (C/2, Cin, k, k, 2)
        dweight = window.permute(0, 4, 1, 2, 3).reshape(channels, cin, k, k)[:cout]
        return None, dweight, None


def _bias(conv: torch.nn.Conv2d) -> torch.Tensor:
    return conv.bias.view(-1, 1, 1)


def spectral_forward(net: SegNet, x: torch.Tensor) -> torch.Tensor:
    """``net(x)`` (linear layer-4 output) computed with :class:`SpectralConv`.

    ``x``: (B, Cin, H, W) (Cin = ``2 context + 1``), already scaled by ``INPUT_SCALE``; returns
    (B, 1, H / pool, W / pool), with gradients for the network's parameters.
    """
    if x.dtype != torch.float32 or net.conv1.weight.dtype != torch.float32:
        raise ValueError(f"spectral_forward needs float32 inputs and weights, got {x.dtype}")
    p = net.config.pool
    # Bias and ReLU commute with max pooling: applied after it, on a quarter of the values.
    h = (PooledInputConv.apply(x, net.conv1.weight, p) + _bias(net.conv1)).relu()
    h = (SpectralConv.apply(h, net.conv3.weight) + _bias(net.conv3)).relu()
    return SpectralConv.apply(h, net.conv4.weight) + _bias(net.conv4)
