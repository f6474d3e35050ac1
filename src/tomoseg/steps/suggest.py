"""Where to click next: tiles whose label would most likely fix the network (issue #19).

A user marks a few tiles, trains, looks, and adds tiles; this step proposes them. Every candidate is
a ``tile_size`` x ``tile_size`` tile on one slice, centred on a grid ``stride`` pixels apart, wholly
inside the slice. Each strategy gives every candidate a value from the feature's score map(s) on
that slice; the best candidates are taken greedily, none overlapping an existing box of the
feature (its tile, on the box's slice or within ``tile_size / 8`` slices of it, where the image is
nearly the same) and none closer than ``tile_size`` voxels (3D distance) to another suggestion, so
that suggestions spread over the volume and its slices. The strategies:

- ``uncertain``: the tile's mean of ``exp(-((s - t) / band)^2)``: many pixels scored near the
  threshold ``t``, where one label moves the decision most (never 0, so a network that scores
  everything low still ranks its tiles by how close they come).
- ``disagree``: the tile's mean spread (standard deviation) between several maps of the feature:
  other annotators' or seeds' networks, or one network under the symmetries of the slice grid
  (:func:`tomoseg.steps.segment.score_symmetries`); where they differ, none is sure. A spread or
  disagreement map of ``tomoseg consensus`` can stand in for the maps (``spread``).
- ``false-positive``: pixels scoring >= ``t`` that are likely wrong: where another feature's
  network fires too (``others``), else detections far from every positive box (weighted by the
  distance to the nearest one, saturating at ``far`` voxels): the confident mistakes a
  network makes on what it was never shown.
- ``mixed``: the three above in turn (uncertain, false-positive, disagree where there are several maps).
- ``random``: seeded random tiles: the baseline the others must beat.

Each suggestion says why (``reason``) and how strongly (``score``, the strategy's value).
Pure: arrays in, suggestions out; the same inputs and seed give the same suggestions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tomoseg.errors import InvalidValue
from tomoseg.types import Box

STRATEGIES = ("uncertain", "disagree", "false-positive", "mixed", "random")
"""The strategies by name (``tomoseg suggest --strategy``)."""


@dataclass(frozen=True)
class SuggestConfig:
    """n: suggestions wanted. strategy: one of :data:`STRATEGIES` (default ``uncertain``: ahead of random
    tiles on membranes in every run measured, level on filaments, behind on particles, where ``random``
    is the advice: docs/accuracy.md "Where to click next"). threshold: the score that decides
    (1 = the training positives' mean). band: half-width of the "near the threshold" band.
    tile_size: of the tiles (the training tiles' size). stride: candidate spacing in pixels.
    far: distance in voxels from the nearest positive box at which a detection counts fully as
    unverified (false-positive, without other features' maps). seed: for ``random`` and ties."""

    n: int = 10
    strategy: str = "uncertain"
    threshold: float = 1.0
    band: float = 0.5
    tile_size: int = 64
    stride: int = 16
    far: float = 128.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise InvalidValue(f"unknown `strategy` {self.strategy!r}; choose one of {', '.join(STRATEGIES)}")
        if self.n < 1:
            raise InvalidValue(f"`n` must be >= 1, got {self.n}")
        for name in ("threshold", "band", "far"):
            if not getattr(self, name) > 0:
                raise InvalidValue(f"`{name}` must be > 0, got {getattr(self, name)}")
        if self.tile_size < 2 or self.stride < 1:
            raise InvalidValue(f"`tile_size` must be >= 2 and `stride` >= 1, got {self.tile_size}, {self.stride}")


@dataclass(frozen=True)
class Suggestion:
    """A tile to label: centre in voxels (``data[z, y, x]``), why, and the strategy's value there."""

    x: int
    y: int
    z: int
    reason: str
    score: float


def _tile_means(maps: np.ndarray, tile: int) -> np.ndarray:
    """The mean of each (z, y, x) slice over the tile centred at every pixel (zero outside)."""
    from scipy.ndimage import uniform_filter  # here: the CLI lists the strategies without scipy

    return uniform_filter(np.asarray(maps, dtype=np.float32), size=(1, tile, tile), mode="constant")


def _grid(shape: tuple[int, int], tile: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Tile centres (y, x) on a ``stride`` grid with every tile inside a slice of ``shape``, the
    grid centred in the slice."""
    axes = []
    for n in shape:
        lo, hi = tile // 2, n - (tile - tile // 2)
        if hi < lo:
            raise InvalidValue(f"slices of {shape[1]} x {shape[0]} pixels are smaller than a {tile}-pixel tile")
        count = (hi - lo) // stride + 1
        start = lo + ((hi - lo) - (count - 1) * stride) // 2
        axes.append(start + stride * np.arange(count))
    return axes[0], axes[1]


def _values(name: str, scores: np.ndarray, variants: np.ndarray | None, others: np.ndarray | None,
            config: SuggestConfig, spread: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """The per-pixel value of a strategy (z, y, x) and how its reason reads."""
    t = config.threshold
    if name == "uncertain":
        return np.exp(-(((scores - t) / config.band) ** 2)), "uncertain: the tile scores {:.2f} near the threshold"
    if name == "disagree":
        return (variants.std(axis=0) if spread is None else spread), "disagree: the networks differ by {:.2f} on average"
    if others is not None:
        return (np.minimum(scores, others.max(axis=0)) >= t).astype(np.float32), \
            "false positive?: {:.0%} of the tile scores >= threshold where another feature's network fires too"
    return (scores >= t).astype(np.float32), "false positive?: {:.0%} of the tile scores >= threshold far from positive boxes"


def suggest_tiles(
    scores: np.ndarray,
    slices: np.ndarray | None = None,
    boxes: list[Box] = (),
    config: SuggestConfig = SuggestConfig(),
    variants: np.ndarray | None = None,
    others: np.ndarray | None = None,
    spread: np.ndarray | None = None,
) -> list[Suggestion]:
    """Suggest ``config.n`` tiles to label next, best first.

    scores: the feature's score map on some slices, float (z, y, x). slices: the z of each of
    those slices in the tomogram (default 0, 1, ...). boxes: the feature's existing boxes (not
    suggested again, nor anything within a tile of them; positive ones anchor false-positive).
    variants: (m, z, y, x) maps of the same feature by several networks or symmetries (m >= 2), for
    ``disagree`` (and ``mixed``). others: (f, z, y, x) maps of other features, for false-positive.
    spread: (z, y, x) disagreement between annotators' maps (``tomoseg consensus --spread`` or
    ``--disagreement``), for ``disagree`` instead of ``variants``.
    Fewer than ``n`` come back when the strategy finds nothing more to fix (all values 0).
    """
    scores = np.asarray(scores, dtype=np.float32)
    if scores.ndim != 3:
        raise InvalidValue(f"`scores` must be (z, y, x) slices, got shape {scores.shape}")
    slices = np.arange(len(scores)) if slices is None else np.asarray(slices, dtype=np.int64)
    if len(slices) != len(scores):
        raise InvalidValue(f"`slices` names {len(slices)} slices for {len(scores)} score slices")
    for label, extra in (("variants", variants), ("others", others)):
        if extra is not None and (extra.ndim != 4 or extra.shape[1:] != scores.shape):
            raise InvalidValue(f"`{label}` must be (m, z, y, x) maps on the score map's slices {scores.shape}, "
                               f"got {extra.shape}")
    if spread is not None and np.shape(spread) != scores.shape:
        raise InvalidValue(f"`spread` must be a map on the score map's slices {scores.shape}, got {np.shape(spread)}")
    several = spread is not None or (variants is not None and len(variants) > 1)
    if config.strategy == "disagree" and not several:
        raise InvalidValue("the `strategy` disagree needs two or more maps of the feature (`variants`) or a `spread` map")
    gy, gx = _grid(scores.shape[1:], config.tile_size, config.stride)
    zz, yy, xx = (a.ravel() for a in np.meshgrid(np.arange(len(slices)), gy, gx, indexing="ij"))
    centres = np.stack([xx, yy, slices[zz]], axis=1).astype(np.float64)  # x, y, z voxels
    rng = np.random.default_rng(config.seed)
    tie = rng.random(len(centres)) * 1e-6  # seeded tie-break: equal values are taken in a seeded order

    if config.strategy == "random":
        ranked = [(np.argsort(-rng.random(len(centres)), kind="stable"), np.ones(len(centres)), "random")]
    else:
        names = ["uncertain", "false-positive"] + (["disagree"] if several else [])
        names = names if config.strategy == "mixed" else [config.strategy]
        ranked = []
        positives = np.array([[b.x, b.y, b.z] for b in boxes if b.positive], dtype=np.float64).reshape(-1, 3)
        for name in names:
            pixel, reason = _values(name, scores, variants, others, config, spread)
            value = _tile_means(pixel, config.tile_size)[zz, yy, xx].astype(np.float64)
            if name == "false-positive" and others is None:
                value *= _novelty(centres, positives, config.far)
            ranked.append((np.argsort(-(value + tie * (value > 0)), kind="stable"), value, reason))

    overlaps = _overlapping(centres, boxes, config.tile_size)
    blocked = np.zeros((0, 3))
    cursors = [0] * len(ranked)
    out: list[Suggestion] = []
    exhausted = [False] * len(ranked)
    turn = 0
    while len(out) < config.n and not all(exhausted):
        k = turn % len(ranked)
        turn += 1
        if exhausted[k]:
            continue
        order, value, reason = ranked[k]
        while cursors[k] < len(order):
            i = order[cursors[k]]
            cursors[k] += 1
            if value[i] <= 0:
                cursors[k] = len(order)
                break
            if overlaps[i] or (len(blocked) and np.min(np.sum((blocked - centres[i]) ** 2, axis=1)) < config.tile_size**2):
                continue
            blocked = np.vstack([blocked, centres[i]])
            x, y, z = (int(v) for v in centres[i])
            out.append(Suggestion(x, y, z, reason.format(value[i]) if "{" in reason else reason, float(value[i])))
            break
        else:
            exhausted[k] = True
        if cursors[k] >= len(order):
            exhausted[k] = True
    return out


def _overlapping(centres: np.ndarray, boxes: list[Box], tile: int) -> np.ndarray:
    """Whether each candidate's tile overlaps a box's tile on the box's slice or within tile / 8 slices."""
    reach = np.array([tile, tile, tile / 8])
    out = np.zeros(len(centres), dtype=bool)
    for b in boxes:
        out |= np.all(np.abs(centres - (b.x, b.y, b.z)) < reach, axis=1)
    return out


def _novelty(centres: np.ndarray, positives: np.ndarray, far: float) -> np.ndarray:
    """min(1, distance to the nearest positive box / far) for each centre (1 without positives)."""
    if len(positives) == 0:
        return np.ones(len(centres))
    from scipy.spatial import cKDTree

    d, _ = cKDTree(positives).query(centres)
    return np.minimum(1.0, d / far)
