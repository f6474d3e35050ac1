import numpy as np
import pytest

from tomoseg.testing.metrics import dice, match_points


def test_dice():
    a = np.array([1, 1, 0, 0], bool)
    b = np.array([1, 0, 1, 0], bool)
    assert dice(a, b) == pytest.approx(0.5)
    assert dice(a, a) == 1.0 and dice(~a & a, ~a & a) == 1.0


def test_match_points_is_one_to_one_within_radius():
    truth = np.array([[0.0, 0, 0], [10, 0, 0]])
    picks = np.array([[1.0, 0, 0], [2, 0, 0], [30, 0, 0]])  # two picks near one truth, one far away
    precision, recall, tp = match_points(picks, truth, radius=3.0)
    assert tp == 1 and precision == pytest.approx(1 / 3) and recall == pytest.approx(0.5)
    assert match_points(np.zeros((0, 3)), truth, 3.0) == (1.0, 0.0, 0)
