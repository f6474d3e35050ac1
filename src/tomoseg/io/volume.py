"""A volume and its geometry: what every volume format reads into and writes from
(:mod:`tomoseg.io.mrc`, :mod:`tomoseg.io.tiff`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

LABEL_PREFIX = "tomoseg "
"""tomoseg's header labels read ``tomoseg KEY: value``."""


@dataclass(frozen=True)
class Volume:
    """A volume and its geometry.

    data: (z, y, x) array (may be a read-only memory map). voxel_size: A/voxel
    (isotropic). origin: MRC header origin (x, y, z) in A. labels: the header's
    text labels.
    """

    data: np.ndarray
    voxel_size: float
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    labels: tuple[str, ...] = field(default_factory=tuple)
    closer: Callable[[], None] | None = field(default=None, compare=False, repr=False)
    """Releases the open file behind a memory-mapped ``data`` (:meth:`close`)."""

    def close(self) -> None:
        """Close the file behind a memory-mapped volume (``read_volume(mmap=True)``); harmless twice
        or for a volume in memory. Use the volume as a context manager to close it at the end."""
        if self.closer is not None:
            self.closer()

    def __enter__(self) -> Volume:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def label_value(self, key: str) -> str | None:
        """Value of a ``tomoseg KEY: value`` header label, if present (last wins)."""
        found = None
        for text in self.labels:
            if text.startswith(f"{LABEL_PREFIX}{key}:"):
                found = text.split(":", 1)[1].strip()
        return found
