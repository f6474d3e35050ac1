"""Applying a trained network to whole slices (METHOD.md section 5)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from tomoseg.nn.engines import Engine, FFTEngine
from tomoseg.nn.network import INPUT_SCALE, SegNet
from tomoseg.progress import Progress, report


def score_slices(
    net: SegNet,
    amplitude: float,
    slices: np.ndarray,
    engine: Engine | None = None,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Normalised score of every pixel of a stack of slices.

    ``slices``: preprocessed (z, y, x) array. Each slice is scaled by 1/3, run
    through the network, ReLU'd, divided by ``amplitude`` (so on-feature pixels
    score about 1) and upsampled x2 (bilinear) back to (y, x). Odd sizes are
    zero-padded by one pixel (the network's own boundary) and cropped back.
    Returns float32 (z, y, x).
    """
    engine = engine or FFTEngine()
    nz, ny, nx = slices.shape
    if not np.isfinite(slices).all():
        raise ValueError("the slices contain NaN or infinite values")
    x = torch.from_numpy(np.array(slices, dtype=np.float32)).to(device).unsqueeze(1)
    x = F.pad(x * INPUT_SCALE, (0, nx % 2, 0, ny % 2))
    y = torch.relu(engine(net, x)) / amplitude
    y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
    return y[:, 0, :ny, :nx].cpu().numpy().astype(np.float32)


def score_volume(
    net: SegNet,
    amplitude: float,
    volume: np.ndarray,
    engine: Engine | None = None,
    device: torch.device | str = "cpu",
    slices_per_batch: int = 4,
    progress: Progress | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Score a whole (z, y, x) volume slice by slice; see :func:`score_slices`.

    ``volume`` may be a memory map: only ``slices_per_batch`` slices are read at
    a time. ``out`` (float32, same shape, e.g. a writable memory map) receives
    the scores; a new array is made if it is None. Reports progress after each
    batch of slices (cancellable). Raises ValueError naming the slices if they
    hold NaN or infinity.
    """
    net = net.to(device).eval()
    out = np.empty(volume.shape, dtype=np.float32) if out is None else out
    nz = volume.shape[0]
    for z0 in range(0, nz, slices_per_batch):
        z1 = min(nz, z0 + slices_per_batch)
        try:
            out[z0:z1] = score_slices(net, amplitude, np.asarray(volume[z0:z1]), engine, device)
        except ValueError as err:
            raise ValueError(f"slices {z0}-{z1 - 1}: {err}") from None
        report(progress, z1, nz, "slices")
    return out
