"""Closing with a ball by distance transforms, against scipy's structuring-element closing."""

import numpy as np
import pytest
from scipy import ndimage
from skimage.morphology import ball

from tomoseg.ops.morphology import binary_closing_ball


@pytest.mark.parametrize("chunk", [1000, 5000])  # chunks of one slice; several slices and a partial last one
@pytest.mark.parametrize("radius", [1, 2, 3, 5])
def test_closing_equals_scipy_with_a_ball(radius, chunk, monkeypatch):
    from tomoseg.ops import morphology

    monkeypatch.setattr(morphology, "CHUNK_VOXELS", chunk)
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


@pytest.mark.parametrize("radius", [4, 130])  # int16 sums, and int32 ones (2 r^2 + 1 >= 2^15)
def test_within_distance_equals_the_euclidean_distance_transform(radius):
    from tomoseg.ops.morphology import within_distance

    mask = np.random.default_rng(radius).random((9, 140, 150)) > 0.9995  # ~90 isolated voxels
    if radius > 100:  # one voxel in a corner, so that the far corner lies beyond the radius
        mask[:] = False
        mask[0, 0, 0] = True
    expected = ndimage.distance_transform_edt(~mask) <= radius
    assert 0.05 < expected.mean() < 0.95  # the boundary crosses the volume
    np.testing.assert_array_equal(within_distance(mask, radius), expected)
