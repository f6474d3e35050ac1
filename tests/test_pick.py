"""Picking particles from a score map (steps/pick)."""

import numpy as np
import pytest

from tomoseg.steps.pick import (
    PickConfig,
    find_components,
    pick_particles,
    suppress_close,
)


def _ball(shape, centre, radius, value=2.0):
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    d2 = (z - centre[2]) ** 2 + (y - centre[1]) ** 2 + (x - centre[0]) ** 2
    return np.where(d2 <= radius**2, value * (1.5 - np.sqrt(d2) / radius / 2), 0.0).astype(np.float32)



def test_pick_finds_planted_particles_at_their_maxima():
    shape = (40, 80, 80)
    centres = [(20, 20, 10), (60, 25, 20), (40, 60, 30)]  # x, y, z
    scores = sum(_ball(shape, c, 6) for c in centres)
    picks = pick_particles(scores, 10.0, PickConfig(diameter=120.0))
    assert len(picks) == 3
    got = sorted(map(tuple, picks.xyz.astype(int).tolist()))
    assert got == sorted(centres)
    assert np.all(picks.score > 0) and np.all(np.diff(picks.score) <= 0)  # strongest first



def test_single_component_is_not_lost_to_an_off_by_one():
    scores = _ball((20, 30, 30), (15, 15, 10), 4)
    assert len(find_components(scores, 1.0)) == 1
    assert len(pick_particles(scores, 10.0, PickConfig(diameter=60.0))) == 1



def test_small_components_are_dropped_by_physical_volume():
    shape = (30, 60, 60)
    scores = _ball(shape, (15, 15, 15), 6) + _ball(shape, (45, 45, 15), 2)
    # ball radii 6 and 2 voxels: ~900 and ~33 voxels; a 100 A particle's default minimum is a
    # 50 A sphere = 65 voxels at 10 A/voxel, but 8 voxels at 20 A/voxel
    assert len(pick_particles(scores, 10.0, PickConfig(diameter=100.0, min_size=0.0))) == 2
    assert len(pick_particles(scores, 10.0, PickConfig(diameter=100.0))) == 1
    assert len(pick_particles(scores, 20.0, PickConfig(diameter=100.0))) == 2
    assert PickConfig(diameter=200.0).min_size_a3 == pytest.approx(np.pi / 6 * 100.0**3)



def test_close_peaks_are_suppressed_and_edge_margin_applies():
    xyz = np.array([[10.0, 10, 10], [13, 10, 10], [30, 10, 10]])
    kept = suppress_close(xyz, np.array([1, 0, 2]), min_distance=5.0)
    assert kept.tolist() == [1, 2]
    shape = (30, 60, 60)
    scores = _ball(shape, (5, 30, 15), 4) + _ball(shape, (30, 30, 15), 4)
    assert len(pick_particles(scores, 10.0, PickConfig(diameter=80.0, edge=0.0))) == 2
    assert len(pick_particles(scores, 10.0, PickConfig(diameter=80.0, edge=80.0))) == 1



def test_touching_particles_are_split_unless_asked_not_to():
    """Two overlapping balls (centres 10 voxels apart, radius 7) form one component: split finds both
    centres, each with its own mass; the paper's rule (split=False) finds one; a single ball is never split."""
    shape = (30, 40, 60)
    a, b = (25, 20, 15), (35, 20, 15)
    scores = np.maximum(_ball(shape, a, 7), _ball(shape, b, 7))
    assert len(find_components(scores, 1.0)) == 1
    config = PickConfig(diameter=140.0, min_distance=70.0, min_size=0.0)
    split = pick_particles(scores, 10.0, config)
    assert sorted(map(tuple, split.xyz.astype(int).tolist())) == [a, b]
    assert split.score[0] == pytest.approx(split.score[1], rel=0.1)  # about half the mass each
    whole = pick_particles(scores, 10.0, PickConfig(diameter=140.0, min_distance=70.0, min_size=0.0, split=False))
    assert len(whole) == 1 and whole.score[0] == pytest.approx(split.score.sum())
    assert len(pick_particles(_ball(shape, a, 7), 10.0, config)) == 1
    # peaks closer than min_distance stay one particle
    assert len(pick_particles(scores, 10.0, PickConfig(diameter=140.0, min_distance=120.0, min_size=0.0))) == 1



