"""Inference engines: how a trained network is evaluated on whole slices.

An engine is a callable ``engine(net, x) -> y`` mapping scaled slices
``x`` (B, 1, H, W) with even H, W to the network's linear layer-4 output
(B, 1, H/2, W/2). Every engine computes the same function (zero "same" padding
at the slice border) and passes the same tests (tests/test_engines.py).
"""

from __future__ import annotations

from typing import Protocol

import torch

from tomoseg.nn.fftconv import fft_conv2d_same
from tomoseg.nn.network import SegNet, conv2d_same


class Engine(Protocol):
    name: str

    def __call__(self, net: SegNet, x: torch.Tensor) -> torch.Tensor: ...


class DirectEngine:
    """Plain ``torch.nn.functional.conv2d`` (the reference for correctness)."""

    name = "direct"

    @torch.no_grad()
    def __call__(self, net: SegNet, x: torch.Tensor) -> torch.Tensor:
        return net(x, conv=conv2d_same)


class FFTEngine:
    """FFT convolutions over the whole slice (zero-padded, no wrap-around)."""

    name = "fft"

    @torch.no_grad()
    def __call__(self, net: SegNet, x: torch.Tensor) -> torch.Tensor:
        return net(x, conv=fft_conv2d_same)


ENGINES: dict[str, type] = {"direct": DirectEngine, "fft": FFTEngine}


def get_engine(name: str) -> Engine:
    """The engine called ``name`` ("direct" or "fft")."""
    try:
        return ENGINES[name]()
    except KeyError:
        raise ValueError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}") from None
