"""Merging normalised score maps into one label map (METHOD.md section 6)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tomoseg.errors import InvalidValue


def label_dtype(n_features: int) -> np.dtype:
    """Smallest MRC integer type (signed, modes 0 and 1) for labels 0..n_features."""
    return np.dtype(np.int8) if n_features < 128 else np.dtype(np.int16)


def merge_scores(scores: Sequence[np.ndarray], threshold: float = 1.0) -> np.ndarray:
    """Assign each voxel to the feature with the highest score, if it is >= threshold.

    ``scores``: K arrays of one shape (amplitude-normalised score maps).
    Returns labels of that shape: k (1-based) for the k-th input, 0 where no
    score reaches ``threshold``. Ties go to the earlier input.
    """
    if len(scores) == 0:
        raise InvalidValue("merge needs at least one score map")
    shape = scores[0].shape
    for k, s in enumerate(scores[1:], start=2):
        if s.shape != shape:
            raise InvalidValue(f"score map {k} has shape {s.shape}, map 1 has {shape}")
    best = np.full(shape, -np.inf, dtype=np.float32)
    labels = np.zeros(shape, dtype=label_dtype(len(scores)))
    for k, s in enumerate(scores, start=1):
        s = np.asarray(s, dtype=np.float32)
        better = (s > best) & (s >= threshold)
        labels[better] = k
        np.maximum(best, s, out=best)
    return labels
