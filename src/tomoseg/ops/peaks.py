"""Sub-voxel peak positions: the one helper for every correlation peak (averaging, 2D classification)."""

from __future__ import annotations

import torch


def parabola_offset(minus: torch.Tensor, centre: torch.Tensor, plus: torch.Tensor) -> torch.Tensor:
    """Offset in [-0.5, 0.5] of the vertex of the parabola through three equally spaced samples
    (at -1, 0, +1), where ``centre`` is a maximum (negative curvature); 0 elsewhere."""
    curvature = minus - 2 * centre + plus
    offset = 0.5 * (minus - plus) / torch.where(curvature < 0, curvature, torch.full_like(curvature, -1.0))
    return torch.where(curvature < 0, offset, torch.zeros_like(offset)).clamp(-0.5, 0.5)
