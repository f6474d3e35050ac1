"""Cutting square tiles from slices, and rotating tiles with their masks."""

from __future__ import annotations


import numpy as np
import torch
import torch.nn.functional as F


def tile_bounds(center: int, size: int) -> tuple[int, int]:
    """Start and stop of a ``size``-pixel tile centred on pixel ``center``.

    An even tile has ``size // 2`` pixels before the centre and ``size // 2 - 1``
    after it (the centre is the pixel just right of the middle).
    """
    start = int(center) - size // 2
    return start, start + size


def cut_tile(slice2d: np.ndarray, x: int, y: int, size: int) -> np.ndarray:
    """The ``size`` x ``size`` tile of a (y, x) slice centred on pixel (x, y).

    Raises ValueError if the tile does not lie wholly inside the slice.
    """
    y0, y1 = tile_bounds(y, size)
    x0, x1 = tile_bounds(x, size)
    ny, nx = slice2d.shape
    if y0 < 0 or x0 < 0 or y1 > ny or x1 > nx:
        raise ValueError(
            f"a {size}x{size} tile centred on x={x}, y={y} sticks out of the {nx}x{ny} slice"
        )
    return np.asarray(slice2d[y0:y1, x0:x1])


def rotate_pairs(
    tiles: torch.Tensor, masks: torch.Tensor, angles_deg: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate each tile and its mask together about the tile centre.

    ``tiles``: (N, C, S, S) float (C slices of slab context, all turned alike); ``masks``: (N, 1, S, S);
    ``angles_deg``: (N,) in degrees, counter-clockwise in the (x, y) plane. Bilinear interpolation,
    zero fill outside the original tile (as the reference). Returns (N, C, S, S) and (N, 1, S, S).
    """
    theta = torch.as_tensor(np.deg2rad(np.asarray(angles_deg, dtype=np.float64)), dtype=tiles.dtype)
    cos, sin = torch.cos(theta), torch.sin(theta)
    zero = torch.zeros_like(cos)
    # affine_grid maps output coordinates to input coordinates (inverse rotation)
    matrix = torch.stack(
        [torch.stack([cos, sin, zero], dim=1), torch.stack([-sin, cos, zero], dim=1)], dim=1
    ).to(tiles.device)
    grid = F.affine_grid(matrix, list(tiles.shape), align_corners=False)
    both = torch.cat([tiles, masks], dim=1)
    rotated = F.grid_sample(both, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return rotated[:, :-1], rotated[:, -1:]


def flip_pairs(
    tiles: torch.Tensor, masks: torch.Tensor, flips: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror the tiles (and masks) whose ``flips`` entry is True, along x."""
    index = torch.as_tensor(np.flatnonzero(flips), dtype=torch.long)
    if len(index) == 0:
        return tiles, masks
    tiles, masks = tiles.clone(), masks.clone()
    tiles[index] = tiles[index].flip(-1)
    masks[index] = masks[index].flip(-1)
    return tiles, masks


def reduce_masks(masks: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Block-mean reduction of (N, 1, S, S) masks to the network's output grid."""
    return F.avg_pool2d(masks, factor, factor)
