"""2D classification of projections against planted ground truth.

Two shapes made of Gaussian blobs, an asymmetric "L" and a ring, at random
in-plane rotations and small shifts, with Gaussian noise (SNR 1).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tomoseg.errors import Cancelled
from tomoseg.steps.classify2d import (
    Classes2D,
    Classify2DConfig,
    align_images,
    circular_mask,
    classify2d,
    transform_images,
    z_projections,
)
from tomoseg.workflows.class_figures import class_montage

SIZE = 32
N_EACH = 60
L_POINTS = np.array([[0, 0], [0, -3], [0, -6], [0, -9], [3, 0], [6, 0]], dtype=float)  # (x, y)
L_POINTS -= L_POINTS.mean(axis=0)  # centroid at the box centre
RING_POINTS = np.array([[7 * np.cos(t), 7 * np.sin(t)] for t in np.arange(12) * np.pi / 6])


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small tensors: one thread is fastest (and immune to a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pattern(points: np.ndarray, angle: float = 0.0, shift=(0.0, 0.0), size: int = SIZE) -> np.ndarray:
    """Blobs at ``points`` (x, y) turned by ``angle`` degrees (from +x towards +y) about
    ``size // 2``, then moved by ``shift`` (dy, dx)."""
    t = np.radians(angle)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    xy = points @ rot.T + np.array(shift)[::-1]
    yy, xx = np.mgrid[:size, :size].astype(float)
    c = size // 2
    img = np.zeros((size, size))
    for x, y in xy:
        img += np.exp(-((xx - c - x) ** 2 + (yy - c - y) ** 2) / (2 * 1.6**2))
    return img


def make_set(seed: int = 1, n_each: int = N_EACH, snr: float = 1.0):
    """Noisy images, truth (0 = L, 1 = ring), planted angles and shifts."""
    rng = np.random.default_rng(seed)
    clean, truth, angles, shifts = [], [], [], []
    for label, points in enumerate([L_POINTS, RING_POINTS]):
        for _ in range(n_each):
            angle, shift = rng.uniform(0, 360), rng.uniform(-2, 2, 2)
            clean.append(pattern(points, angle, shift))
            truth.append(label)
            angles.append(angle)
            shifts.append(shift)
    clean = np.array(clean)
    noise_sd = clean.std(axis=(1, 2)).mean() / np.sqrt(snr)
    noisy = clean + rng.standard_normal(clean.shape) * noise_sd
    return noisy, np.array(truth), np.array(angles), np.array(shifts)


def purity(labels: np.ndarray, truth: np.ndarray) -> float:
    return sum(np.bincount(truth[labels == j]).max() for j in np.unique(labels)) / len(truth)


def circular_deviation(degrees: np.ndarray) -> np.ndarray:
    """Absolute deviation (degrees) of each angle from the circular mean."""
    z = np.exp(1j * np.radians(degrees))
    return np.degrees(np.abs(np.angle(z / np.mean(z))))


def best_match(image: np.ndarray, reference: np.ndarray) -> float:
    """Highest normalised correlation of ``image`` with ``reference`` turned every
    2 degrees and shifted anywhere (circular)."""
    mask = circular_mask(SIZE)
    a = (image - image[mask].mean()) * mask
    a /= np.linalg.norm(a)
    turned = transform_images(np.repeat(reference[None], 180, axis=0), np.arange(180) * 2.0)
    turned = (turned - turned[:, mask].mean(axis=1)[:, None, None]) * mask
    turned /= np.linalg.norm(turned, axis=(1, 2))[:, None, None]
    cc = np.fft.irfft2(np.fft.rfft2(a)[None] * np.conj(np.fft.rfft2(turned)), s=(SIZE, SIZE))
    return float(cc.max())


@pytest.fixture(scope="module")
def data():
    return make_set()


@pytest.fixture(scope="module")
def result(data) -> Classes2D:
    images, *_ = data
    return classify2d(images, Classify2DConfig(n_classes=2, seed=0))


def test_result_shapes(data, result):
    images, *_ = data
    n = len(images)
    assert result.labels.shape == (n,) and result.labels.dtype == np.int64
    assert result.angles.shape == (n,) and np.all((result.angles >= 0) & (result.angles < 360))
    assert result.shifts.shape == (n, 2)
    assert result.averages.shape == (2, SIZE, SIZE)
    assert result.score.shape == (n,) and np.all(np.abs(result.score) <= 1 + 1e-9)
    assert result.counts.sum() == n
    assert list(result.counts) == sorted(result.counts, reverse=True)  # class 0 is the largest
    np.testing.assert_array_equal(result.counts, np.bincount(result.labels))


def test_separates_the_two_shapes(data, result):
    _, truth, _, _ = data
    assert purity(result.labels, truth) >= 0.9


def test_recovered_angles_undo_the_planted_ones(data, result):
    """The alignment angle undoes the planted rotation up to the class frame's own
    angle: planted + recovered is constant mod 360 (a mirrored convention would
    make it spread all over)."""
    _, truth, planted, planted_shifts = data
    ell = truth == 0
    deviation = circular_deviation(planted[ell] + result.angles[ell])
    assert np.mean(deviation < 15) >= 0.9
    # And the shifts: the L's centre (planted at c + t) lands at c + s + R(angle) t, the same for all.
    a = np.radians(result.angles[ell])
    t = planted_shifts[ell]
    landed_x = result.shifts[ell, 1] + np.cos(a) * t[:, 1] - np.sin(a) * t[:, 0]
    landed_y = result.shifts[ell, 0] + np.sin(a) * t[:, 1] + np.cos(a) * t[:, 0]
    spread = np.hypot(landed_x - np.median(landed_x), landed_y - np.median(landed_y))
    assert np.mean(spread < 1.5) >= 0.9


