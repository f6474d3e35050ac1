"""Augmentation imitating other imaging conditions (tomoseg.ops.augment)."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from tomoseg.ops.augment import gaussian_gains, imaging_jitter
from tomoseg.steps.recipes import recipe
from tomoseg.steps.train import augmented_samples


def test_gaussian_gains_blur_as_a_periodic_gaussian_filter():
    img = np.random.default_rng(0).normal(size=(64, 64))
    for sigma in (1.5, 2.5):  # below ~1 pixel a sampled kernel is no longer Gaussian in Fourier space
        gains = gaussian_gains(64, torch.tensor([sigma], dtype=torch.float64))
        assert float(gains[0, 0, 0, 0]) == 1.0  # the mean is kept
        ours = torch.fft.irfft2(torch.fft.rfft2(torch.from_numpy(img)) * gains[0, 0], s=(64, 64)).numpy()
        theirs = ndimage.gaussian_filter(img, sigma, mode="wrap", truncate=8)
        assert np.abs(ours - theirs).max() < 0.02 * np.abs(theirs).max()  # sampled kernel vs continuous gains


def test_jitter_is_off_at_zero_seeded_and_bounded():
    tiles = torch.randn(200, 1, 32, 32) / 3
    assert imaging_jitter(tiles, 0.0, np.random.default_rng(0)) is tiles
    a = imaging_jitter(tiles, 1.0, np.random.default_rng(1), unit=1 / 3)
    b = imaging_jitter(tiles, 1.0, np.random.default_rng(1), unit=1 / 3)
    torch.testing.assert_close(a, b)
    assert a.abs().max() <= 1.0 + 1e-6  # the +-3 sd clamp, in the network's input units
    ratio = a.std(dim=(1, 2, 3)) / tiles.std(dim=(1, 2, 3))
    assert ratio.min() < 0.75 and ratio.max() > 1.4  # contrast, noise and blur vary from tile to tile


def test_jitter_changes_tiles_not_their_masks(particle_trainset):
    plain = augmented_samples(particle_trainset, recipe("default", negative_copies=1), np.random.default_rng(5))
    jittered = augmented_samples(particle_trainset, recipe("default", negative_copies=1, imaging_jitter=1.0),
                                 np.random.default_rng(5))
    torch.testing.assert_close(plain[1], jittered[1])  # the feature is where it was
    assert not torch.allclose(plain[0], jittered[0])
    assert recipe("default").imaging_jitter == 0  # off unless asked (docs/accuracy.md)
    with pytest.raises(ValueError, match="imaging_jitter"):
        recipe("default", imaging_jitter=-1)
