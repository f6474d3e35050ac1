"""A volume and its geometry: what every volume format reads into and writes from
(:mod:`tomoseg.io.mrc`, :mod:`tomoseg.io.tiff`)."""

from __future__ import annotations

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

    def label_value(self, key: str) -> str | None:
        """Value of a ``tomoseg KEY: value`` header label, if present (last wins)."""
        found = None
        for text in self.labels:
            if text.startswith(f"{LABEL_PREFIX}{key}:"):
                found = text.split(":", 1)[1].strip()
        return found
