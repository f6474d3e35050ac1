"""Subtomogram alignment and averaging with missing-wedge compensation.

Model: particle ``i`` is the reference turned by ``R_i`` (Euler angles, the
convention of :mod:`tomoseg.ops.rotations`) about the box centre (``n // 2``)
and moved by ``s_i`` (x, y, z voxels), seen through the tomogram's missing
wedge ``W`` (fixed in the tomogram frame, :func:`tomoseg.ops.shells.wedge_mask`).

Alignment scores an orientation and shift by the normalised cross-correlation
of the particle with the turned reference, both multiplied by the particle's
wedge and a band-pass (zero DC, low-pass at the current resolution), computed
for all shifts at once by FFT and limited to ``max_shift``. The search is
coarse to fine: whole orientation grids first (``global_step`` apart), then
local grids around each particle's best orientation, each iteration twice as
fine; boxes are Fourier-cropped to the current resolution while searching.

Averaging turns every particle back (``R_i^-1``, ``-s_i``) and divides the
sum of their spectra by the sum of their turned wedges (frequencies seen by
fewer than one particle in total are divided by one).

Refinement is gold-standard: the particles are split at random into two
halves that are aligned and averaged independently; each iteration the half-2
map is aligned onto the half-1 map (a single global transform: with no
starting reference the two halves may settle in different frames), the
Fourier shell correlation of the two (inside a soft spherical mask) gives the
resolution at 0.143, and both references are low-passed to it for the next
iteration. Without a reference, each half starts from the average of its own
particles at random orientations.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from tomoseg.errors import InvalidValue
from tomoseg.ops.fourier import cosine_lowpass
from tomoseg.ops.peaks import parabola_offset
from tomoseg.ops.rotations import angles_of, local_grid, orientation_grid, rotate_volumes, rotation
from tomoseg.ops.shells import fsc, lowpass_box, resolution_at, soft_sphere, wedge_mask
from tomoseg.progress import Progress, report

_XYZ = (-3, -2, -1)


@dataclass(frozen=True)
class AverageConfig:
    """Refinement settings.

    iterations: total rounds; the first ``global_iterations`` search all
    orientations ``global_step`` degrees apart, later ones search locally
    around each particle's best orientation with steps halving from
    ``global_step / 2`` (not below ``min_step``).
    initial_resolution: A, low-pass of the starting references (and the
    coarsest one used later). max_shift: A a particle may move from its pick
    (default a quarter of the box). tilt_range: degrees, the tilt series'
    range about y (the missing wedge). mask_radius: fraction of the box,
    soft spherical mask of references and for the FSC.
    """

    iterations: int = 6
    global_iterations: int = 2
    global_step: float = 24.0
    min_step: float = 2.0
    initial_resolution: float = 60.0
    max_shift: float | None = None
    tilt_range: tuple[float, float] = (-60.0, 60.0)
    mask_radius: float = 0.4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise InvalidValue(f"`iterations` must be >= 1, got {self.iterations}")
        if not 0 <= self.global_iterations <= self.iterations:
            raise InvalidValue("`global_iterations` must be between 0 and `iterations`")
        if not 0 < self.global_step <= 90:
            raise InvalidValue(f"`global_step` must be in (0, 90], got {self.global_step}")
        if not 0 < self.mask_radius <= 0.5:
            raise InvalidValue(f"`mask_radius` must be in (0, 0.5], got {self.mask_radius}")
        if not self.initial_resolution > 0:
            raise InvalidValue("`initial_resolution` must be > 0")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Alignment:
    """Per-particle orientation (n, 3) angles, shift (n, 3) x, y, z voxels, score (n,) NCC."""

    angles: np.ndarray
    shifts: np.ndarray
    score: np.ndarray


@dataclass(frozen=True)
class AverageResult:
    """The refined average and how it was reached.

    average: both halves together, low-passed to ``resolution`` (float32 n^3).
    halves: the two unfiltered half maps. fsc: final curve, shells 0..n/2
    (shell i = i / n cycles/voxel). resolution: A at FSC 0.143. alignment:
    per particle, in the frame of ``average``. half: 0/1 per particle.
    history: one dict per iteration (resolution, mean score, step).
    """

    average: np.ndarray
    halves: tuple[np.ndarray, np.ndarray]
    fsc: np.ndarray
    resolution: float
    alignment: Alignment
    half: np.ndarray
    history: list[dict] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------
# Fourier helpers (torch, full fftn layout)


def _crop_size(n: int, voxel_size: float, resolution: float) -> int:
    """Smallest even box (<= n) whose Nyquist holds the band up to ``resolution`` with margin."""
    need = 2 * math.ceil(n * voxel_size / resolution * 1.25)
    return int(min(n, max(need, 12)))


def _crop_spectrum(spectrum: torch.Tensor, m: int) -> torch.Tensor:
    """Keep the central m^3 frequencies of (..., n, n, n) fftn spectra (unshifted layout in and out)."""
    n = spectrum.shape[-1]
    if m == n:
        return spectrum
    dims = (-3, -2, -1)
    s = torch.fft.fftshift(spectrum, dim=dims)
    lo = n // 2 - m // 2
    s = s[..., lo : lo + m, lo : lo + m, lo : lo + m]
    return torch.fft.ifftshift(s, dim=dims)


CC_CHUNK_VOXELS = 12_000_000
"""Cross-correlation voxels computed at once (orientations x particles x m^3): about 100 MB of float64."""

FINEST_RESOLUTION = 2.2
"""The finest resolution the references are filtered to, in voxels (just above Nyquist's 2)."""

SEED_STRIDE = 1000
"""Seeds of the orientation grids: ``seed + SEED_STRIDE * iteration + half``, distinct for every search."""

MAP_GLOBAL_STEP, MAP_LOCAL_STEP, MAP_LOCAL_EXTENT = 15.0, 5.0, 10.0
"""Degrees: aligning two maps searches every orientation 15 degrees apart, then 5 degrees apart within
10 degrees of the best (:func:`align_maps`)."""

HALVES_RESOLUTION = 2.5
"""The finest resolution, in voxels, at which the second half map is put into the first's frame."""

CORRECTION_STEP = 5.0
"""Degrees: the search step of the small correction between two halves that share a frame."""


def _band(m: int, n: int, voxel_size: float, resolution: float) -> torch.Tensor:
    """Low-pass at ``resolution`` (:func:`~tomoseg.ops.fourier.cosine_lowpass`) with zero DC on the
    cropped m^3 grid of an n box."""
    k = np.fft.fftfreq(m) * (m / n)  # cycles per original voxel
    r = np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2)
    h = cosine_lowpass(r, voxel_size, resolution)
    h[0, 0, 0] = 0.0
    return torch.from_numpy(h).float()


