"""A trained feature network with everything needed to apply it correctly."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tomoseg.nn.network import SegNet

FORMAT_VERSION = 1
"""Version of the model file layout (tomoseg.io.model_file)."""


@dataclass(frozen=True)
class Model:
    """One feature's network and its provenance.

    amplitude: mean output on the training positives (scores are divided by it).
    voxel_size: A/voxel of the training tomogram; preprocessing: its
    PreprocessConfig as a dict (None if unknown). training: recipe, losses and
    training-set summary. examples: a few (tile, label, output) arrays.
    """

    net: SegNet
    amplitude: float
    name: str
    voxel_size: float
    preprocessing: dict | None = None
    training: dict = field(default_factory=dict)
    examples: dict[str, np.ndarray] = field(default_factory=dict)
    colour: str | None = None
    level: float | None = None
    """Otsu level of the network's scores on its training tiles (:mod:`tomoseg.steps.calibrate`);
    None for models made before it was recorded."""
