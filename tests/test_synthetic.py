"""Tests of the synthetic tomogram generator (tomoseg.testing.synthetic)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from tomoseg.testing import SyntheticTomogram, make_tomogram, synthetic


@pytest.fixture(scope="module")
def tomo() -> SyntheticTomogram:
    return make_tomogram(seed=0)


@pytest.fixture(scope="module")
def clean() -> SyntheticTomogram:
    """Noise-free, no CTF, no missing wedge: the volume is the negated density."""
    return make_tomogram(seed=0, snr=math.inf, ctf=False, missing_wedge=0.0)


def test_shapes_dtypes_and_normalisation(tomo):
    assert tomo.volume.shape == tomo.labels.shape == (48, 160, 160)
    assert tomo.volume.dtype == np.float32
    assert tomo.labels.dtype == np.uint8
    assert tomo.particles.dtype == np.float64
    assert tomo.particles.ndim == 2 and tomo.particles.shape[1] == 3
    assert tomo.voxel_size == 10.0
    assert tomo.classes == {0: "background", 1: "membrane", 2: "filament", 3: "particle"}
    assert abs(float(tomo.volume.mean())) < 1e-4
    assert float(tomo.volume.std()) == pytest.approx(1.0, abs=1e-3)
    assert np.isfinite(tomo.volume).all()


def test_label_fractions_are_plausible(tomo):
    fractions = np.bincount(tomo.labels.ravel(), minlength=4) / tomo.labels.size
    assert len(fractions) == 4, "labels outside 0..3"
    background, membrane, filament, particle = fractions
    assert background > 0.5
    assert 0.002 < membrane < 0.2
    assert 0.005 < filament < 0.3
    assert 0.002 < particle < 0.15


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_class_present_for_several_seeds(seed):
    t = make_tomogram(seed=seed, snr=math.inf, ctf=False)
    assert set(np.unique(t.labels)) == {0, 1, 2, 3}
    assert 10 <= len(t.particles) <= 20


def test_same_seed_is_bit_identical_and_seeds_differ(tomo):
    again = make_tomogram(seed=0)
    assert np.array_equal(tomo.volume, again.volume)
    assert np.array_equal(tomo.labels, again.labels)
    assert np.array_equal(tomo.particles, again.particles)
    other = make_tomogram(seed=1)
    assert not np.array_equal(tomo.labels, other.labels)
    assert not np.array_equal(tomo.volume, other.volume)


def test_particles_inside_volume_and_on_particle_voxels(tomo):
    shape_xyz = np.array(tomo.labels.shape[::-1])
    assert len(tomo.particles) >= 10
    assert (tomo.particles >= -0.5).all() and (tomo.particles < shape_xyz - 0.5).all()
    particle_voxels = np.argwhere(tomo.labels == 3)  # z, y, x
    for x, y, z in tomo.particles:
        zi, yi, xi = (int(round(c)) for c in (z, y, x))
        if tomo.labels[zi, yi, xi] == 3:
            continue
        nearest = np.linalg.norm(particle_voxels - [z, y, x], axis=1).min()
        assert nearest <= 2.0, f"particle at {(x, y, z)} is {nearest:.1f} voxels from label 3"


def test_particles_do_not_overlap_each_other(tomo):
    components, _ = ndimage.label(tomo.labels == 3)
    idx = np.rint(tomo.particles[:, ::-1]).astype(int)
    ids = components[tuple(idx.T)]
    assert (ids > 0).all()
    assert len(set(ids.tolist())) == len(tomo.particles), "two particles share a label region"
    dist = np.linalg.norm(tomo.particles[:, None] - tomo.particles[None], axis=2)
    np.fill_diagonal(dist, np.inf)
    assert dist.min() * tomo.voxel_size > 150.0


def test_objects_do_not_touch(tomo):
    """Labelled objects are separated: growing one class by a voxel never reaches another."""
    for k in (1, 2, 3):
        grown = ndimage.binary_dilation(tomo.labels == k)
        others = (tomo.labels != 0) & (tomo.labels != k)
        assert not (grown & others).any(), f"class {k} touches another class"


def test_scene_geometry_invariants():
    extent = np.array([480.0, 1600.0, 1600.0])
    rng = np.random.default_rng(7)
    filaments, vesicles, particles, clutter = synthetic._scene(rng, extent, 3, 3, 20)
    assert filaments and vesicles and particles and clutter
    for ves in vesicles:
        assert ((ves.centre >= 0) & (ves.centre <= extent)).all()
        assert 200.0 < ves.r_min <= ves.r_max < 700.0
    for i, a in enumerate(vesicles):
        for b in vesicles[i + 1 :]:
            gap = a.r_max + b.r_max + 2 * synthetic.BILAYER_HALF
            assert np.linalg.norm(a.centre - b.centre) > gap
    for fil in filaments:
        tilt = math.degrees(math.asin(abs(fil.frame[0][0])))
        assert tilt <= 15.0
    for blob in particles + clutter:
        for fil in filaments:
            assert synthetic._curve_distance(fil, *blob.centre) > synthetic.TUBE_OUTER + blob.bound


@pytest.mark.parametrize("ctf", [False, True])
def test_matter_is_dark(ctf):
    t = make_tomogram(seed=0, snr=10.0, ctf=ctf)
    background = t.volume[t.labels == 0].mean()
    for k in (1, 2, 3):
        assert t.volume[t.labels == k].mean() < background - 0.2, f"class {k} is not dark"


def test_clean_volume_is_negated_density(clean):
    assert clean.volume[clean.labels == 3].mean() < -2.0
    assert clean.volume[clean.labels == 0].mean() > 0.0


def _wedge_angle(shape):
    """Angle (deg) of each rfftn component's direction from the kx axis in the kx-kz plane."""
    kz = np.abs(np.fft.fftfreq(shape[0]))[:, None, None]
    kx = np.abs(np.fft.rfftfreq(shape[2]))[None, None, :]
    return np.broadcast_to(np.degrees(np.arctan2(kz, kx)), (shape[0], shape[1], shape[2] // 2 + 1))


def test_missing_wedge_is_empty():
    t = make_tomogram(seed=0, snr=10.0, ctf=False, missing_wedge=30.0)
    power = np.abs(np.fft.rfftn(t.volume.astype(np.float64))) ** 2
    angle = _wedge_angle(t.volume.shape)
    inside = power[angle > 60.0 + 1.0].mean()
    outside = power[angle < 60.0 - 1.0].mean()
    assert inside < 1e-8 * outside

    full = make_tomogram(seed=0, snr=10.0, ctf=False, missing_wedge=0.0)
    power = np.abs(np.fft.rfftn(full.volume.astype(np.float64))) ** 2
    assert power[angle > 61.0].mean() > 1e-2 * power[angle < 59.0].mean()


def test_larger_wedge_removes_more():
    t = make_tomogram(seed=0, snr=10.0, ctf=False, missing_wedge=50.0)
    power = np.abs(np.fft.rfftn(t.volume.astype(np.float64))) ** 2
    angle = _wedge_angle(t.volume.shape)
    assert power[angle > 41.0].mean() < 1e-8 * power[angle < 39.0].mean()
    assert power[(angle > 10.0) & (angle < 39.0)].mean() > 0


def test_ctf_zero_is_at_the_physical_frequency():
    """Power at the first CTF zero (s in 1/A) is suppressed relative to the first maximum."""
    kw = dict(seed=0, snr=math.inf, missing_wedge=0.0)
    with_ctf = make_tomogram(ctf=True, **kw)
    without = make_tomogram(ctf=False, **kw)
    v = with_ctf.voxel_size
    shape = with_ctf.volume.shape
    s = np.sqrt(
        np.fft.fftfreq(shape[0], v)[:, None, None] ** 2
        + np.fft.fftfreq(shape[1], v)[None, :, None] ** 2
        + np.fft.rfftfreq(shape[2], v)[None, None, :] ** 2
    )
    lam_df = synthetic.WAVELENGTH * synthetic.DEFOCUS
    a = synthetic.AMPLITUDE_CONTRAST
    s_zero = math.sqrt((math.pi - math.atan(a / math.sqrt(1 - a * a))) / (math.pi * lam_df))
    s_peak = math.sqrt(0.5 / lam_df)
    p_ctf = np.abs(np.fft.rfftn(with_ctf.volume)) ** 2
    p_raw = np.abs(np.fft.rfftn(without.volume)) ** 2

    def gain(s0):
        shell = np.abs(s - s0) < 0.0008
        return p_ctf[shell].sum() / p_raw[shell].sum()

    assert gain(s_zero) < 0.05 * gain(s_peak)


def test_snr_sets_the_noise_variance():
    kw = dict(seed=0, ctf=False, missing_wedge=0.0)
    clean = make_tomogram(snr=math.inf, **kw).volume.ravel()
    for snr in (0.5, 2.0):
        noisy = make_tomogram(snr=snr, **kw).volume.ravel()
        corr = np.corrcoef(clean, noisy)[0, 1]
        assert corr == pytest.approx(math.sqrt(snr / (1 + snr)), abs=0.02)


def test_voxel_size_gives_the_same_scene_binned():
    fine = make_tomogram(shape=(48, 160, 160), voxel_size=10.0, seed=1)
    coarse = make_tomogram(shape=(24, 80, 80), voxel_size=20.0, seed=1)
    assert len(fine.particles) == len(coarse.particles)
    np.testing.assert_allclose((fine.particles + 0.5) / 2 - 0.5, coarse.particles, atol=1e-9)
    for k in (1, 2, 3):
        vol_fine = (fine.labels == k).sum() * fine.voxel_size**3
        vol_coarse = (coarse.labels == k).sum() * coarse.voxel_size**3
        assert vol_coarse == pytest.approx(vol_fine, rel=0.3), f"class {k}"


def test_particle_size_is_ribosome_like(clean):
    components, n = ndimage.label(clean.labels == 3)
    voxels = ndimage.sum_labels(np.ones_like(components), components, np.arange(1, n + 1))
    diameters = 2 * (3 * voxels * clean.voxel_size**3 / (4 * math.pi)) ** (1 / 3)
    # equivalent-sphere diameter of irregular ~200-260 A blobs (cut ones are smaller)
    assert 160.0 < np.median(diameters) < 240.0


def test_empty_scene():
    t = make_tomogram(shape=(16, 32, 32), n_vesicles=0, n_filaments=0, n_particles=0)
    assert t.particles.shape == (0, 3)
    assert set(np.unique(t.labels)) == {0}
    assert float(t.volume.std()) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"shape": (0, 32, 32)},
        {"shape": (16, 32)},
        {"shape": (16.5, 32, 32)},
        {"voxel_size": 0.0},
        {"voxel_size": -1.0},
        {"voxel_size": float("nan")},
        {"seed": -1},
        {"n_particles": -1},
        {"n_vesicles": 1.5},
        {"snr": 0.0},
        {"snr": float("nan")},
        {"missing_wedge": -5.0},
        {"missing_wedge": 90.0},
    ],
)
def test_invalid_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        make_tomogram(**kwargs)
