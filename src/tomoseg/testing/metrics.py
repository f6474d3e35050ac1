"""Scores against known ground truth (demo, benchmarks, tests)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice coefficient of two boolean arrays (1.0 when both are empty)."""
    total = np.count_nonzero(pred) + np.count_nonzero(truth)
    return 2.0 * np.count_nonzero(pred & truth) / total if total else 1.0


def match_points(picks: np.ndarray, truth: np.ndarray, radius: float) -> tuple[float, float, int]:
    """One-to-one matching of (n, 3) points within ``radius``: (precision, recall, matched)."""
    if len(picks) == 0 or len(truth) == 0:
        return (0.0 if len(picks) else 1.0), 0.0, 0
    d = cdist(picks, truth)
    cost = np.where(d <= radius, d, 1e6)
    rows, cols = linear_sum_assignment(cost)
    tp = int(np.count_nonzero(cost[rows, cols] <= radius))
    return tp / len(picks), tp / len(truth), tp
