"""Consensus and uncertainty across annotators (METHOD.md section 6).

Several annotators each train a network for the same feature; applied to one
tomogram, their amplitude-normalised score maps give

- the **consensus**: the mean score (on-feature about 1, as each map, so the usual
  threshold 1 still applies, and it can be merged and picked like any score map);
- the **spread**: the standard deviation of the scores (0 where every map gives the
  same value);
- the **disagreement**: how evenly the maps split at the threshold, ``1 - |2 v - 1|``
  with ``v`` the fraction of maps at or above it (0: unanimous, 1: half and half).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from tomoseg.errors import InvalidValue


class Consensus(NamedTuple):
    """Per-voxel consensus (mean), spread (standard deviation) and disagreement, float32."""

    mean: np.ndarray
    spread: np.ndarray
    disagreement: np.ndarray


def consensus_scores(scores: Sequence[np.ndarray], threshold: float = 1.0) -> Consensus:
    """Consensus, spread and disagreement of K >= 2 score maps of one shape."""
    if len(scores) < 2:
        raise InvalidValue("a consensus needs at least two score maps")
    shape = scores[0].shape
    for k, s in enumerate(scores[1:], start=2):
        if s.shape != shape:
            raise InvalidValue(f"score map {k} has shape {s.shape}, map 1 has {shape}")
    total = np.zeros(shape, dtype=np.float64)
    squares = np.zeros(shape, dtype=np.float64)
    votes = np.zeros(shape, dtype=np.int32)
    for s in scores:
        s = np.asarray(s, dtype=np.float64)
        total += s
        squares += s * s
        votes += s >= threshold
    n = len(scores)
    mean = total / n
    spread = np.sqrt(np.maximum(squares / n - mean * mean, 0.0))
    disagreement = 1.0 - np.abs(2.0 * votes / n - 1.0)
    return Consensus(mean.astype(np.float32), spread.astype(np.float32), disagreement.astype(np.float32))
