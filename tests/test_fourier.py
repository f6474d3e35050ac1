import numpy as np
import pytest

from tomoseg.ops.binning import bin_volume
from tomoseg.ops.fourier import gaussian_filter_fourier, gaussian_transfer


def _gain_at(h: np.ndarray, shape, voxel_size: float, freq: float) -> float:
    """Transfer value at the x-axis frequency closest to ``freq`` (1/A)."""
    fx = np.fft.rfftfreq(shape[-1], d=voxel_size)
    return float(h[(0,) * (len(shape) - 1) + (int(np.argmin(abs(fx - freq))),)]), fx[np.argmin(abs(fx - freq))]


@pytest.mark.parametrize("voxel_size", [5.0, 10.0, 23.2])
def test_lowpass_gain_is_one_at_dc_and_one_over_e_at_cutoff(voxel_size):
    shape = (8, 16, 200)
    cutoff = 8 * voxel_size
    h = gaussian_transfer(shape, voxel_size, lowpass=cutoff)
    assert h[0, 0, 0] == pytest.approx(1.0)
    gain, f = _gain_at(h, shape, voxel_size, 1 / cutoff)
    assert gain == pytest.approx(np.exp(-((f * cutoff) ** 2)), rel=1e-5)
    assert abs(f * cutoff - 1) < 0.03 and gain == pytest.approx(np.exp(-1), abs=0.02)


def test_highpass_removes_dc_and_has_gain_one_minus_one_over_e_at_cutoff():
    shape = (4, 4, 400)
    h = gaussian_transfer(shape, 10.0, highpass=200.0)
    assert h[0, 0, 0] == 0.0
    gain, f = _gain_at(h, shape, 10.0, 1 / 200.0)
    assert f == pytest.approx(1 / 200.0)
    assert gain == pytest.approx(1 - np.exp(-1), rel=1e-5)


def test_filter_is_radially_symmetric_in_3d():
    h = gaussian_transfer((32, 32, 32), 10.0, lowpass=40.0)
    # same |s| along z, y and x
    assert h[3, 0, 0] == pytest.approx(h[0, 3, 0]) == pytest.approx(h[0, 0, 3])


def test_highpass_zeroes_the_mean_and_lowpass_keeps_it():
    rng = np.random.default_rng(0)
    vol = rng.normal(5.0, 1.0, (8, 32, 32)).astype(np.float32)
    assert abs(gaussian_filter_fourier(vol, 10.0, highpass=1000.0).mean()) < 1e-4
    assert gaussian_filter_fourier(vol, 10.0, lowpass=40.0).mean() == pytest.approx(vol.mean(), rel=1e-4)


def test_lowpass_reduces_white_noise_by_the_expected_factor():
    rng = np.random.default_rng(1)
    vol = rng.normal(size=(32, 64, 64)).astype(np.float32)
    out = gaussian_filter_fourier(vol, 10.0, lowpass=40.0)
    h = gaussian_transfer(vol.shape, 10.0, lowpass=40.0)
    expected = np.sqrt(np.mean(np.fft.irfftn(h, s=vol.shape, axes=(0, 1, 2)) ** 2) * vol.size)  # sqrt(sum h^2 / N)
    assert out.std() == pytest.approx(expected, rel=0.05)


def test_bin_volume_is_a_block_mean_and_drops_the_remainder():
    vol = np.arange(5 * 6 * 7, dtype=np.float32).reshape(5, 6, 7)
    out = bin_volume(vol, 2)
    assert out.shape == (2, 3, 3)
    assert out[0, 0, 0] == pytest.approx(vol[:2, :2, :2].mean())
    assert out[1, 2, 2] == pytest.approx(vol[2:4, 4:6, 4:6].mean())
    with pytest.raises(ValueError):
        bin_volume(vol, 0)


def test_every_lowpass_states_its_gain_at_the_cutoff():
    """One convention (ops/fourier): cutoffs are resolutions; Gaussian 1/e there, cosine edge 1/2."""
    from tomoseg.ops.fourier import cosine_lowpass, gaussian_lowpass_images
    from tomoseg.ops.shells import lowpass_box

    # cosine edge: 1 well below, 1/2 at, 0 well above the cutoff (voxel 10 A, cutoff 40 A = 0.25 cycles/voxel)
    np.testing.assert_allclose(cosine_lowpass(np.array([0.0, 0.2, 0.25, 0.3]), 10.0, 40.0), [1, 1, 0.5, 0], atol=1e-12)
    # the cube filter of averaging is that transfer: a plane wave at the cutoff comes out at half its amplitude
    n = 32
    x = np.arange(n)
    wave = np.cos(2 * np.pi * 8 * x / n)[None, None, :] * np.ones((n, n, 1))  # 8/32 = 0.25 cycles/voxel
    np.testing.assert_allclose(lowpass_box(wave, 10.0, 40.0), 0.5 * wave, atol=1e-5)
    # images (pixels): a wave whose period is the cutoff keeps 1/e of its amplitude
    img = np.cos(2 * np.pi * 8 * x / n)[None, None, :] * np.ones((2, n, 1))
    np.testing.assert_allclose(gaussian_lowpass_images(img, 4.0), np.exp(-1) * img, atol=1e-6)
    np.testing.assert_array_equal(gaussian_lowpass_images(img, 0), img)
