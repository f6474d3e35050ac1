"""The 8 symmetries of a square pixel grid (rotations by 90 degrees and flips), for test-time
augmentation.

The network works on each slice in 2D; turning or flipping a slice before scoring and undoing it
after gives another estimate of the same map, and their mean is the test-time-augmented map
(``apply --tta N``). Transform ``i`` (0-7) is ``rot90(flip_x(x) if i & 1 else x, k=i // 2)`` on the
last two axes (y, x), so the first N of :data:`ORDER` are: N = 1 nothing, 2 the x flip, 4 adds a
quarter turn with and without the flip, 8 all of them. Each undoes exactly, for any slice shape
(a quarter turn swaps y and x; undoing swaps them back).
"""

from __future__ import annotations

import torch

COUNT = 8
"""How many symmetries there are: 4 rotations, each with and without a flip."""


def transform(x: torch.Tensor, i: int) -> torch.Tensor:
    """Symmetry ``i`` (0-7) of ``x`` on its last two axes (y, x)."""
    if not 0 <= i < COUNT:
        raise ValueError(f"symmetry index must be 0-{COUNT - 1}, got {i}")
    if i & 1:
        x = x.flip(-1)
    return torch.rot90(x, i // 2, dims=(-2, -1)) if i // 2 else x


def undo(y: torch.Tensor, i: int) -> torch.Tensor:
    """The inverse of :func:`transform`: ``undo(transform(x, i), i) == x``."""
    if not 0 <= i < COUNT:
        raise ValueError(f"symmetry index must be 0-{COUNT - 1}, got {i}")
    if i // 2:
        y = torch.rot90(y, -(i // 2), dims=(-2, -1))
    return y.flip(-1) if i & 1 else y
