"""Seeded synthetic cellular cryo-ET tomograms with voxel-exact labels.

The scene is built in physical units (Angstrom) and only then sampled on the
voxel grid, so the same ``seed`` gives the same cell at any ``voxel_size``
(a 20 A/voxel tomogram of shape ``s`` shows the 10 A/voxel scene of shape
``2 s`` binned by 2). Coordinates: voxel ``data[i, j, k]`` (z, y, x) has its
centre at ``((i + 0.5) v, (j + 0.5) v, (k + 0.5) v)`` A, ``v`` the voxel size,
so the volume spans ``[0, n v]`` A along each axis.

Objects (density ~1 = protein, 0 = solvent; they never overlap one another,
and a labelled object keeps >= 20 A from any other object):

* vesicles (label 1): spherical or mildly ellipsoidal (+-10 %) lipid bilayers,
  midplane radius 250-600 A (the upper bound shrinks to 20 % of the box's
  smaller XY side), centres inside the box; two Gaussian leaflets (FWHM
  ~16 A) 40 A apart; the label is the 50 A bilayer (both leaflets and the gap);
* filaments (label 2): microtubule-like hollow tubes, outer diameter 250 A,
  wall 50 A, straight or gently curved, tilted <= 15 degrees out of the XY
  plane, roughly parallel (a bundle); the label is the wall;
* particles (label 3): ribosome-sized (~200-260 A across), denser (1.2)
  irregular unions of 3-6 overlapping soft balls, outside vesicles; the label
  is the union thresholded at half height;
* clutter (label 0): smaller (~60-120 A) unions of 1-3 balls, also in vesicle
  lumens.

Vesicles and filaments are placed alternately, then particles, then clutter,
each by rejection sampling with capped tries, so crowded boxes hold fewer
objects than requested.

The imaging model is documented in :func:`make_tomogram`.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import numpy as np
import scipy.fft
from scipy.special import erf, erfc

__all__ = ["CLASSES", "SyntheticTomogram", "make_tomogram"]

CLASSES: dict[int, str] = {0: "background", 1: "membrane", 2: "filament", 3: "particle"}

# Imaging constants (Angstrom).
WAVELENGTH = 0.0197  # electron wavelength at 300 kV
DEFOCUS = 35_000.0  # 3.5 um underfocus
AMPLITUDE_CONTRAST = 0.07
B_FACTOR = 800.0  # envelope exp(-B s^2 / 4), s in 1/A

# Object geometry (Angstrom).
EDGE_SIGMA = 5.0  # intrinsic softness of object edges
LEAFLET_OFFSET = 20.0  # leaflet peaks at +-20 A from the bilayer midplane
LEAFLET_SIGMA = 7.0  # Gaussian leaflet profile (FWHM ~16.5 A)
BILAYER_HALF = 25.0  # label half-thickness: 50 A bilayer
VESICLE_RADIUS = (250.0, 600.0)
VESICLE_ASPHERICITY = 0.1  # semi-axes within +-10 % of the radius
TUBE_OUTER = 125.0  # 250 A outer diameter
TUBE_INNER = 75.0  # 50 A wall
MAX_TILT_DEG = 15.0
MAX_CURVATURE = 1.0 / 4000.0  # 1/A; radius of curvature >= 4000 A
MARGIN = 20.0  # minimum gap between the labelled extents of two objects
CLUTTER_PER_A3 = 2.5e-8  # ~30 clutter blobs in a 1600 x 1600 x 480 A box


@dataclass(frozen=True)
class _BlobKind:
    """Size ranges (A) of a kind of blob, its density and its label (0: unlabelled)."""

    n_sub: tuple[int, int]  # inclusive range of sub-blob count (core included)
    core_radius: tuple[float, float]
    sub_radius: tuple[float, float]
    offset: tuple[float, float]  # distance of the other sub-blobs from the core
    amplitude: float
    label: int


PARTICLE = _BlobKind((3, 6), (80.0, 95.0), (55.0, 75.0), (40.0, 55.0), 1.2, 3)
CLUTTER = _BlobKind((1, 3), (30.0, 48.0), (22.0, 38.0), (12.0, 30.0), 1.0, 0)


@dataclass(frozen=True, eq=False)
class SyntheticTomogram:
    """A synthetic tomogram and its ground truth.

    Attributes:
        volume: float32 (z, y, x), mean 0, sd 1 (unless constant, e.g. one
            voxel); matter is dark (negative), as in a raw reconstruction.
        labels: uint8 (z, y, x): 0 background, 1 membrane, 2 filament,
            3 particle.
        particles: float64 (n, 3): particle centres as x, y, z voxel
            coordinates (a centre ``(x, y, z)`` indexes ``data[z, y, x]``).
        voxel_size: A / voxel.
        classes: ``{0: "background", 1: "membrane", 2: "filament", 3: "particle"}``.
    """

    volume: np.ndarray
    labels: np.ndarray
    particles: np.ndarray
    voxel_size: float
    classes: dict[int, str]


# ----------------------------------------------------------------- scene model


@dataclass(frozen=True, eq=False)
class _Filament:
    """Centre line ``c + t d + a t^2 n`` (zyx, A); ``frame`` rows are d, n, m."""

    centre: np.ndarray
    frame: np.ndarray
    bend: float


@dataclass(frozen=True, eq=False)
class _Vesicle:
    """Ellipsoidal bilayer: ``to_unit`` maps an offset (zyx, A) to unit-sphere coordinates."""

    centre: np.ndarray
    to_unit: np.ndarray
    r_min: float
    r_max: float


@dataclass(frozen=True, eq=False)
class _Blob:
    """Union of balls: ``centre`` (zyx, A) is the volume-weighted mean of the ball centres."""

    centre: np.ndarray
    offsets: np.ndarray  # (k, 3) zyx, A, relative to centre
    radii: np.ndarray  # (k,) A
    bound: float  # radius of a sphere about ``centre`` holding the union
    kind: _BlobKind


def _curve_distance(fil: _Filament, z, y, x) -> np.ndarray:
    """Distance (A) from points (broadcastable zyx arrays, A) to a filament's centre line.

    Newton's method on the foot-point parameter, started at the projection
    onto the chord; exact for straight lines, accurate to far below a voxel
    for the gentle bends used here.
    """
    (d, n, m), c, a = fil.frame, fil.centre, fil.bend
    pz, py, px = z - c[0], y - c[1], x - c[2]
    u = pz * d[0] + py * d[1] + px * d[2]
    v = pz * n[0] + py * n[1] + px * n[2]
    w = pz * m[0] + py * m[1] + px * m[2]
    t = u
    if a != 0.0:
        for _ in range(3):
            f = t - u + 2.0 * a * t * (a * t * t - v)
            fp = np.maximum(1.0 + 6.0 * a * a * t * t - 2.0 * a * v, 0.25)
            t = t - f / fp
    return np.sqrt((t - u) ** 2 + (a * t * t - v) ** 2 + w**2)


def _curve_points(fil: _Filament, extent: np.ndarray, pad: float) -> np.ndarray:
    """Points (k, 3) zyx every 20 A along the centre line, within the box grown by ``pad``."""
    half = 0.5 * float(np.linalg.norm(extent)) + pad
    t = np.arange(-half, half + 20.0, 20.0)
    pts = fil.centre + t[:, None] * fil.frame[0] + (fil.bend * t * t)[:, None] * fil.frame[1]
    inside = np.all((pts >= -pad) & (pts <= extent + pad), axis=1)
    return pts[inside]


def _filament_candidates(
    rng: np.random.Generator, extent: np.ndarray, theta0: float, k: int
) -> list[_Filament]:
    """``k`` random tubes: direction ``theta0`` +- ~20 deg in XY, tilt <= 15 deg, gentle bend."""
    lz, ly, lx = extent
    diag_xy = math.hypot(ly, lx)
    max_tilt = min(math.radians(MAX_TILT_DEG), math.atan2(max(lz - 2 * TUBE_OUTER, 0.0), diag_xy))
    theta = theta0 + rng.normal(0.0, math.radians(20.0), size=k)
    tilt = rng.uniform(-max_tilt, max_tilt, size=k)
    bend = 0.5 * MAX_CURVATURE * rng.uniform(-1.0, 1.0, size=k)
    yx = rng.uniform(0.0, 1.0, size=(k, 2)) * extent[1:]
    zfrac = rng.uniform(0.0, 1.0, size=k)
    out = []
    for i in range(k):
        dz = abs(math.sin(tilt[i])) * 0.5 * diag_xy
        lo, hi = TUBE_OUTER + dz, lz - TUBE_OUTER - dz
        cz = lo + zfrac[i] * (hi - lo) if hi > lo else 0.5 * lz
        st, ct = math.sin(theta[i]), math.cos(theta[i])
        sp, cp = math.sin(tilt[i]), math.cos(tilt[i])
        d = np.array([sp, cp * st, cp * ct])
        nrm = np.array([0.0, ct, -st])
        frame = np.stack([d, nrm, np.cross(d, nrm)])
        out.append(_Filament(np.array([cz, *yx[i]]), frame, float(bend[i])))
    return out


def _place_filament(
    rng: np.random.Generator,
    extent: np.ndarray,
    theta0: float,
    filaments: list[_Filament],
    vesicles: list[_Vesicle],
) -> _Filament | None:
    """One tube clear of the placed tubes and vesicles (up to 4 batches of 16 tries), or None."""
    for _batch in range(4):
        for fil in _filament_candidates(rng, extent, theta0, 16):
            pts = _curve_points(fil, extent, TUBE_OUTER)
            if len(pts) == 0:
                continue
            ok = all(
                _curve_distance(other, *pts.T).min() >= 2 * TUBE_OUTER + MARGIN
                for other in filaments
            ) and all(
                np.linalg.norm(pts - ves.centre, axis=1).min()
                >= ves.r_max + BILAYER_HALF + TUBE_OUTER + MARGIN
                for ves in vesicles
            )
            if ok:
                return fil
    return None


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3x3 rotation matrix (from a random unit quaternion)."""
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _place_vesicle(
    rng: np.random.Generator,
    extent: np.ndarray,
    filaments: list[_Filament],
    vesicles: list[_Vesicle],
) -> _Vesicle | None:
    """One vesicle (centre inside the box) clear of the placed tubes and vesicles, or None.

    The radius range shrinks with the box (upper bound 20 % of its smaller XY
    side, clipped to 250-600 A) so that small boxes still hold several.
    """
    r_hi = float(np.clip(0.2 * min(extent[1], extent[2]), *VESICLE_RADIUS))
    radius = rng.uniform(VESICLE_RADIUS[0], r_hi)
    axes = radius * (1.0 + rng.uniform(-VESICLE_ASPHERICITY, VESICLE_ASPHERICITY, size=3))
    rot = _random_rotation(rng)
    r_max = float(axes.max())
    for _batch in range(4):
        cand = rng.uniform([0.25, 0.0, 0.0], [0.75, 1.0, 1.0], size=(64, 3)) * extent
        ok = np.ones(len(cand), dtype=bool)
        for fil in filaments:
            ok &= _curve_distance(fil, *cand.T) >= r_max + BILAYER_HALF + TUBE_OUTER + MARGIN
        for ves in vesicles:
            gap = r_max + ves.r_max + 2 * BILAYER_HALF + MARGIN
            ok &= np.linalg.norm(cand - ves.centre, axis=1) >= gap
        if ok.any():
            to_unit = (rot / axes).T  # diag(1/axes) @ rot.T
            return _Vesicle(cand[np.argmax(ok)], to_unit, float(axes.min()), r_max)
    return None


