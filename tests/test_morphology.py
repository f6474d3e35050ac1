"""Closing with a ball by distance transforms, against scipy's structuring-element closing."""

import numpy as np
import pytest
from scipy import ndimage
from skimage.morphology import ball

from tomoseg.ops.morphology import binary_closing_ball


@pytest.mark.parametrize("radius", [1, 2, 3, 5])
def test_closing_equals_scipy_with_a_ball(radius, monkeypatch):
    from tomoseg.ops import morphology

    monkeypatch.setattr(morphology, "CHUNK_VOXELS", 1000)  # several chunks per pass
    rng = np.random.default_rng(radius)
    smooth = ndimage.gaussian_filter(rng.standard_normal((19, 23, 21)), 1.5)
    mask = smooth > 0.12  # blobs with gaps and holes, touching the volume's faces
    expected = ndimage.binary_closing(np.pad(mask, radius), structure=ball(radius))
    expected = expected[radius:-radius, radius:-radius, radius:-radius]
    got = binary_closing_ball(mask, radius)
    assert expected.sum() > mask.sum()  # the closing fills something here
    np.testing.assert_array_equal(got, expected)


def test_empty_and_radius_zero():
    mask = np.zeros((5, 6, 7), bool)
    assert not binary_closing_ball(mask, 3).any()
    mask[2, 3, 4] = True
    np.testing.assert_array_equal(binary_closing_ball(mask, 0), mask)
