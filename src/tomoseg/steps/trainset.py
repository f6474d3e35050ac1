"""Training sets: 64 x 64 tiles on z-slices, with the feature's mask (METHOD.md section 2)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from tomoseg.errors import InvalidValue
from tomoseg.ops.context import check_context, context_indices
from tomoseg.ops.tiles import cut_tile
from tomoseg.steps.preprocess import PreprocessConfig
from tomoseg.types import Box, TrainingSet

TILE_SIZE = 64


def make_trainset(
    volume: np.ndarray,
    boxes: list[Box],
    mask_of: Callable[[int], np.ndarray] | None,
    name: str,
    voxel_size: float,
    preprocessing: dict | None = None,
    source: str = "",
    tile_size: int = TILE_SIZE,
    context: int = 0,
) -> TrainingSet:
    """Cut tiles around ``boxes`` from ``volume`` and their masks from ``mask_of``.

    ``context``: slab context K (:mod:`tomoseg.ops.context`): each tile is cut from its slice and the
    K slices on each side, (2K + 1, S, S), the nearest slice standing in beyond the volume.

    ``volume``: preprocessed (z, y, x) array (a memory map is fine: only the
    boxed slices are read). ``mask_of(z)`` returns the binary (y, x) mask of
    slice z; positive tiles take the mask inside the tile, negative tiles an
    empty mask. Raises ValueError naming the box (1-based) that is out of the
    volume or whose positive tile has an empty mask.
    """
    check_context(context)
    if not boxes:
        raise InvalidValue("the box list is empty")
    if not any(b.positive for b in boxes):
        raise InvalidValue("there is no positive box: a network needs tiles that show the feature")
    if mask_of is None and any(b.positive for b in boxes):
        raise InvalidValue("positive boxes need a mask or label volume")
    nz = volume.shape[0]
    tiles, masks = [], []
    for row, box in enumerate(boxes, start=1):
        if not 0 <= box.z < nz:
            raise InvalidValue(f"box {row} (x={box.x}, y={box.y}, z={box.z}): z is outside 0..{nz - 1}")
        try:
            tile = cut_tile(volume[box.z], box.x, box.y, tile_size)
            if context:
                around = context_indices(box.z, box.z + 1, nz, context)[0]
                tile = np.stack([tile if z == box.z else cut_tile(volume[z], box.x, box.y, tile_size)
                                 for z in around])
        except ValueError as err:
            raise InvalidValue(f"box {row}: {err}") from None
        if box.positive:
            mask = cut_tile(mask_of(box.z), box.x, box.y, tile_size) > 0
            if not mask.any():
                raise InvalidValue(
                    f"box {row} (x={box.x}, y={box.y}, z={box.z}) is positive but its mask is empty"
                )
        else:
            mask = np.zeros((tile_size, tile_size), dtype=bool)
        tiles.append(np.asarray(tile, dtype=np.float32))
        masks.append(mask.astype(np.float32))
    return TrainingSet(
        tiles=np.stack(tiles),
        masks=np.stack(masks),
        positive=np.array([b.positive for b in boxes], dtype=bool),
        boxes=np.array([(b.x, b.y, b.z) for b in boxes], dtype=np.int64),
        name=name,
        voxel_size=float(voxel_size),
        preprocessing=preprocessing,
        source=source,
    )


def combine_trainsets(sets: Sequence[TrainingSet], tolerance: float = 0.01) -> TrainingSet:
    """One training set from several of the same feature (several tomograms, or annotators), to
    train one network on all of them: tiles in the given order, sources joined by ``"; "``.

    Refuses (ValueError naming the set, 1-based) a set of another feature name, slab context, tile size, voxel
    size (beyond ``tolerance``, relative) or preprocessing (band-pass, clamp, contrast): a network
    sees every tile on one scale. Sets of unknown preprocessing combine only with each other.
    """
    if not sets:
        raise InvalidValue("no training set to combine")
    first = sets[0]
    if len(sets) == 1:
        return first
    base = None if first.preprocessing is None else PreprocessConfig.from_dict(first.preprocessing)
    for i, other in enumerate(sets[1:], start=2):
        where = f"training set {i} ({other.source or other.name})"
        if other.name != first.name:
            raise InvalidValue(f"{where} is of feature {other.name!r}, set 1 of {first.name!r}: one network learns one "
                             "feature")
        if other.context != first.context:
            raise InvalidValue(f"{where} has slab context {other.context}, set 1 {first.context}: one network takes "
                             "one number of slices")
        if other.tile_size != first.tile_size:
            raise InvalidValue(f"{where} has {other.tile_size}-pixel tiles, set 1 {first.tile_size}")
        if abs(other.voxel_size - first.voxel_size) > tolerance * first.voxel_size:
            raise InvalidValue(f"{where} is at {other.voxel_size:g} A per voxel, set 1 at {first.voxel_size:g} A: "
                             "preprocess both tomograms to one voxel size")
        pre = None if other.preprocessing is None else PreprocessConfig.from_dict(other.preprocessing)
        if (pre is None) != (base is None) or (
                pre is not None and (not pre.same_filters(base) or pre.invert != base.invert)):
            raise InvalidValue(f"{where} comes from a tomogram preprocessed otherwise than set 1's (band-pass, clamp "
                             f"or contrast: {pre.describe() if pre else 'unknown'} against "
                             f"{base.describe() if base else 'unknown'})")
    return TrainingSet(
        tiles=np.concatenate([s.tiles for s in sets]),
        masks=np.concatenate([s.masks for s in sets]),
        positive=np.concatenate([s.positive for s in sets]),
        boxes=np.concatenate([s.boxes for s in sets]),
        name=first.name,
        voxel_size=first.voxel_size,
        preprocessing=first.preprocessing,
        source="; ".join(s.source or s.name for s in sets),
    )


def choose_boxes(
    labels: np.ndarray,
    value: int,
    n_positive: int = 10,
    n_negative: int = 100,
    seed: int = 0,
    tile_size: int = TILE_SIZE,
) -> list[Box]:
    """Choose tile centres from a label map as a user would (demo, benchmarks).

    Positive boxes are centred on random voxels of class ``value`` (spread
    over the volume by taking at most one per 3D cell of a coarse grid when
    possible); negative boxes hold no voxel of the class. Tiles lie wholly inside
    the slice. Seeded.
    """
    rng = np.random.default_rng(seed)
    nz, ny, nx = labels.shape
    half = tile_size // 2
    if ny < tile_size or nx < tile_size:
        raise InvalidValue(f"slices of {nx}x{ny} are smaller than one {tile_size}x{tile_size} tile")
    inner = np.zeros(labels.shape, dtype=bool)
    inner[:, half : ny - half + 1, half : nx - half + 1] = True
    zs, ys, xs = np.nonzero((labels == value) & inner)
    if len(zs) == 0:
        raise InvalidValue(f"no voxel of label {value} lies where a whole tile fits")
    order = rng.permutation(len(zs))
    cells = (zs[order] * 4 // nz) * 16 + (ys[order] * 4 // ny) * 4 + (xs[order] * 4 // nx)
    _, first = np.unique(cells, return_index=True)
    picked = list(order[np.sort(first)][rng.permutation(len(first))])
    if len(picked) < n_positive:
        rest = [i for i in order if i not in set(picked)]
        picked += rest[: n_positive - len(picked)]
    positives = [Box(int(xs[i]), int(ys[i]), int(zs[i]), True) for i in picked[:n_positive]]

    negatives: list[Box] = []
    for _ in range(200 * n_negative):
        if len(negatives) == n_negative:
            break
        z = int(rng.integers(nz))
        y = int(rng.integers(half, ny - half + 1))
        x = int(rng.integers(half, nx - half + 1))
        if not (labels[z, y - half : y + half, x - half : x + half] == value).any():
            negatives.append(Box(x, y, z, False))
    if len(negatives) < n_negative:
        raise InvalidValue(f"found only {len(negatives)} tiles free of label {value}")
    return positives + negatives
