"""Slab context (2.5D): each slice seen with its ``K`` neighbours above and below.

A network with context ``K`` takes ``2K + 1`` consecutive z-slices as input channels (channel ``K``
is the slice it annotates; channel ``j`` is slice ``z + j - K``) and annotates the middle one, as
EMAN2's ``zthick`` and Ais' 2.5D inputs do. Beyond the first and last slice of the volume the
nearest slice stands in (edge replication), the same in training tiles and in applying, so both see
one function of the volume.
"""

from __future__ import annotations

import numpy as np

from tomoseg.errors import InvalidValue

MAX_CONTEXT = 8
"""The largest K accepted (17 slices): more is a 3D network's job."""


def check_context(k: int) -> None:
    """``k`` must be an integer 0 to :data:`MAX_CONTEXT`; else ValueError naming ``context``."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= MAX_CONTEXT:
        raise InvalidValue(f"`context` must be an integer 0 to {MAX_CONTEXT} (slices on each side), got {k!r}")


def context_indices(z0: int, z1: int, nz: int, k: int) -> np.ndarray:
    """(z1 - z0, 2k + 1) slice indices: row ``i`` holds slices ``z0 + i - k .. z0 + i + k``, clamped to
    ``0 .. nz - 1``."""
    z = np.arange(z0, z1)[:, None] + np.arange(-k, k + 1)[None, :]
    return np.clip(z, 0, nz - 1)


def with_context(slab: np.ndarray, z0: int, z1: int, k: int, first: int = 0, nz: int | None = None) -> np.ndarray:
    """Slices ``z0 .. z1 - 1`` with their context: (z1 - z0, 2k + 1, y, x) float32.

    ``slab`` holds slices ``first .. first + len(slab) - 1`` of a volume of ``nz`` slices (default:
    the slab is the whole volume) and must cover every index :func:`context_indices` asks for.
    """
    nz = len(slab) + first if nz is None else nz
    index = context_indices(z0, z1, nz, k) - first
    if index.min() < 0 or index.max() >= len(slab):
        raise InvalidValue(f"slices {z0}-{z1 - 1} with context {k} need slices outside the slab given")
    return np.asarray(slab, dtype=np.float32)[index]
