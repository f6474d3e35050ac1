"""Putting a map from another tomogram back on its network's scale (issue #17, docs/accuracy.md).

Scores are divided by the network's amplitude on its training positives, so threshold 1 means "as
strong as an average training positive" on the training tomogram. On a tomogram imaged otherwise
(more noise, another defocus) the whole map can sit lower or higher: a network trained on clean data
scores real structures at 0.2-0.5 on noisy data. The rule measured best (``benchmarks/calibration.py``):

- at training, the **level** of the network's scores on its own training tiles: Otsu's threshold of
  the scores above 0 (the ReLU leaves most pixels at 0), which splits "structure" from "background"
  in the network's own units (:func:`level_of`);
- on a new map, the same level; the map is read on the training scale after dividing it by
  ``level(map) / level(training tiles)`` (:func:`calibration_scale`). Thresholding the calibrated map
  at 1 is thresholding the map at that ratio.

Levels come from a histogram with fixed bins (:func:`score_histogram`), so a map is measured while
streaming it slab by slab, in the same way as the tiles.
"""

from __future__ import annotations

import numpy as np

from tomoseg.errors import InvalidValue

FLOOR = 0.0
"""Scores at or below this are left out of the level (0: only the ReLU's zeros, so that a map scaled
by any factor has its level scaled by the same factor; a floor above 0 leaves out more of a dimmer
map's background and breaks that)."""
CEILING = 8.0
"""Scores above this count in the last bin."""
BINS = 1600
"""Histogram bins between FLOOR and CEILING (0.005 wide)."""


def score_histogram(scores: np.ndarray, floor: float = FLOOR) -> np.ndarray:
    """Counts (int64, :data:`BINS`) of the scores above 0 in [floor, CEILING] (higher ones in the last
    bin); histograms of slabs add up to the histogram of the volume."""
    values = np.asarray(scores, dtype=np.float32).ravel()
    values = np.minimum(values[(values >= floor) & (values > 0)], CEILING)
    return np.histogram(values, bins=BINS, range=(floor, CEILING))[0].astype(np.int64)


def level_from_histogram(counts: np.ndarray, floor: float = FLOOR) -> float | None:
    """Otsu's threshold of a :func:`score_histogram` made with ``floor`` (None when fewer than 100
    scores exceed it: a map with nothing in it has no level)."""
    counts = np.asarray(counts)
    if counts.sum() < 100 or np.count_nonzero(counts) < 2:
        return None
    from skimage.filters import threshold_otsu  # here: scikit-image's filters take a while to import

    edges = np.linspace(floor, CEILING, BINS + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    return float(threshold_otsu(hist=(counts, centres)))


def level_of(scores: np.ndarray, floor: float = FLOOR) -> float | None:
    """The level of a whole array of scores (see the module)."""
    return level_from_histogram(score_histogram(scores, floor), floor)


def calibration_scale(level: float | None, reference: float) -> float:
    """What a map of ``level`` is divided by to be on the scale of a network whose training tiles had
    level ``reference``. Raises ValueError when the map has no level (nearly nothing scores above
    FLOOR: there is nothing to calibrate on)."""
    if level is None:
        raise InvalidValue("almost nothing in the map scores above 0: it cannot be calibrated")
    if not reference > 0:
        raise InvalidValue(f"the reference level must be > 0, got {reference}")
    return level / reference