def test_no_components_gives_no_picks():
    picks = pick_particles(np.zeros((5, 10, 10), np.float32), 10.0)
    assert len(picks) == 0 and picks.xyz.shape == (0, 3)



def test_split_keeps_components_too_small_to_hold_two_peaks_whole():
    """Noise blobs narrower than min_distance are never split (the same candidates as the paper's
    rule), while two touching balls in the same map are."""
    from scipy import ndimage

    from tomoseg.steps.pick import split_components

    rng = np.random.default_rng(0)
    noise = ndimage.gaussian_filter(rng.normal(size=(20, 64, 96)), 1.0)
    noise /= noise.std()
    noise[:, :, 64:] = 0.0
    z, y, x = np.mgrid[:20, :64, :32]
    balls = np.maximum(9.0 - np.sqrt((z - 10) ** 2 + (y - 30) ** 2 + (x - 10) ** 2),
                       9.0 - np.sqrt((z - 10) ** 2 + (y - 30) ** 2 + (x - 22) ** 2))
    scores = noise.copy()
    scores[:, :, 64:] = balls
    split = split_components(scores, 1.5, 8.0)
    whole = find_components(scores, 1.5)

    def rows(p, keep):
        table = np.c_[p.xyz, p.score, p.size][keep(p.xyz[:, 0])]
        return table[np.lexsort(table.T[::-1])]

    in_noise = lambda x: x < 64  # noqa: E731
    assert len(rows(whole, in_noise)) > 50
    np.testing.assert_allclose(rows(split, in_noise), rows(whole, in_noise))
    assert len(rows(whole, lambda x: x >= 64)) == 1
    centres = sorted(tuple(r[:3].astype(int)) for r in rows(split, lambda x: x >= 64))
    assert centres == [(74, 30, 10), (86, 30, 10)]



def test_components_match_scipy_and_ties_go_to_the_first_voxel():
    from scipy import ndimage

    from tomoseg.steps.pick import find_components_of

    rng = np.random.default_rng(4)
    scores = ndimage.gaussian_filter(rng.standard_normal((20, 40, 40)), 1.5).astype(np.float32) * 6
    labels, n = ndimage.label(scores >= 0.5)
    c = find_components_of(scores, labels)
    index = np.arange(1, n + 1)
    assert n > 20
    assert np.array_equal(c.xyz[:, ::-1], np.array(ndimage.maximum_position(scores, labels, index)))
    assert np.allclose(c.peak, ndimage.maximum(scores, labels, index))
    assert np.allclose(c.score, ndimage.sum(scores.astype(np.float64), labels, index))
    assert np.array_equal(c.size, ndimage.sum(np.ones_like(labels), labels, index))
    other = find_components_of(scores.astype(np.float64), labels.astype(np.uint16))  # other dtypes, same result
    assert np.array_equal(other.xyz, c.xyz) and np.allclose(other.peak, c.peak)
    ints = find_components_of(np.round(scores * 10).astype(np.int16) - 40, labels)  # integer scores, negative too
    assert len(ints) == n and np.all(ints.peak == np.round(c.peak * 10) - 40)
    flat = np.zeros((1, 2, 6), np.float32)
    flat[0, 1, 1:5] = 2.0  # one region, four voxels at its maximum
    assert np.array_equal(find_components_of(flat, (flat > 0).astype(np.int32)).xyz, [[1.0, 1.0, 0.0]])
    with pytest.raises(ValueError, match="non-empty"):
        find_components_of(flat, np.where(flat > 0, 2, 0))  # region 1 is empty