def test_class_average_resembles_the_clean_pattern(data, result):
    images, truth, _, _ = data
    ell_class = np.bincount(result.labels[truth == 0]).argmax()
    clean = pattern(L_POINTS)
    aligned = best_match(result.averages[ell_class], clean)
    unaligned = best_match(images[truth == 0].mean(axis=0), clean)
    # (The rotationally blurred unaligned average of these compact blobs still reaches ~0.85.)
    assert aligned > 0.95
    assert aligned > unaligned + 0.1
    # Members fit their own average better than the other class's.
    members = result.labels == ell_class
    assert np.median(result.score[members]) > 0.3


def test_same_seed_same_result(data, result):
    images, *_ = data
    again = classify2d(images, Classify2DConfig(n_classes=2, seed=0))
    for name in ("labels", "angles", "shifts", "averages", "counts", "score"):
        np.testing.assert_array_equal(getattr(again, name), getattr(result, name), err_msg=name)


def test_too_few_images():
    images, *_ = make_set(n_each=1)
    with pytest.raises(ValueError, match="cannot make 3 classes from 2 images"):
        classify2d(images, Classify2DConfig(n_classes=3))


def test_more_classes_than_distinct_images():
    """Identical images cannot fill every class: no crash, no empty class reported."""
    images = np.repeat(pattern(L_POINTS)[None], 5, axis=0)
    res = classify2d(images, Classify2DConfig(n_classes=3, iterations=2))
    assert res.counts.sum() == 5 and np.all(res.counts > 0)
    assert set(np.unique(res.labels)) == set(range(len(res.counts)))
    assert res.averages.shape == (len(res.counts), SIZE, SIZE)


def test_progress_and_cancel(data):
    images = data[0][::4]
    calls = []
    classify2d(images, Classify2DConfig(n_classes=2, iterations=2), progress=lambda d, t, m="": calls.append((d, t)))
    assert calls[-1] == (4, 4) and [d for d, _ in calls] == [1, 2, 3, 4]

    def cancel(done, total, message=""):
        raise Cancelled()

    with pytest.raises(Cancelled):
        classify2d(images, Classify2DConfig(n_classes=2, iterations=2), progress=cancel)


@pytest.mark.parametrize(
    "field, value",
    [("n_classes", 0), ("iterations", 0), ("angular_step", 0.0), ("max_shift", 0.5), ("mask_radius", 0.0),
     ("lowpass", 0.6), ("pca_components", 0)],
)
def test_config_validation(field, value):
    with pytest.raises(ValueError, match=field):
        Classify2DConfig(**{field: value})


def test_config_round_trip():
    config = Classify2DConfig(n_classes=3, lowpass=0.0)
    assert Classify2DConfig.from_dict(config.to_dict()) == config


def test_align_inverts_a_known_transform():
    reference = pattern(L_POINTS)
    image = transform_images(reference[None], [40.0], [[1.5, -2.0]])  # turned by 40, then moved
    angles, shifts, _ = align_images(image, reference[None], circular_mask(SIZE), 6.0, 3.2)
    assert abs((angles[0, 0] + 40.0 + 180) % 360 - 180) < 1.5
    back = transform_images(image, angles[:, 0], shifts[:, 0])[0]
    assert np.corrcoef(back.ravel(), reference.ravel())[0, 1] > 0.98


def test_z_projections_of_subtomograms():
    rng = np.random.default_rng(5)
    planes, truth, _, _ = make_set(seed=2, n_each=30, snr=1e6)  # clean, noise added in 3D
    depth = SIZE
    profile = np.exp(-((np.arange(depth) - depth // 2) ** 2) / (2 * 3.0**2))  # particle ~ central slices
    stack = planes[:, None] * profile[None, :, None, None]
    stack = stack + rng.standard_normal(stack.shape) * 0.15
    stack[:, :4] += 50.0  # junk far from the centre in z: excluded by thickness
    projections = z_projections(stack, thickness=16)
    assert projections.shape == (len(planes), SIZE, SIZE) and projections.dtype == np.float32
    mask = circular_mask(SIZE)
    np.testing.assert_allclose(projections[:, mask].mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(projections[:, mask].std(axis=1), 1, atol=1e-5)
    # The sum over the central 16 slices, normalised.
    central = stack[:, 8:24].sum(axis=1)
    expected = (central - central[:, mask].mean(axis=1)[:, None, None]) / central[:, mask].std(axis=1)[:, None, None]
    np.testing.assert_allclose(projections, expected, atol=1e-4)
    assert z_projections(stack).shape == (len(planes), SIZE, SIZE)  # all slices
    res = classify2d(projections, Classify2DConfig(n_classes=2))
    assert purity(res.labels, truth) >= 0.9
    with pytest.raises(ValueError, match="thickness"):
        z_projections(stack, thickness=0)
    with pytest.raises(ValueError, match="subtomograms"):
        z_projections(planes)


def test_class_montage_png(tmp_path, result):
    path = tmp_path / "classes.png"
    class_montage(path, result.averages, result.counts, title="test classes")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("*.part"))