def _place_membranes_and_filaments(
    rng: np.random.Generator, extent: np.ndarray, n_vesicles: int, n_filaments: int
) -> tuple[list[_Filament], list[_Vesicle]]:
    """Alternate tube and vesicle placement so that neither kind crowds out the other."""
    theta0 = rng.uniform(0.0, math.pi)  # common (bundle) direction of the tubes
    filaments: list[_Filament] = []
    vesicles: list[_Vesicle] = []
    for i in range(max(n_vesicles, n_filaments)):
        if i < n_filaments and (fil := _place_filament(rng, extent, theta0, filaments, vesicles)):
            filaments.append(fil)
        if i < n_vesicles and (ves := _place_vesicle(rng, extent, filaments, vesicles)):
            vesicles.append(ves)
    return filaments, vesicles


def _blob_shape(rng: np.random.Generator, kind: _BlobKind) -> tuple[np.ndarray, np.ndarray, float]:
    """Sub-blob offsets (k, 3) about their volume-weighted centre, radii (k,), bounding radius."""
    k = int(rng.integers(kind.n_sub[0], kind.n_sub[1] + 1))
    core = rng.uniform(*kind.core_radius)
    radii = np.concatenate([[core], rng.uniform(*kind.sub_radius, size=k - 1)])
    dirs = rng.normal(size=(k - 1, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    offsets = np.vstack([np.zeros((1, 3)), dirs * rng.uniform(*kind.offset, size=(k - 1, 1))])
    weights = radii**3
    offsets -= (weights[:, None] * offsets).sum(axis=0) / weights.sum()
    bound = float((np.linalg.norm(offsets, axis=1) + radii).max())
    return offsets, radii, bound


def _place_blobs(
    rng: np.random.Generator,
    extent: np.ndarray,
    n: int,
    kind: _BlobKind,
    filaments: list[_Filament],
    vesicles: list[_Vesicle],
    blobs: list[_Blob],
) -> list[_Blob]:
    """Up to ``n`` blobs of ``kind`` clear of everything placed; returns the new ones.

    Candidate centres are drawn 64 at a time, at most 4 batches per blob.
    Particles stay outside vesicles; clutter may also sit in a vesicle lumen.
    """
    new: list[_Blob] = []
    for _ in range(n):
        offsets, radii, bound = _blob_shape(rng, kind)
        for _batch in range(4):
            lo = np.minimum(0.5 * bound, 0.5 * extent)
            cand = rng.uniform(lo, extent - lo, size=(64, 3))
            ok = np.ones(len(cand), dtype=bool)
            for fil in filaments:
                ok &= _curve_distance(fil, *cand.T) >= TUBE_OUTER + bound + MARGIN
            for ves in vesicles:
                dist = np.linalg.norm(cand - ves.centre, axis=1)
                outside = dist >= ves.r_max + BILAYER_HALF + bound + MARGIN
                inside = dist <= ves.r_min - BILAYER_HALF - bound - MARGIN
                ok &= outside | (inside if kind.label == 0 else False)
            others = blobs + new
            if others:
                centres = np.array([b.centre for b in others])
                gaps = np.array([b.bound for b in others]) + bound + MARGIN
                ok &= (np.linalg.norm(cand[:, None] - centres[None], axis=2) >= gaps).all(axis=1)
            if ok.any():
                new.append(_Blob(cand[np.argmax(ok)], offsets, radii, bound, kind))
                break
    return new


# ------------------------------------------------------------------- rendering


def _box(lo: np.ndarray, hi: np.ndarray, shape: tuple[int, int, int], v: float):
    """Slices of the voxels whose centres may lie in [lo, hi] (zyx, A) and their centre coordinates.

    Returns ``None`` if empty, else ``(slices, (z, y, x))`` with float32 coordinates
    shaped (nz, 1, 1), (1, ny, 1), (1, 1, nx).
    """
    start = np.maximum(np.floor(lo / v - 0.5).astype(int), 0)
    stop = np.minimum(np.ceil(hi / v - 0.5).astype(int) + 1, shape)
    if np.any(stop <= start):
        return None
    coords = []
    for axis in range(3):
        c = ((np.arange(start[axis], stop[axis]) + 0.5) * v).astype(np.float32)
        view = [1, 1, 1]
        view[axis] = len(c)
        coords.append(c.reshape(view))
    return tuple(slice(a, b) for a, b in zip(start, stop)), tuple(coords)


def _edge_sigma(sigma: float, v: float) -> float:
    """Intrinsic width widened by the voxel's box (sd v/sqrt(12)) to limit aliasing."""
    return math.sqrt(sigma * sigma + v * v / 12.0)


def _draw_filament(density, labels, fil: _Filament, extent: np.ndarray, v: float) -> None:
    """Add a hollow tube's density (amplitude 1) and set label 2 on its wall."""
    sigma = _edge_sigma(EDGE_SIGMA, v)
    pad = TUBE_OUTER + 4 * sigma
    pts = _curve_points(fil, extent, pad)
    if len(pts) == 0:
        return
    box = _box(pts.min(axis=0) - pad, pts.max(axis=0) + pad, labels.shape, v)
    if box is None:
        return
    sl, (z, y, x) = box
    rho = _curve_distance(fil, z, y, x)
    s = math.sqrt(2.0) * sigma
    density[sl] += 0.5 * (erf((rho - TUBE_INNER) / s) - erf((rho - TUBE_OUTER) / s))
    labels[sl][(rho >= TUBE_INNER) & (rho <= TUBE_OUTER)] = 2


def _draw_vesicle(density, labels, ves: _Vesicle, v: float) -> None:
    """Add a bilayer's two leaflets and set label 1 on the 50 A bilayer.

    The signed distance to the midplane is measured along the ray from the
    centre: ``delta = r - r_surface(direction)``.
    """
    sigma = _edge_sigma(LEAFLET_SIGMA, v)
    half = ves.r_max + BILAYER_HALF + 4 * sigma
    box = _box(ves.centre - half, ves.centre + half, labels.shape, v)
    if box is None:
        return
    sl, (z, y, x) = box
    p = (z - ves.centre[0], y - ves.centre[1], x - ves.centre[2])
    m = ves.to_unit.astype(np.float32)
    rho = np.sqrt(sum((m[j, 0] * p[0] + m[j, 1] * p[1] + m[j, 2] * p[2]) ** 2 for j in range(3)))
    r = np.sqrt(p[0] ** 2 + p[1] ** 2 + p[2] ** 2)
    r_surface = np.divide(r, rho, out=np.full_like(r, ves.r_min), where=rho > 0)
    delta = r - r_surface
    gain = LEAFLET_SIGMA / sigma  # keeps the leaflets' projected density independent of v
    two_s2 = 2.0 * sigma * sigma
    density[sl] += gain * (
        np.exp(-((delta - LEAFLET_OFFSET) ** 2) / two_s2)
        + np.exp(-((delta + LEAFLET_OFFSET) ** 2) / two_s2)
    )
    labels[sl][np.abs(delta) <= BILAYER_HALF] = 1


def _draw_blob(density, labels, blob: _Blob, v: float) -> None:
    """Add a union of soft balls; set the kind's label where the union is above half height."""
    sigma = _edge_sigma(EDGE_SIGMA, v)
    half = blob.bound + 4 * sigma
    box = _box(blob.centre - half, blob.centre + half, labels.shape, v)
    if box is None:
        return
    sl, (z, y, x) = box
    delta = None
    for (oz, oy, ox), radius in zip(blob.offsets + blob.centre, blob.radii):
        d = np.sqrt((z - oz) ** 2 + (y - oy) ** 2 + (x - ox) ** 2) - radius
        delta = d if delta is None else np.minimum(delta, d)
    density[sl] += blob.kind.amplitude * 0.5 * erfc(delta / (math.sqrt(2.0) * sigma))
    if blob.kind.label:
        labels[sl][delta <= 0] = blob.kind.label


# ----------------------------------------------------------------- imaging model


def _frequencies(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frequencies (cycles / voxel) on the ``rfftn`` grid, shaped to broadcast (z, y, x)."""
    kz = np.fft.fftfreq(shape[0]).astype(np.float32)[:, None, None]
    ky = np.fft.fftfreq(shape[1]).astype(np.float32)[None, :, None]
    kx = np.fft.rfftfreq(shape[2]).astype(np.float32)[None, None, :]
    return kz, ky, kx


def _ctf(s2: np.ndarray) -> np.ndarray:
    """Transfer from -density to image: ``sqrt(1-A^2) sin(chi) + A cos(chi)``, times the envelope.

    ``chi = pi * lambda * defocus * s^2`` (underfocus positive, Cs neglected),
    ``s2`` = s^2 in 1/A^2. Positive at low frequency, so matter stays dark; this is
    the usual weak-phase CTF ``-(...)`` applied to the positive density.
    """
    chi = np.float32(math.pi * WAVELENGTH * DEFOCUS) * s2
    a = AMPLITUDE_CONTRAST
    ctf = np.float32(math.sqrt(1 - a * a)) * np.sin(chi) + np.float32(a) * np.cos(chi)
    return ctf * np.exp(np.float32(-B_FACTOR / 4.0) * s2)


def _wedge_mask(shape: tuple[int, int, int], missing_wedge: float) -> np.ndarray:
    """Boolean (nz, 1, nx//2+1): True where a Fourier component is measured.

    Tilt axis Y, tilt range +-(90 - missing_wedge) degrees: a component is kept
    when ``atan2(|kz|, |kx|) <= 90 - missing_wedge`` degrees (ky is ignored, so
    the whole ky axis and DC are kept) and removed when its direction in the
    XZ plane is within ``missing_wedge`` degrees of the kz axis.
    """
    kz, _, kx = _frequencies(shape)
    if missing_wedge <= 0:
        return np.ones((shape[0], 1, kx.shape[2]), dtype=bool)
    angle = np.degrees(np.arctan2(np.abs(kz), np.abs(kx)))
    return angle <= 90.0 - missing_wedge


def _rfft_variance(spectrum: np.ndarray, shape: tuple[int, int, int]) -> float:
    """Variance of the real array whose ``rfftn`` is ``spectrum`` (Parseval)."""
    power = (spectrum.real**2 + spectrum.imag**2).sum(axis=(0, 1), dtype=np.float64)
    weights = np.full(power.shape, 2.0)
    weights[0] = 1.0
    if shape[2] % 2 == 0:
        weights[-1] = 1.0
    n = float(np.prod(shape))
    mean = float(spectrum[0, 0, 0].real) / n
    return max(float(power @ weights) / (n * n) - mean * mean, 0.0)


def _image(
    density: np.ndarray,
    voxel_size: float,
    rng: np.random.Generator,
    snr: float,
    missing_wedge: float,
    ctf: bool,
) -> np.ndarray:
    """Imaging model: density (float32 zyx, positive = matter) -> z-scored float32 volume."""
    shape = density.shape
    kz, ky, kx = _frequencies(shape)
    f2 = kz * kz + ky * ky + kx * kx  # (cycles / voxel)^2
    wedge = _wedge_mask(shape, missing_wedge)
    spectrum = scipy.fft.rfftn(-density, workers=1)
    transfer = _ctf(f2 / np.float32(voxel_size**2)) if ctf else np.ones_like(f2)
    spectrum *= transfer * wedge
    signal_var = _rfft_variance(spectrum, shape)
    if math.isfinite(snr):
        noise = scipy.fft.rfftn(rng.standard_normal(shape, dtype=np.float32), workers=1)
        noise *= np.exp(np.float32(-4.0 * math.log(2.0)) * f2) * wedge  # gain 1/2 at Nyquist
        noise_var = _rfft_variance(noise, shape)
        if noise_var > 0:
            target = signal_var / snr if signal_var > 0 else 1.0
            spectrum += noise * np.float32(math.sqrt(target / noise_var))
    volume = scipy.fft.irfftn(spectrum, s=shape, workers=1)
    volume -= volume.mean(dtype=np.float64)
    sd = float(volume.std(dtype=np.float64))
    if sd > 0:
        volume /= sd
    return volume.astype(np.float32, copy=False)


# ---------------------------------------------------------------------- public


def _validate(
    shape, voxel_size, seed, counts, snr, missing_wedge
) -> tuple[tuple[int, int, int], float, int]:
    """Check the arguments of :func:`make_tomogram`; return (shape, voxel size, seed)."""
    bad_shape = f"shape must be three positive integers (z, y, x), got {shape!r}"
    try:
        dims = tuple(operator.index(n) for n in shape)
    except TypeError:
        raise ValueError(bad_shape) from None
    if len(dims) != 3 or min(dims) < 1:
        raise ValueError(bad_shape)
    voxel = float(voxel_size)
    if not (math.isfinite(voxel) and voxel > 0):
        raise ValueError(f"voxel_size must be a positive number of Angstrom, got {voxel_size!r}")
    try:
        seed_int = operator.index(seed)
    except TypeError:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}") from None
    if seed_int < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    for name, value in counts.items():
        try:
            ok = operator.index(value) >= 0
        except TypeError:
            ok = False
        if not ok:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    if not (snr > 0):  # also rejects NaN; +inf means no noise
        raise ValueError(f"snr must be > 0 (inf for no noise), got {snr!r}")
    if not (0.0 <= missing_wedge < 90.0):
        raise ValueError(f"missing_wedge must be in [0, 90) degrees, got {missing_wedge!r}")
    return dims, voxel, seed_int


def _scene(
    rng: np.random.Generator, extent: np.ndarray, n_vesicles: int, n_filaments: int, n_particles: int
):
    """Sample every object in physical units; the draws never depend on the voxel size."""
    filaments, vesicles = _place_membranes_and_filaments(rng, extent, n_vesicles, n_filaments)
    particles = _place_blobs(rng, extent, n_particles, PARTICLE, filaments, vesicles, [])
    n_clutter = round(CLUTTER_PER_A3 * float(np.prod(extent)))
    clutter = _place_blobs(rng, extent, n_clutter, CLUTTER, filaments, vesicles, particles)
    return filaments, vesicles, particles, clutter


def _render(scene, shape: tuple[int, int, int], voxel_size: float) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free density (float32 zyx, positive = matter, ~1 inside objects) and labels (uint8)."""
    filaments, vesicles, particles, clutter = scene
    extent = np.asarray(shape, dtype=float) * voxel_size
    density = np.zeros(shape, dtype=np.float32)
    labels = np.zeros(shape, dtype=np.uint8)
    for fil in filaments:
        _draw_filament(density, labels, fil, extent, voxel_size)
    for ves in vesicles:
        _draw_vesicle(density, labels, ves, voxel_size)
    for blob in particles + clutter:
        _draw_blob(density, labels, blob, voxel_size)
    return density, labels


def make_tomogram(
    shape: tuple[int, int, int] = (48, 160, 160),
    voxel_size: float = 10.0,
    seed: int = 0,
    n_vesicles: int = 3,
    n_filaments: int = 3,
    n_particles: int = 20,
    snr: float = 0.5,
    missing_wedge: float = 30.0,
    ctf: bool = True,
) -> SyntheticTomogram:
    """Generate a seeded synthetic cellular tomogram with voxel-exact labels.

    Args:
        shape: (z, y, x) voxels.
        voxel_size: A / voxel. Object sizes are physical, so the same seed at
            twice the voxel size and half the shape gives the same cell binned.
        seed: seed of ``np.random.default_rng``; equal arguments give
            bit-identical arrays.
        n_vesicles, n_filaments, n_particles: requested counts. Objects that
            do not fit without overlap after a capped number of tries are
            dropped, so fewer may be present (``len(result.particles)``).
        snr: variance of the signal (after CTF and missing wedge) over the
            variance of the noise; ``float("inf")`` gives a noise-free volume.
        missing_wedge: half-angle (degrees) of the missing wedge about the Y
            axis, i.e. tilt range +-(90 - missing_wedge); 0 disables it.
        ctf: apply the contrast transfer function.

    Imaging model, in Fourier space (s in 1/A from ``voxel_size``):
    ``F(volume) = W * (T(s) * F(-density) + L * F(noise))``, then z-scored.

    * ``-density``: matter is dark.
    * ``T(s) = sqrt(1 - 0.07^2) sin(chi) + 0.07 cos(chi)``, ``chi = pi lambda
      df s^2`` with lambda = 0.0197 A (300 kV), df = 3.5 um underfocus, times
      the envelope ``exp(-B s^2 / 4)``, B = 800 A^2 (``T = 1`` if not ``ctf``).
    * ``W``: missing wedge about Y. A component (kz, ky, kx) is kept iff
      ``atan2(|kz|, |kx|) <= 90 - missing_wedge`` degrees (so DC and the ky
      axis are kept); components whose direction in the kx-kz plane is within
      ``missing_wedge`` degrees of the kz (beam) axis are zeroed. The noise is
      wedge-filtered too (it enters through the projections), so the wedge is
      exactly empty.
    * noise: white Gaussian, mildly low-passed (``L`` has gain 1/2 at
      Nyquist), scaled to the requested ``snr``.

    Returns:
        A :class:`SyntheticTomogram`: ``volume`` float32 (z, y, x), mean 0,
        sd 1; ``labels`` uint8 (z, y, x); ``particles`` float64 (n, 3) centres
        as x, y, z voxel coordinates (the volume-weighted centre of each
        particle's sub-blobs, always on a label-3 voxel at <= 20 A/voxel).

    Raises:
        ValueError: on non-positive sizes, negative counts or seed, snr <= 0,
            or missing_wedge outside [0, 90).
    """
    counts = {"n_vesicles": n_vesicles, "n_filaments": n_filaments, "n_particles": n_particles}
    dims, voxel, seed_int = _validate(shape, voxel_size, seed, counts, snr, missing_wedge)
    rng = np.random.default_rng(seed_int)
    extent = np.asarray(dims, dtype=float) * voxel
    scene = _scene(rng, extent, int(n_vesicles), int(n_filaments), int(n_particles))
    density, labels = _render(scene, dims, voxel)
    volume = _image(density, voxel, rng, float(snr), float(missing_wedge), bool(ctf))
    centres = np.array([b.centre for b in scene[2]], dtype=np.float64).reshape(-1, 3)
    particles = (centres[:, ::-1] / voxel - 0.5).astype(np.float64)
    return SyntheticTomogram(volume, labels, particles, voxel, dict(CLASSES))
