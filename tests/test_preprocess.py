import numpy as np
import pytest

from tomoseg.steps.preprocess import PreprocessConfig, normalise, preprocess, resample


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
    assert "resample" not in PreprocessConfig().describe()
    cfg = PreprocessConfig(resample=10.0)
    assert PreprocessConfig.parse(cfg.describe()) == cfg
    with pytest.raises(ValueError):
        PreprocessConfig(bin=0)
    with pytest.raises(ValueError):
        PreprocessConfig(resample=0.0)


def test_resampling_keeps_physical_positions():
    z, y, x = np.mgrid[:30, :40, :50] * 10.52  # A
    blob = np.exp(-((z - 150.0) ** 2 + (y - 200.0) ** 2 + (x - 333.0) ** 2) / (2 * 40.0**2)).astype(np.float32)
    out = resample(blob, 10.52, 10.0)
    assert out.dtype == np.float32
    assert out.shape == tuple(int(np.floor((n - 1) * 1.052)) + 1 for n in blob.shape) == (31, 42, 52)
    peak = np.array(np.unravel_index(np.argmax(out), out.shape)) * 10.0
    assert np.allclose(peak, [150, 200, 333], atol=10.0)  # within one voxel (integer argmax)
    zz, yy, xx = np.mgrid[:31, :42, :52] * 10.0
    truth = np.exp(-((zz - 150.0) ** 2 + (yy - 200.0) ** 2 + (xx - 333.0) ** 2) / (2 * 40.0**2))
    assert np.abs(out - truth).max() < 0.01  # the spline reproduces the smooth blob
    assert resample(blob, 10.0, 10.0).shape == blob.shape


def test_preprocess_resamples_after_filtering(small_tomo):
    out = preprocess(small_tomo.volume, 10.0, PreprocessConfig(bin=2, resample=25.0))
    assert out.shape == tuple(int(np.floor((n // 2 - 1) * 20 / 25)) + 1 for n in small_tomo.volume.shape)
    assert PreprocessConfig(bin=2, resample=25.0).output_voxel_size(10.0) == 25.0
    assert abs(out.mean()) < 0.01 and out.std() == pytest.approx(1.0, abs=0.05)  # normalised after resampling


def test_shrinking_without_a_matching_low_pass_warns(small_tomo):
    with pytest.warns(UserWarning, match="Nyquist"):
        preprocess(small_tomo.volume, 10.0, PreprocessConfig(lowpass=None, resample=15.0))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        preprocess(small_tomo.volume, 10.0, PreprocessConfig(lowpass=30.0, resample=15.0))
        preprocess(small_tomo.volume, 10.0, PreprocessConfig(lowpass=None, resample=8.0))  # enlarging


def test_only_the_band_pass_and_clamp_must_match_a_model():
    base = PreprocessConfig()
    assert base.same_filters(PreprocessConfig(bin=2, resample=10.0, invert=True))
    assert not base.same_filters(PreprocessConfig(lowpass=40.0))
    assert not base.same_filters(PreprocessConfig(highpass=None))
    assert not base.same_filters(PreprocessConfig(clamp=2.0))


def test_binning_keeps_positions_in_angstrom(tmp_path):
    """A bright voxel block at raw voxels 4-5 is binned voxel 2, which must sit at the same A."""
    from tomoseg.io.mrc import read_volume, write_volume
    from tomoseg.workflows.pipeline import preprocess_file

    raw = np.zeros((8, 8, 8), np.float32)
    raw[4:6, 4:6, 4:6] = 1.0  # centre at raw index 4.5
    write_volume(tmp_path / "raw.mrc", raw, 10.0, (100.0, 200.0, 300.0))
    cfg = PreprocessConfig(bin=2, lowpass=None, highpass=None, clamp=None)
    preprocess_file(tmp_path / "raw.mrc", tmp_path / "bin.mrc", cfg)
    out = read_volume(tmp_path / "bin.mrc")
    assert out.voxel_size == 20.0
    peak = np.unravel_index(np.argmax(out.data), out.data.shape)
    assert peak == (2, 2, 2)
    raw_angst = 4.5 * 10.0 + np.array([100.0, 200.0, 300.0])
    np.testing.assert_allclose(2 * out.voxel_size + np.asarray(out.origin), raw_angst)


def test_reaching_a_voxel_size_bins_by_an_integer_or_resamples():
    base = PreprocessConfig(lowpass=25.0, invert=True)
    assert base.reaching(2.5, 10.0) == PreprocessConfig(lowpass=25.0, invert=True, bin=4)
    assert base.reaching(3.33, 10.0) == PreprocessConfig(lowpass=25.0, invert=True, bin=3)  # 9.99 A: within 1 %
    assert base.reaching(2.7, 10.0) == PreprocessConfig(lowpass=25.0, invert=True, bin=3, resample=10.0)
    assert base.reaching(12.0, 10.0) == PreprocessConfig(lowpass=25.0, invert=True, bin=1, resample=10.0)
    for raw in (2.5, 2.7, 3.33, 12.0):
        assert base.reaching(raw, 10.0).output_voxel_size(raw) == pytest.approx(10.0, rel=0.01)


def test_resample_is_scipys_cubic_spline_with_a_float32_prefilter():
    from scipy import ndimage

    volume = np.random.default_rng(0).normal(size=(20, 45, 33)).astype(np.float32)
    for target in (13.7, 7.3):
        out = resample(volume, 10.0, target)
        expected = ndimage.affine_transform(volume, np.full(3, target / 10.0), output_shape=out.shape,
                                            output=np.float32, order=3, mode="nearest")
        np.testing.assert_allclose(out, expected, atol=1e-5 * np.abs(expected).max())


def test_binning_an_integer_volume_in_slabs():
    from tomoseg.ops.binning import bin_volume

    raw = np.random.default_rng(1).integers(-100, 100, size=(13, 20, 22)).astype(np.int16)
    for slab_bytes in (1, 10**9):  # one binned slice per slab, and all at once
        out = bin_volume(raw, 3, slab_bytes=slab_bytes)
        assert out.shape == (4, 6, 7) and out.dtype == np.float32
        manual = raw[:12, :18, :21].astype(np.float64).reshape(4, 3, 6, 3, 7, 3).mean(axis=(1, 3, 5))
        np.testing.assert_allclose(out, manual, rtol=1e-6)
