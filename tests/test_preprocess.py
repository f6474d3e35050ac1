import numpy as np
import pytest

from tomoseg.steps.preprocess import PreprocessConfig, normalise, preprocess


def test_preprocess_normalises_and_clamps(small_tomo):
    out = preprocess(small_tomo.volume * 7 + 100, small_tomo.voxel_size, PreprocessConfig())
    assert out.dtype == np.float32 and out.shape == small_tomo.volume.shape
    assert out.max() <= 3.0 and out.min() >= -3.0
    # mean 0 / sd 1 before the clamp: little changes after it
    assert abs(out.mean()) < 0.05 and 0.9 < out.std() <= 1.0


def test_preprocess_bins_and_inverts(small_tomo):
    cfg = PreprocessConfig(bin=2, invert=True, lowpass=None, highpass=None, clamp=None)
    out = preprocess(small_tomo.volume, 10.0, cfg)
    assert out.shape == (16, 64, 64)
    assert cfg.output_voxel_size(10.0) == 20.0
    plain = preprocess(small_tomo.volume, 10.0, PreprocessConfig(bin=2, lowpass=None, highpass=None, clamp=None))
    np.testing.assert_allclose(out, -plain, atol=1e-5)


def test_lowpass_is_physical_not_in_pixels(small_tomo):
    """The same cutoff in A removes the same physical band at another voxel size."""
    cfg = PreprocessConfig(lowpass=60.0, highpass=None, clamp=None)
    fine = preprocess(small_tomo.volume, 10.0, cfg)
    coarse_as_if = preprocess(small_tomo.volume, 20.0, cfg)  # claims bigger voxels: less smoothing in pixels
    rough = lambda v: np.abs(np.diff(v, axis=-1)).mean()
    assert rough(fine) < rough(coarse_as_if)


def test_normalise_rejects_a_constant_volume():
    with pytest.raises(ValueError, match="constant"):
        normalise(np.ones((2, 4, 4)))


def test_config_describe_parse_round_trip():
    cfg = PreprocessConfig(lowpass=15.5, highpass=None, bin=3, invert=True, clamp=2.5)
    assert PreprocessConfig.parse(cfg.describe()) == cfg
    assert PreprocessConfig.parse(PreprocessConfig().describe()) == PreprocessConfig()
    with pytest.raises(ValueError):
        PreprocessConfig(bin=0)
