"""Reference-free 2D classification of subtomogram projections.

Picked subtomograms are cleaned before 3D averaging by classifying their
Z-projections (Chen et al. 2017 did this in EMAN2): junk and good particles
fall into different classes, and the user keeps the good ones.

Method (:func:`classify2d`):

1. Start: rotation- and translation-invariant "footprints" of the images
   (angular Fourier magnitudes of the polar-resampled power spectrum) are
   reduced by PCA and split by k-means; the member nearest each centroid is
   that class's first reference.
2. Each iteration aligns every image to every reference over in-plane
   rotations (the references are turned every ``angular_step`` degrees with
   ``grid_sample``) and shifts (cross-correlation in Fourier space, transformed
   back only for shifts within ``max_shift``), with parabolic sub-step
   refinement of both.
3. The images, each aligned to its best reference, are masked, reduced by PCA
   (top eigenvectors of the Gram matrix) and clustered by k-means started from the best-reference
   classes; empty classes are re-seeded with the worst-fitting image.
4. New references are the class averages of the members aligned to their
   class's reference, moved so that their centre of mass (of the squared
   density, so either contrast works) is the box centre: the frame cannot drift.
5. Finally each image is aligned to its own class's reference and the class
   averages are made from the unfiltered images; classes are sorted by size.

Geometry: images are (y, x) arrays turned about the pixel ``(b // 2, b // 2)``.
An image is aligned by ``transform_images(images, angles, shifts)``: turned by
``angle`` degrees (a point at +x moves towards +y: ``out(c + s + R r) =
in(c + r)`` with ``R = [[cos, -sin], [sin, cos]]`` on (x, y)), then moved by
``(dy, dx)``. For a (z, y, x) subtomogram the same turn is about its z axis
through ``b // 2``; with RELION's matrix in ``ops.rotations`` (``rotation()``
returns ``A``, ``particle(c + A r) = reference(r)``) that is
``rotate_volumes(volume, (-angle, 0, 0))``, then the same shift in y and x.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F

from tomoseg.errors import InvalidValue
from tomoseg.ops.fourier import gaussian_lowpass_images
from tomoseg.ops.peaks import parabola_offset
from tomoseg.progress import Progress, report

LOWPASS_PIXELS = 4 * math.sqrt(math.log(2))
"""The default low-pass of the images, in pixels (gain 1/e; 1/2 at 4 pixels)."""

# About the most float32 elements of one intermediate block (correlations, grids) held at once.
_BLOCK_ELEMENTS = 1 << 24


@dataclass(frozen=True)
class Classify2DConfig:
    """2D classification settings.

    n_classes: number of classes. iterations: alignment/classification rounds.
    angular_step: in-plane rotation search step in degrees. max_shift:
    translation search range as a fraction of the box. mask_radius: circular
    mask radius as a fraction of the box. lowpass: resolution in pixels of the
    Gaussian low-pass (gain 1/e there, the convention of :mod:`tomoseg.ops.fourier`)
    applied to the images used for alignment and classification, 0 = none; the
    default, 4 sqrt(ln 2) = 3.33 pixels, passes half of the signal at 4 pixels. pca_components: dimensions kept for k-means.
    seed: random seed (the result is deterministic for a seed).
    """

    n_classes: int = 4
    iterations: int = 6
    angular_step: float = 6.0
    max_shift: float = 0.1
    mask_radius: float = 0.45
    lowpass: float = LOWPASS_PIXELS
    pca_components: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_classes", "iterations", "pca_components"):
            if getattr(self, name) < 1:
                raise InvalidValue(f"`{name}` must be >= 1, got {getattr(self, name)}")
        if not 0 < self.angular_step <= 360:
            raise InvalidValue(f"`angular_step` must be in (0, 360] degrees, got {self.angular_step}")
        if not 0 <= self.max_shift < 0.5:
            raise InvalidValue(f"`max_shift` must be in [0, 0.5) of the box, got {self.max_shift}")
        if not 0 < self.mask_radius <= 0.75:
            raise InvalidValue(f"`mask_radius` must be in (0, 0.75] of the box, got {self.mask_radius}")
        if self.lowpass != 0 and not self.lowpass >= 2:
            raise InvalidValue(f"`lowpass` must be 0 (none) or a resolution >= 2 pixels (Nyquist), got {self.lowpass}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Classify2DConfig:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True, eq=False)
class Classes2D:
    """Result of :func:`classify2d` for n images of b x b pixels in k classes.

    labels: int64 (n,) class of each image; classes are sorted by size
    (0 = largest) and none is empty, so k can be below ``n_classes`` only if
    k-means could not fill every class (e.g. identical images).
    angles: (n,) in-plane rotation in degrees, in [0, 360), and shifts: (n, 2)
    (dy, dx) pixels, that align each image (see :func:`transform_images`).
    averages: float32 (k, b, b) class averages of the aligned images.
    counts: int64 (k,) class sizes. score: (n,) correlation, inside the mask,
    of each aligned image with its class average.
    """

    labels: np.ndarray
    angles: np.ndarray
    shifts: np.ndarray
    averages: np.ndarray
    counts: np.ndarray
    score: np.ndarray

    @property
    def n_classes(self) -> int:
        return int(len(self.counts))

    def members(self, k: int) -> np.ndarray:
        """Indices of the images in class ``k``."""
        return np.flatnonzero(self.labels == k)


# ----------------------------------------------------------------------------- images


def circular_mask(size: int, radius: float = 0.45) -> np.ndarray:
    """Boolean (size, size) disc of ``radius * size`` pixels about ``(size // 2, size // 2)``."""
    c = size // 2
    yy, xx = np.mgrid[:size, :size]
    return np.hypot(yy - c, xx - c) <= radius * size


def normalise_masked(images: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Each image shifted and scaled to mean 0, sd 1 over ``mask`` (the whole image is transformed)."""
    images = np.asarray(images, dtype=np.float64)
    inside = images[..., mask]
    mean = inside.mean(axis=-1)
    sd = inside.std(axis=-1)
    sd = np.where(sd > 0, sd, 1.0)
    return (images - mean[..., None, None]) / sd[..., None, None]


def z_projections(stack: np.ndarray, thickness: int | None = None, mask_radius: float = 0.45) -> np.ndarray:
    """(n, b, b, b) subtomograms (z, y, x) -> (n, b, b) float32 projections.

    Each is the sum over the central ``thickness`` z slices (all if None),
    normalised to mean 0, sd 1 inside a circular mask of ``mask_radius * b``.
    """
    stack = np.asarray(stack)
    if stack.ndim != 4:
        raise InvalidValue(f"expected a stack of subtomograms (n, z, y, x), got shape {stack.shape}")
    n, depth, height, width = stack.shape
    if height != width:
        raise InvalidValue(f"`subtomograms` must be square in y and x, got {height} x {width}")
    if thickness is None:
        thickness = depth
    if not 1 <= thickness <= depth:
        raise InvalidValue(f"`thickness` must be between 1 and the box depth {depth}, got {thickness}")
    start = (depth - thickness) // 2
    projections = stack[:, start:start + thickness].sum(axis=1, dtype=np.float64)
    return normalise_masked(projections, circular_mask(height, mask_radius)).astype(np.float32)


def _grid(angles: np.ndarray, shifts: np.ndarray, size: int) -> torch.Tensor:
    """grid_sample grid (n, b, b, 2) for ``out(c + s + R r) = in(c + r)``: rotate, then shift.

    The source of output pixel p is ``R^T (p - c - s) + c`` in pixels, written in
    grid_sample's normalised (x, y) coordinates (align_corners=False).
    """
    c = size // 2
    theta = np.radians(np.asarray(angles, dtype=np.float64))[:, None, None]
    cos, sin = np.cos(theta), np.sin(theta)
    shifts = np.asarray(shifts, dtype=np.float64)
    coords = np.arange(size) - c
    py = coords[None, :, None] - shifts[:, 0, None, None]
    px = coords[None, None, :] - shifts[:, 1, None, None]
    grid = np.empty((len(theta), size, size, 2), dtype=np.float32)
    grid[..., 0] = (2 * (cos * px + sin * py + c) + 1) / size - 1
    grid[..., 1] = (2 * (-sin * px + cos * py + c) + 1) / size - 1
    return torch.from_numpy(grid)


def _transform(images: torch.Tensor, angles: np.ndarray, shifts: np.ndarray) -> torch.Tensor:
    grid = _grid(angles, shifts, images.shape[-1])
    out = F.grid_sample(images[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out[:, 0]


def transform_images(images: np.ndarray, angles: np.ndarray, shifts: np.ndarray | None = None) -> np.ndarray:
    """Rotate (n, b, b) images by ``angles`` degrees about ``b // 2``, then shift by ``(dy, dx)``.

    Bilinear, zero outside: ``out(c + s + R(angle) r) = image(c + r)``. Applying
    a :class:`Classes2D`'s ``angles`` and ``shifts`` gives the aligned images.
    """
    images = np.asarray(images, dtype=np.float32)
    n = len(images)
    angles = np.broadcast_to(np.asarray(angles, dtype=np.float64), (n,))
    shifts = np.zeros((n, 2)) if shifts is None else np.broadcast_to(np.asarray(shifts, dtype=np.float64), (n, 2))
    out = np.empty_like(images)
    step = max(1, _BLOCK_ELEMENTS // (8 * images.shape[-1] ** 2))
    with torch.no_grad():
        for i in range(0, n, step):
            out[i:i + step] = _transform(
                torch.from_numpy(np.ascontiguousarray(images[i:i + step])), angles[i:i + step], shifts[i:i + step]
            ).numpy()
    return out


# ----------------------------------------------------------------------------- statistics

GRAM_LIMIT = 2000
"""PCA through the Gram matrix (eigenvectors of the smaller of x x^T and x^T x) up to this size; a
randomised SVD beyond."""

POLAR_ANGLES = 64
"""Angles sampled on each ring of the power spectrum for the rotation-invariant features."""

HARMONICS = slice(0, 17, 2)
"""Angular harmonics kept as invariants: the even ones up to 16 (a power spectrum is centrosymmetric,
so the odd ones are zero)."""


def _pca(x: np.ndarray, components: int, seed: int) -> np.ndarray:
    """Coordinates (n, q) of the rows of ``x`` on their first principal components."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=0)
    n, p = x.shape
    q = max(1, min(components, n, p))
    if min(n, p) <= GRAM_LIMIT:
        # The top q eigenvectors of the smaller Gram matrix (much cheaper than an SVD of x).
        xt = torch.from_numpy(x)  # torch's matrix product honours torch's thread setting
        gram = (xt @ xt.T if n <= p else xt.T @ xt).numpy()
        size = len(gram)
        values, vectors = scipy.linalg.eigh(gram, subset_by_index=[size - q, size - 1])
        values, vectors = values[::-1], vectors[:, ::-1]
        if n <= p:
            return vectors * np.sqrt(np.clip(values, 0, None))
        return x @ vectors
    # Randomised subspace iteration for large problems.
    rng = np.random.default_rng(seed)
    basis = x @ rng.standard_normal((p, q + 10))
    for _ in range(4):
        basis, _ = np.linalg.qr(basis)
        basis, _ = np.linalg.qr(x @ (x.T @ basis))
    u, s, _ = np.linalg.svd(basis.T @ x, full_matrices=False)
    return (basis @ u[:, :q]) * s[:q]


def _fill_empty(points: np.ndarray, labels: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Give each empty cluster the point farthest from its own centroid (from clusters of >= 2)."""
    k = len(centroids)
    counts = np.bincount(labels, minlength=k)
    if np.all(counts > 0):
        return labels
    labels = labels.copy()
    far = ((points - centroids[labels]) ** 2).sum(axis=1)
    for j in np.flatnonzero(counts == 0):
        candidates = np.flatnonzero(counts[labels] > 1)
        if len(candidates) == 0:
            break
        i = candidates[np.argmax(far[candidates])]
        counts[labels[i]] -= 1
        labels[i] = j
        counts[j] = 1
        far[i] = -1.0
    return labels


def _means(points: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    sums = np.zeros((k, points.shape[1]))
    np.add.at(sums, labels, points)
    return sums / np.maximum(counts, 1)[:, None]


def kmeans(points: np.ndarray, labels: np.ndarray, k: int, max_iter: int = 100) -> tuple[np.ndarray, float]:
    """Lloyd's k-means started from a labelling; no cluster is left empty if avoidable.

    Returns the labels and the inertia (sum of squared distances to the centroids).
    """
    points = np.asarray(points, dtype=np.float64)
    labels = _fill_empty(points, np.asarray(labels), _means(points, labels, k))
    for _ in range(max_iter):
        centroids = _means(points, labels, k)
        dist = ((points[:, None, :] - centroids[None]) ** 2).sum(axis=-1)
        new = _fill_empty(points, np.argmin(dist, axis=1), centroids)
        if np.array_equal(new, labels):
            break
        labels = new
    centroids = _means(points, labels, k)
    return labels, float(((points - centroids[labels]) ** 2).sum())


def kmeans_pp(points: np.ndarray, k: int, rng: np.random.Generator, restarts: int = 5) -> np.ndarray:
    """k-means with k-means++ starts; the labels of the best of ``restarts`` runs."""
    points = np.asarray(points, dtype=np.float64)
    n = len(points)
    best, best_inertia = None, math.inf
    for _ in range(restarts):
        centres = [points[rng.integers(n)]]
        for _ in range(1, k):
            d2 = np.min(((points[:, None, :] - np.array(centres)[None]) ** 2).sum(axis=-1), axis=1)
            total = d2.sum()
            i = rng.choice(n, p=d2 / total) if total > 0 else rng.integers(n)
            centres.append(points[i])
        dist = ((points[:, None, :] - np.array(centres)[None]) ** 2).sum(axis=-1)
        labels, inertia = kmeans(points, np.argmin(dist, axis=1), k)
        if inertia < best_inertia:
            best, best_inertia = labels, inertia
    return best


# ----------------------------------------------------------------------------- alignment


def _invariants(images: np.ndarray, mask: np.ndarray, cutoff: float) -> np.ndarray:
    """Rotation- and translation-invariant features: angular Fourier magnitudes of the
    power spectrum on rings up to ``cutoff`` cycles/pixel (log scaled)."""
    size = images.shape[-1]
    power = np.abs(np.fft.fftshift(np.fft.fft2(images * mask), axes=(-2, -1))) ** 2
    n_radii = max(2, int(round(cutoff * size)))
    n_theta = POLAR_ANGLES
    radii = np.arange(1, n_radii + 1, dtype=np.float64)
    theta = np.arange(n_theta) * (2 * math.pi / n_theta)
    c = size // 2
    sx = c + radii[:, None] * np.cos(theta)[None, :]
    sy = c + radii[:, None] * np.sin(theta)[None, :]
    grid = np.stack([(2 * sx + 1) / size - 1, (2 * sy + 1) / size - 1], axis=-1)
    with torch.no_grad():
        polar = F.grid_sample(
            torch.from_numpy(power.astype(np.float32))[:, None],
            torch.from_numpy(grid.astype(np.float32))[None].expand(len(images), -1, -1, -1),
            mode="bilinear",
            padding_mode="border",
            align_corners=False,
        )[:, 0].numpy()  # (n, radii, theta)
    # The power spectrum is centrosymmetric: only even harmonics carry anything.
    harmonics = np.abs(np.fft.rfft(polar, axis=-1))[..., HARMONICS]
    return np.log(harmonics + 1e-3 * harmonics[..., :1].mean() + 1e-12).reshape(len(images), -1)


def _centre(refs: np.ndarray, mask: np.ndarray, limit: float) -> np.ndarray:
    """Move each reference so that the centre of mass of its squared density is at ``b // 2``."""
    size = refs.shape[-1]
    c = size // 2
    weight = refs**2 * mask
    total = weight.sum(axis=(1, 2))
    total = np.where(total > 0, total, 1.0)
    yy, xx = np.mgrid[:size, :size]
    com = np.stack([(weight * yy).sum(axis=(1, 2)) / total, (weight * xx).sum(axis=(1, 2)) / total], axis=1)
    shift = np.clip(c - com, -limit, limit)
    return transform_images(refs, np.zeros(len(refs)), shift).astype(np.float64)


def _turned_references(references: np.ndarray, mask: torch.Tensor, rot_angles: np.ndarray) -> torch.Tensor:
    """Every reference turned by every angle, masked, mean 0 and unit norm inside the mask:
    (k * R, b, b), reference-major."""
    k = len(references)
    refs = torch.from_numpy(np.asarray(references, dtype=np.float32))
    rotated = _transform(refs.repeat_interleave(len(rot_angles), dim=0), np.tile(rot_angles, k),
                         np.zeros((k * len(rot_angles), 2)))
    rotated = rotated * mask
    inside = rotated[:, mask]
    rotated = (rotated - inside.mean(dim=1)[:, None, None]) * mask
    return rotated / rotated.flatten(1).norm(dim=1).clamp_min(1e-12)[:, None, None]


def _windowed_correlation(rotated: torch.Tensor, size: int, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The two matrices of a cross-correlation with ``rotated`` restricted to shifts -m..m.

    The correlation is needed only for those shifts: an inverse DFT restricted to the W = 2m + 1
    rows and columns (two matrix products) replaces a full inverse FFT. A phase ramp moves shift
    -m to index 0, so the window is indices 0..W-1. Returns ``g`` (h, b, kR * W), that takes an
    image's half spectrum (transposed to (h, ., b)) to the rows, and ``dft_x`` (W, h), that takes
    rows to the window (h = b // 2 + 1)."""
    half = size // 2 + 1
    width = 2 * m + 1
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    ramp = torch.from_numpy(np.exp(-2j * np.pi * m * (fy + fx)).astype(np.complex64))
    ref_ft = torch.conj(torch.fft.rfft2(rotated)) * ramp  # (kR, b, h)
    j = np.arange(width)
    dft_y = np.exp(2j * np.pi * np.outer(j, np.arange(size)) / size)  # (W, b)
    weight_x = np.full(half, 2.0)  # the half spectrum stands for both halves ...
    weight_x[0] = 1.0
    if size % 2 == 0:
        weight_x[-1] = 1.0  # ... except the zero and Nyquist columns
    dft_x = torch.from_numpy((weight_x * np.exp(2j * np.pi * np.outer(j, np.arange(half)) / size)
                              / size**2).astype(np.complex64))  # (W, h)
    # g[x, y, (ref, wy)] = dft_y[wy, y] * conj(ref)[y, x]
    g = (torch.from_numpy(dft_y.T.astype(np.complex64))[None, :, None, :]
         * ref_ft.permute(2, 1, 0)[..., None]).reshape(half, size, len(rotated) * width)
    return g, dft_x


def _best_turn_and_shift(cc: torch.Tensor, step: float, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From correlations (c, k, R, W, W) over turns of ``step`` degrees and shifts -m..m: the
    angle (c, k), shift (c, k, 2) as (dy, dx) that align each image to each reference, refined
    by parabolas over turns and over shifts, and the peak (c, k)."""
    c, k, n_rot, width = cc.shape[:4]
    flat = cc.reshape(c, k, -1)
    peak, where = flat.max(dim=-1)  # (c, k)
    r = where // (width * width)
    oy = (where // width) % width
    ox = where % width
    # Sub-step refinement: over rotations (best shift at each) and over shifts.
    per_rot = cc.amax(dim=(-2, -1))  # (c, k, R)
    take = lambda t, idx: torch.gather(t, -1, idx[..., None])[..., 0]  # noqa: E731
    if n_rot >= 3:
        dr = parabola_offset(take(per_rot, (r - 1) % n_rot), peak, take(per_rot, (r + 1) % n_rot))
    else:
        dr = torch.zeros_like(peak)

    def at(dy: int, dx: int) -> torch.Tensor:
        yy = (oy + dy).clamp(0, width - 1)
        xx = (ox + dx).clamp(0, width - 1)
        return take(flat, r * width * width + yy * width + xx)

    inner_y = (oy > 0) & (oy < width - 1)
    inner_x = (ox > 0) & (ox < width - 1)
    dy = torch.where(inner_y, parabola_offset(at(-1, 0), peak, at(1, 0)), torch.zeros_like(peak))
    dx = torch.where(inner_x, parabola_offset(at(0, -1), peak, at(0, 1)), torch.zeros_like(peak))
    phi = np.radians((r.double() + dr.double()).numpy() * step)  # reference turned by phi ...
    ty = (oy - m).double().numpy() + dy.double().numpy()  # ... then moved by t matches the image
    tx = (ox - m).double().numpy() + dx.double().numpy()
    # Undo: rotate by -phi, then shift by -R(-phi) t.
    cos, sin = np.cos(phi), np.sin(phi)
    shifts = np.stack([-(-sin * tx + cos * ty), -(cos * tx + sin * ty)], axis=-1)
    return np.degrees(-phi) % 360.0, shifts, peak.double().numpy()


def align_images(
    images: np.ndarray, references: np.ndarray, mask: np.ndarray, angular_step: float, max_shift: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best in-plane rotation and shift of every image onto every reference.

    images: (n, b, b), normalised; references: (k, b, b). The references are
    turned every ``angular_step`` degrees (masked, mean 0, unit norm) and
    cross-correlated with the images in Fourier space over shifts up to
    ``max_shift`` pixels (whole pixels, then refined by parabolas, as is the
    angle). Returns angles (n, k) in [0, 360) and shifts (n, k, 2) as
    (dy, dx) that align each image to each reference (:func:`transform_images`),
    and the correlation peaks (n, k).
    """
    n, size = len(images), images.shape[-1]
    k = len(references)
    n_rot = max(1, math.ceil(360.0 / angular_step - 1e-9))
    step = 360.0 / n_rot
    m = int(math.floor(max_shift))
    width = 2 * m + 1
    half = size // 2 + 1
    angles = np.empty((n, k))
    shifts = np.empty((n, k, 2))
    peaks = np.empty((n, k))
    with torch.no_grad():
        rotated = _turned_references(references, torch.from_numpy(mask), np.arange(n_rot) * step)
        g, dft_x = _windowed_correlation(rotated, size, m)
        chunk = max(1, _BLOCK_ELEMENTS // (2 * half * k * n_rot * width))
        for i0 in range(0, n, chunk):
            img = torch.from_numpy(np.asarray(images[i0:i0 + chunk], dtype=np.float32))
            c = len(img)
            rows = torch.bmm(torch.fft.rfft2(img).permute(2, 0, 1).contiguous(), g)  # (h, c, kR * W): y done
            cc = (dft_x @ rows.reshape(half, -1)).real  # (W_x, c * kR * W_y)
            cc = cc.reshape(width, c, k, n_rot, width).permute(1, 2, 3, 4, 0).contiguous()  # (c, k, R, y, x)
            angles[i0:i0 + c], shifts[i0:i0 + c], peaks[i0:i0 + c] = _best_turn_and_shift(cc, step, m)
    return angles, shifts, peaks


def _masked_correlation(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Pearson correlation over ``mask`` of matching images in ``a`` and ``b``."""
    x = a[..., mask] - a[..., mask].mean(axis=-1, keepdims=True)
    y = b[..., mask] - b[..., mask].mean(axis=-1, keepdims=True)
    denom = np.sqrt((x**2).sum(axis=-1) * (y**2).sum(axis=-1))
    return (x * y).sum(axis=-1) / np.where(denom > 0, denom, 1.0)


def _class_averages(images, labels, angles, shifts, k, mask) -> np.ndarray:
    """Masked, normalised averages of each class's members aligned with their own (angle, shift)."""
    aligned = transform_images(images, angles, shifts).astype(np.float64)
    averages = np.zeros((k,) + images.shape[1:])
    for j in range(k):
        members = labels == j
        if members.any():
            averages[j] = aligned[members].mean(axis=0)
    return normalise_masked(averages, mask) * mask


# ----------------------------------------------------------------------------- classification


def _check_images(images: np.ndarray, k: int) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise InvalidValue(f"expected square images (n, b, b), got shape {images.shape}")
    if len(images) < k:
        raise InvalidValue(f"cannot make {k} classes from {len(images)} images: need at least as many images as classes")
    if not np.all(np.isfinite(images)):
        raise InvalidValue("images contain NaN or infinite values")
    return images


def _starting_references(work: np.ndarray, mask: np.ndarray, cutoff: float, config: Classify2DConfig,
                         rng: np.random.Generator) -> np.ndarray:
    """Rotation-invariant footprints (up to ``cutoff`` cycles/pixel) -> PCA -> k-means; the member
    nearest each centroid is a reference (centred). (k, b, b)."""
    n, size, k = len(work), work.shape[-1], config.n_classes
    features = _invariants(work, mask, cutoff)
    features = (features - features.mean(axis=0)) / (features.std(axis=0) + 1e-12)
    coords = _pca(features, config.pca_components, config.seed)
    labels = kmeans_pp(coords, k, rng) if k > 1 else np.zeros(n, dtype=np.int64)
    centroids = _means(coords, labels, k)
    dist = ((coords - centroids[labels]) ** 2).sum(axis=1)
    refs = np.zeros((k, size, size))
    for j in range(k):
        members = np.flatnonzero(labels == j)
        if len(members) == 0:
            members = np.arange(n)
        refs[j] = work[members[np.argmin(dist[members])]]
    return _centre(normalise_masked(refs, mask) * mask, mask, size / 4)


def _classify_round(work: np.ndarray, refs: np.ndarray, mask: np.ndarray, config: Classify2DConfig,
                    max_shift: float) -> tuple[np.ndarray, np.ndarray]:
    """One iteration: align every image to every reference, k-means the images aligned to their
    best reference (PCA of the masked pixels), new references from the classes. (labels, refs)."""
    n, size, k = len(work), work.shape[-1], config.n_classes
    angles, shifts, peaks = align_images(work, refs, mask, config.angular_step, max_shift)
    best = np.argmax(peaks, axis=1)
    rows = np.arange(n)
    aligned = transform_images(work, angles[rows, best], shifts[rows, best])
    coords = _pca(aligned.reshape(n, -1)[:, mask.ravel()].astype(np.float64), config.pca_components, config.seed)
    if k > 1:
        # Seed empty best-reference classes with the worst-fitting images.
        counts = np.bincount(best, minlength=k)
        if np.any(counts == 0):
            order = np.argsort(peaks[rows, best], kind="stable")
            order = order[counts[best[order]] > 1]
            for j, i in zip(np.flatnonzero(counts == 0), order):
                best[i] = j
        labels, _ = kmeans(coords, best, k)
    else:
        labels = np.zeros(n, dtype=np.int64)
    refs = _class_averages(work, labels, angles[rows, labels], shifts[rows, labels], k, mask)
    for j in np.flatnonzero(np.bincount(labels, minlength=k) == 0):
        refs[j] = work[np.argmin(peaks[rows, labels])] * mask  # a re-seed for an empty class
    return labels, _centre(refs, mask, size / 4)


def _final_classes(raw: np.ndarray, work: np.ndarray, labels: np.ndarray, refs: np.ndarray, mask: np.ndarray,
                   config: Classify2DConfig, max_shift: float) -> Classes2D:
    """Each image aligned to its own class; averages of the unfiltered images; classes numbered
    by size, largest first, empty ones dropped."""
    n, k = len(work), config.n_classes
    angles, shifts = np.zeros(n), np.zeros((n, 2))
    for j in range(k):
        members = np.flatnonzero(labels == j)
        if len(members):
            a, t, _ = align_images(work[members], refs[j:j + 1], mask, config.angular_step, max_shift)
            angles[members], shifts[members] = a[:, 0], t[:, 0]
    aligned = transform_images(raw, angles, shifts).astype(np.float64)
    counts = np.bincount(labels, minlength=k)
    order = np.argsort(-counts, kind="stable")
    order = order[counts[order] > 0]
    relabel = np.full(k, -1, dtype=np.int64)
    relabel[order] = np.arange(len(order))
    labels = relabel[labels]
    averages = np.stack([aligned[labels == j].mean(axis=0) for j in range(len(order))])
    return Classes2D(
        labels=labels,
        angles=angles % 360.0,
        shifts=shifts,
        averages=averages.astype(np.float32),
        counts=counts[order].astype(np.int64),
        score=_masked_correlation(aligned, averages[labels], mask),
    )


def classify2d(
    images: np.ndarray, config: Classify2DConfig = Classify2DConfig(), progress: Progress | None = None
) -> Classes2D:
    """Reference-free alignment and classification of (n, b, b) images into ``config.n_classes``.

    See the module docstring for the method. Deterministic for ``config.seed``.
    Progress is reported after the start and after each iteration.
    """
    images = _check_images(images, config.n_classes)
    size = images.shape[-1]
    rng = np.random.default_rng(config.seed)
    total = config.iterations + 2
    mask = circular_mask(size, config.mask_radius)
    max_shift = config.max_shift * size
    raw = normalise_masked(images, mask)
    work = normalise_masked(gaussian_lowpass_images(raw, config.lowpass), mask)
    # the rotation-invariant features use the band the low-pass keeps (gain >= 1/2)
    cutoff = math.sqrt(math.log(2)) / (config.lowpass or LOWPASS_PIXELS)
    refs = _starting_references(work, mask, cutoff, config, rng)
    report(progress, 1, total, "start: references from rotation-invariant features")
    labels = None
    for it in range(1, config.iterations + 1):
        labels, refs = _classify_round(work, refs, mask, config, max_shift)
        sizes = np.sort(np.bincount(labels, minlength=config.n_classes))[::-1]
        report(progress, it + 1, total, f"iteration {it}/{config.iterations}: classes of {', '.join(map(str, sizes))}")
    result = _final_classes(raw, work, labels, refs, mask, config, max_shift)
    report(progress, total, total, "done")
    return result
