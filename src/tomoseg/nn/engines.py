"""Inference engines: how a trained network is evaluated on whole slices.

An engine is a callable ``engine(net, x) -> y`` mapping scaled slices
``x`` (B, 1, H, W) with even H, W to the network's linear layer-4 output
(B, 1, H/2, W/2). Every engine computes the same function (zero "same" padding
at the slice border) and passes the same tests (tests/test_engines.py). All of
them run on the device of ``x`` (CPU or CUDA).

- ``direct``: ``torch.nn.functional.conv2d``, the reference for correctness.
- ``fft``: overlap-save FFT tiling with kernel spectra computed once per
  network (:mod:`tomoseg.nn.overlap_save`); memory does not grow with the slice.
- ``fft-slice``: one zero-padded FFT convolution per layer over the whole slice
  (simple; memory grows with the slice).
"""

from __future__ import annotations

from typing import Protocol

import torch

from tomoseg.errors import InvalidValue
from tomoseg.nn.fftconv import fft_conv2d_same
from tomoseg.nn.network import SegNet, conv2d_same
from tomoseg.nn.overlap_save import PreparedNet, TilePlan, overlap_save_forward

DEFAULT_FFT_SIZE = 160
"""Half-resolution FFT size of layers 3-4 in the overlap-save engine (chosen by measurement, docs/benchmarks.md)."""

DEFAULT_LAYER1_FFT = 256
"""Largest full-resolution FFT size of layer 1 in the overlap-save engine (chosen by measurement)."""


class Engine(Protocol):
    name: str

    def __call__(self, net: SegNet, x: torch.Tensor) -> torch.Tensor: ...


class DirectEngine:
    """Plain ``torch.nn.functional.conv2d`` (the reference for correctness)."""

    name = "direct"

    @torch.no_grad()
    def __call__(self, net: SegNet, x: torch.Tensor) -> torch.Tensor:
        return net(x, conv=conv2d_same)


class SliceFFTEngine:
    """FFT convolutions over the whole slice (zero-padded, no wrap-around)."""

    name = "fft-slice"

    @torch.no_grad()
    def __call__(self, net: SegNet, x: torch.Tensor) -> torch.Tensor:
        return net(x, conv=fft_conv2d_same)


class OverlapSaveEngine:
    """Overlap-save FFT tiles (:mod:`tomoseg.nn.overlap_save`): layers 3-4 on ``fft_size`` tiles
    (half resolution), ``tiles_per_batch`` at a time, layer 1 on its own tiles of at most
    ``layer1_fft`` pixels. Parallel through torch's own threads (``--threads``): two worker
    threads of one core each measured no faster on 2 cores.

    Kernel spectra are computed on the first call for a network and device and
    reused while the weights are unchanged.
    """

    name = "fft"

    def __init__(self, fft_size: int = DEFAULT_FFT_SIZE, layer1_fft: int = DEFAULT_LAYER1_FFT,
                 tiles_per_batch: int = 4) -> None:
        self.plan_args = dict(fft=fft_size, layer1_fft=layer1_fft, tiles_per_batch=tiles_per_batch)
        self._prepared: dict[tuple, PreparedNet] = {}

    max_prepared = 8
    """Networks whose spectra are kept (several models applied slab by slab; ~170-250 MB each)."""

    def prepare(self, net: SegNet, device: torch.device) -> PreparedNet:
        key = (id(net), str(device), tuple((p.data_ptr(), p._version) for p in net.parameters()))
        if key not in self._prepared:
            for old in [k for k in self._prepared if k[0] == id(net)]:  # this network's old weights
                del self._prepared[old]
            while len(self._prepared) >= self.max_prepared:
                del self._prepared[next(iter(self._prepared))]  # the oldest
            plan = TilePlan(kernel=net.config.kernel, pool=net.config.pool, **self.plan_args)
            self._prepared[key] = PreparedNet(net, plan)
        return self._prepared[key]

    @torch.no_grad()
    def __call__(self, net: SegNet, x: torch.Tensor) -> torch.Tensor:
        return overlap_save_forward(self.prepare(net, x.device), x)


ENGINES: dict[str, type] = {"direct": DirectEngine, "fft": OverlapSaveEngine, "fft-slice": SliceFFTEngine}


def get_engine(name: str) -> Engine:
    """A new engine called ``name`` (see :data:`ENGINES`)."""
    try:
        return ENGINES[name]()
    except KeyError:
        raise InvalidValue(f"unknown `engine` {name!r}; choose one of {', '.join(ENGINES)}") from None
