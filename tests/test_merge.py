"""The merge rule: argmax above the threshold (steps/merge)."""

import numpy as np
import pytest

from tomoseg.steps.merge import merge_scores


def test_merge_takes_the_highest_score_above_threshold():
    a = np.array([[0.5, 1.5, 2.0, 3.0, 1.0]], dtype=np.float32)
    b = np.array([[0.9, 1.2, 2.5, 0.0, 1.0]], dtype=np.float32)
    labels = merge_scores([a, b], threshold=1.0)
    np.testing.assert_array_equal(labels, [[0, 1, 2, 1, 1]])  # tie -> the earlier map
    assert merge_scores([a, b], threshold=2.2).tolist() == [[0, 0, 2, 1, 0]]
    with pytest.raises(ValueError):
        merge_scores([a, b[:, :3]])