def _shift_mask(m: int, max_shift: float) -> torch.Tensor:
    """True where a (wrapped) shift of at most ``max_shift`` voxels lies, on an m^3 grid."""
    g = torch.fft.fftfreq(m) * m
    r2 = g[:, None, None] ** 2 + g[None, :, None] ** 2 + g[None, None, :] ** 2
    return r2 <= max_shift**2 + 1e-6


def _subvoxel(cc: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Peak positions (k, 3) z, y, x as signed shifts, refined by a parabola per axis
    (:func:`tomoseg.ops.peaks.parabola_offset`)."""
    m = cc.shape[-1]
    k = cc.shape[0]
    zyx = torch.stack(torch.unravel_index(index, (m, m, m)), dim=1)
    rows = torch.arange(k, device=cc.device)
    out = zyx.double().clone()
    c0 = cc[rows, zyx[:, 0], zyx[:, 1], zyx[:, 2]].double()
    for axis in range(3):
        plus, minus = zyx.clone(), zyx.clone()
        plus[:, axis] = (zyx[:, axis] + 1) % m
        minus[:, axis] = (zyx[:, axis] - 1) % m
        cp = cc[rows, plus[:, 0], plus[:, 1], plus[:, 2]].double()
        cm = cc[rows, minus[:, 0], minus[:, 1], minus[:, 2]].double()
        out[:, axis] = out[:, axis] + parabola_offset(cm, c0, cp)
    return torch.where(out > m / 2, out - m, out)


class _Searcher:
    """Cross-correlates prepared particle spectra with turned copies of one reference."""

    def __init__(self, particles: torch.Tensor, wedge: torch.Tensor, voxel_size: float, resolution: float,
                 max_shift: float, mask: torch.Tensor) -> None:
        n = particles.shape[-1]
        self.n = n
        self.m = _crop_size(n, voxel_size, resolution)
        self.filt = _crop_spectrum(wedge, self.m) * _band(self.m, n, voxel_size, resolution).to(wedge.device)
        spec = _crop_spectrum(torch.fft.fftn(particles * mask, dim=_XYZ), self.m) * self.filt
        self.spec = spec / torch.sqrt((spec.abs() ** 2).sum(dim=(-3, -2, -1), keepdim=True)).clamp_min(1e-20)
        self.shift_ok = _shift_mask(self.m, max_shift * self.m / n).to(wedge.device)
        self.scale = n / self.m

    def reference(self, ref: torch.Tensor) -> torch.Tensor:
        """The reference on the cropped grid, real space (m^3)."""
        return torch.fft.ifftn(_crop_spectrum(torch.fft.fftn(ref, dim=_XYZ), self.m)).real

    def score(self, ref_small: torch.Tensor, angles: np.ndarray, which: torch.Tensor) -> tuple:
        """Best (score, shift x/y/z voxels, orientation index) of particles ``which`` over ``angles``.

        Particles and orientations are crossed (every particle against every orientation).
        """
        m = self.m
        best = torch.full((len(which),), -2.0, dtype=torch.float64)
        best_idx = torch.zeros(len(which), dtype=torch.int64)
        best_shift = torch.zeros((len(which), 3), dtype=torch.float64)
        spec = self.spec[which]
        per_chunk = max(1, int(CC_CHUNK_VOXELS // (m**3 * max(1, len(which)))))
        for start in range(0, len(angles), per_chunk):
            a = angles[start : start + per_chunk]
            turned = torch.fft.fftn(rotate_volumes(ref_small, a), dim=_XYZ) * self.filt
            turned = turned / torch.sqrt((turned.abs() ** 2).sum(dim=(-3, -2, -1), keepdim=True)).clamp_min(1e-20)
            cc = torch.fft.ifftn(spec[None] * turned[:, None].conj(), dim=_XYZ).real * (m**3)  # (B, k, m, m, m)
            cc = torch.where(self.shift_ok, cc, torch.full_like(cc, -2.0))
            flat = cc.reshape(len(a), len(which), -1)
            val, idx = flat.max(dim=2)  # (B, k)
            bval, bo = val.max(dim=0)  # (k,)
            bval, bo = bval.cpu(), bo.cpu()
            better = bval.double() > best
            if better.any():
                rows = torch.nonzero(better).squeeze(1)
                dev_rows = rows.to(cc.device)
                maps = cc[bo[rows].to(cc.device), dev_rows]
                zyx = _subvoxel(maps, idx[bo[rows].to(cc.device), dev_rows]).cpu()
                best[rows] = bval[rows].double()
                best_idx[rows] = bo[rows] + start
                best_shift[rows] = zyx.flip(1) * self.scale  # x, y, z in full-size voxels
        return best.numpy(), best_shift.numpy(), best_idx.numpy()


def fourier_shift(volumes: torch.Tensor, shifts: np.ndarray) -> torch.Tensor:
    """Move (k, n, n, n) volumes by (k, 3) x, y, z voxels (periodic, sub-voxel)."""
    n = volumes.shape[-1]
    k = torch.fft.fftfreq(n, dtype=torch.float64, device=volumes.device)
    s = torch.as_tensor(shifts, dtype=torch.float64, device=volumes.device)
    phase = (s[:, 2, None, None, None] * k[None, :, None, None] + s[:, 1, None, None, None] * k[None, None, :, None]
             + s[:, 0, None, None, None] * k[None, None, None, :])
    ramp = torch.exp(-2j * math.pi * phase).to(torch.complex64)
    return torch.fft.ifftn(torch.fft.fftn(volumes, dim=_XYZ) * ramp, dim=_XYZ).real


def weighted_average(particles: torch.Tensor, wedge: torch.Tensor, angles: np.ndarray,
                     shifts: np.ndarray) -> np.ndarray:
    """Missing-wedge-compensated average of particles turned back into the reference frame.

    particles (k, n, n, n); wedge (n, n, n) fftn layout; angles (k, 3); shifts (k, 3) x, y, z.
    """
    n = particles.shape[-1]
    inverse = angles_of(rotation(angles).inv())
    total = torch.zeros((n, n, n), dtype=torch.complex64, device=particles.device)
    weight = torch.zeros((n, n, n), dtype=torch.float32, device=particles.device)
    centred_wedge = torch.fft.fftshift(wedge)
    for start in range(0, len(particles), 16):
        part = particles[start : start + 16]
        back = rotate_volumes(fourier_shift(part, -shifts[start : start + 16]), inverse[start : start + 16])
        total += torch.fft.fftn(back, dim=_XYZ).sum(dim=0)
        w = rotate_volumes(centred_wedge, inverse[start : start + 16])
        weight += torch.fft.ifftshift(w, dim=(-3, -2, -1)).sum(dim=0)
    avg = torch.fft.ifftn(total / weight.clamp_min(1.0), dim=_XYZ).real
    return avg.cpu().numpy().astype(np.float32)


# ----------------------------------------------------------------------------------------------


def align_particles(particles: torch.Tensor, reference: np.ndarray, wedge: torch.Tensor, voxel_size: float,
          resolution: float, max_shift: float, mask: torch.Tensor, start: np.ndarray | None,
          step: float, extent: float | None, seed: int) -> Alignment:
    """Align particles to a reference: a global grid (``start`` None) or local grids around ``start``."""
    search = _Searcher(particles, wedge, voxel_size, resolution, max_shift, mask)
    ref_small = search.reference(torch.as_tensor(reference, device=mask.device) * mask)
    k = len(particles)
    if start is None:
        grid = orientation_grid(step, seed=seed)
        score, shifts, idx = search.score(ref_small, grid, torch.arange(k))
        return Alignment(grid[idx], shifts, score)
    angles = np.zeros((k, 3))
    shifts = np.zeros((k, 3))
    score = np.zeros(k)
    for i in range(k):
        grid = local_grid(start[i], step, extent)
        s, sh, idx = search.score(ref_small, grid, torch.tensor([i]))
        angles[i], shifts[i], score[i] = grid[idx[0]], sh[0], s[0]
    return Alignment(angles, shifts, score)


def _compose(alignment: Alignment, transform: Alignment) -> Alignment:
    """Express particle transforms in a frame moved by ``transform`` (one R, s: new = R old + s)."""
    r = rotation(transform.angles[0])
    new_rot = rotation(alignment.angles) * r.inv()
    shifts = alignment.shifts - new_rot.apply(transform.shifts[0])
    return Alignment(angles_of(new_rot), shifts, alignment.score)


def _check_particles(particles: np.ndarray, reference: np.ndarray | None) -> np.ndarray:
    """The particles as float32 (k, n, n, n) with k >= 4 and n even, or one clear error."""
    particles = np.asarray(particles, dtype=np.float32)
    if particles.ndim != 4 or len(set(particles.shape[1:])) != 1:
        raise InvalidValue(f"`particles` must be (k, n, n, n) cubes, got {particles.shape}")
    k, n = particles.shape[0], particles.shape[-1]
    if k < 4:
        raise InvalidValue(f"need at least 4 particles for two half sets, got {k}")
    if n % 2:
        raise InvalidValue(f"the box must have an even edge for averaging, got {n} (extract with an even `box`)")
    if reference is not None and reference.shape != (n, n, n):
        raise InvalidValue(f"reference is {reference.shape}, particles are {n}^3")
    return particles


def _starting_maps(data: torch.Tensor, wedge: torch.Tensor, half: np.ndarray, voxel_size: float, resolution: float,
                   seed: int, reference: np.ndarray | None, start_angles: np.ndarray | None
                   ) -> tuple[Alignment, list[np.ndarray]]:
    """The starting orientations (given, random without a reference, else zero) and each half's
    starting map at ``resolution``: the reference, or the half's average at those orientations."""
    k = data.shape[0]
    if start_angles is not None:
        angles0 = np.asarray(start_angles, dtype=np.float64)
    elif reference is None:
        angles0 = angles_of(Rotation.random(k, random_state=seed))
    else:
        angles0 = np.zeros((k, 3))
    refs = []
    for h in (0, 1):
        sel = half == h
        if reference is not None:
            refs.append(lowpass_box(reference.astype(np.float32), voxel_size, resolution))
        else:
            avg = weighted_average(data[sel], wedge, angles0[sel], np.zeros((int(sel.sum()), 3)))
            refs.append(lowpass_box(avg, voxel_size, resolution))
    return Alignment(angles0.copy(), np.zeros((k, 3)), np.zeros(k)), refs


def _half_maps_in_one_frame(data: torch.Tensor, wedge: torch.Tensor, half: np.ndarray, aligned: Alignment,
                            voxel_size: float, resolution: float, mask: torch.Tensor, free: bool, search: bool,
                            step: float, seed: int) -> list[np.ndarray]:
    """Each half's average, the second put into the first's frame: one transform for the whole half
    (``aligned`` updated), a full search where the halves may sit in different frames (``free``, and
    ``search`` in global iterations), else a small correction."""
    maps = [weighted_average(data[half == h], wedge, aligned.angles[half == h], aligned.shifts[half == h])
            for h in (0, 1)]
    sel2 = np.flatnonzero(half == 1)
    t = align_maps(maps[0], maps[1], voxel_size, max(resolution, HALVES_RESOLUTION * voxel_size), mask,
                   free and search, step if free else CORRECTION_STEP, seed)
    moved = _compose(Alignment(aligned.angles[sel2], aligned.shifts[sel2], aligned.score[sel2]), t)
    aligned.angles[sel2], aligned.shifts[sel2] = moved.angles, moved.shifts
    maps[1] = weighted_average(data[sel2], wedge, aligned.angles[sel2], aligned.shifts[sel2])
    return maps


def refine(
    particles: np.ndarray,
    voxel_size: float,
    config: AverageConfig = AverageConfig(),
    reference: np.ndarray | None = None,
    start_angles: np.ndarray | None = None,
    progress: Progress | None = None,
    device: torch.device | str = "cpu",
) -> AverageResult:
    """Gold-standard iterative refinement of (k, n, n, n) subtomograms.

    reference: optional starting map (n^3, same contrast as the particles); it
    is low-passed to ``config.initial_resolution``. start_angles: optional
    (k, 3) starting orientations (e.g. filament axes); with them and no
    reference the starting maps are averages at those orientations. device:
    where the searches and averages run (a CUDA device if given).

    Each iteration aligns each half to its own map (a global search in the first
    ``config.global_iterations``, then local with a halving step), puts the halves in one
    frame, measures their FSC and low-passes the next maps to the resolution it reached.
    """
    particles = _check_particles(particles, reference)
    k, n = particles.shape[0], particles.shape[-1]
    rng = np.random.default_rng(config.seed)
    half = np.zeros(k, dtype=np.int64)
    half[rng.permutation(k)[: k // 2]] = 1
    data = torch.from_numpy(particles).to(device)
    wedge = torch.from_numpy(wedge_mask(n, config.tilt_range)).to(device)
    mask = torch.from_numpy(soft_sphere(n, config.mask_radius * n, edge=max(2.0, 0.05 * n))).to(device)
    m = mask.cpu().numpy()
    max_shift = (n / 4) if config.max_shift is None else config.max_shift / voxel_size
    res = float(config.initial_resolution)
    aligned, refs = _starting_maps(data, wedge, half, voxel_size, res, config.seed, reference, start_angles)
    free = reference is None and start_angles is None  # the halves may sit in different frames

    history = []
    total = config.iterations * 2
    step = config.global_step
    curve = np.zeros(n // 2 + 1)
    for it in range(config.iterations):
        is_global = it < config.global_iterations
        if not is_global:
            step = max(config.min_step, step / 2)
        for h in (0, 1):
            sel = np.flatnonzero(half == h)
            start = None if is_global else aligned.angles[sel]
            a = align_particles(data[sel], refs[h], wedge, voxel_size, res, max_shift, mask, start, step,
                                None if is_global else 2 * step, seed=config.seed + SEED_STRIDE * it + h)
            aligned.angles[sel], aligned.shifts[sel], aligned.score[sel] = a.angles, a.shifts, a.score
            report(progress, 2 * it + h + 1, total, f"iteration {it + 1}/{config.iterations}, half {h + 1}")
        maps = _half_maps_in_one_frame(data, wedge, half, aligned, voxel_size, res, mask, free, is_global,
                                       max(step, config.min_step), config.seed + it)
        curve = fsc(maps[0] * m, maps[1] * m)
        fsc_res = resolution_at(curve, n, voxel_size)
        res = min(max(fsc_res, FINEST_RESOLUTION * voxel_size), config.initial_resolution)
        refs = [lowpass_box(mp, voxel_size, res) for mp in maps]
        history.append({"iteration": it + 1, "search": "global" if is_global else "local", "step": step,
                        "resolution": fsc_res, "mean_score": float(aligned.score.mean())})
    both = weighted_average(data, wedge, aligned.angles, aligned.shifts)
    fsc_res = resolution_at(curve, n, voxel_size)
    return AverageResult(
        average=lowpass_box(both, voxel_size, fsc_res),
        halves=(maps[0], maps[1]),
        fsc=curve,
        resolution=fsc_res,
        alignment=aligned,
        half=half,
        history=history,
    )


def align_maps(fixed: np.ndarray, moving: np.ndarray, voxel_size: float, resolution: float,
               mask: torch.Tensor | None = None, full: bool = True, step: float = CORRECTION_STEP,
               seed: int = 0) -> Alignment:
    """The transform (R, s) with ``fixed ~ shift(rotate(moving, R), s)`` (apply it with :func:`move_map`).

    Both maps are (n, n, n) on the same grid; compared up to ``resolution`` (A) inside ``mask`` (a
    soft sphere of 0.4 n by default). ``full``: search every orientation (:data:`MAP_GLOBAL_STEP`, then
    :data:`MAP_LOCAL_STEP` around the best), else only within ``2 step`` of no rotation, ``step`` apart.
    Shifts up to n / 4 voxels. The ``score`` is the normalised cross-correlation of the best match.
    """
    n = fixed.shape[0]
    if mask is None:
        mask = torch.from_numpy(soft_sphere(n, 0.4 * n, edge=max(2.0, 0.05 * n)))
    ones = torch.ones((n, n, n), device=mask.device)
    target = torch.from_numpy(np.ascontiguousarray(fixed, dtype=np.float32))[None].to(mask.device)
    ref = moving.astype(np.float32)
    if full:
        a = align_particles(target, ref, ones, voxel_size, resolution, n / 4, mask, None, MAP_GLOBAL_STEP, None,
                            seed)
        a = align_particles(target, ref, ones, voxel_size, resolution, n / 4, mask, a.angles, MAP_LOCAL_STEP,
                            MAP_LOCAL_EXTENT, seed)
    else:
        a = align_particles(target, ref, ones, voxel_size, resolution, n / 4, mask, np.zeros((1, 3)), step,
                            2 * step, seed)
    return Alignment(a.angles, a.shifts, a.score)


def move_map(volume: np.ndarray, transform: Alignment) -> np.ndarray:
    """``volume`` turned by ``transform``'s rotation and moved by its shift (:func:`align_maps`)."""
    turned = rotate_volumes(torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32)), transform.angles[:1])
    return fourier_shift(turned, transform.shifts[:1]).numpy()[0]
