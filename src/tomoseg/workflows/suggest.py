"""Suggested tiles from files: a feature's network on some slices of a tomogram -> ``next.csv``.

``tomoseg suggest`` and ``tomoseg project suggest`` call :func:`suggest_from_models`; the method is
:mod:`tomoseg.steps.suggest`. The networks run on at most ``max_slices`` slices, evenly spaced, fewer
on large slices (suggestions fall on those slices), so a round costs seconds and a few hundred MB
even on a large tomogram.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence

import numpy as np

from tomoseg.errors import TomosegError, about
from tomoseg.io.atomic import check_writable
from tomoseg.io.boxes import read_boxes, write_suggestions
from tomoseg.io.model_file import load_model
from tomoseg.io.mrc import read_volume
from tomoseg.io.pages import Paged
from tomoseg.nn.model import Model
from tomoseg.progress import Progress, report
from tomoseg.steps.segment import score_slices, score_symmetries, slices_with_context
from tomoseg.steps.suggest import SuggestConfig, Suggestion, suggest_tiles
from tomoseg.types import Box, Path_

MAX_SLICES = 48
"""Slices the networks run on for one round of suggestions, at most (evenly spaced)."""

SYMMETRIES = 4
"""Maps of one network under the slice grid's symmetries that stand in for several networks (disagree)."""


def sampled_slices(depth: int, count: int = MAX_SLICES, margin: int = 0) -> np.ndarray:
    """``count`` slices evenly spaced over ``depth`` (all when fewer), ``margin`` slices from each face."""
    lo, hi = min(margin, depth // 2), max(min(margin, depth // 2), depth - margin)
    if hi - lo <= count:
        return np.arange(lo, hi)
    return np.unique(np.round(np.linspace(lo, hi - 1, count)).astype(np.int64))


PIXEL_BUDGET = 1 << 25
"""Pixels per map kept for one round (32 M: 48 slices of 800 x 800, 8 of 2048 x 2048): fewer slices
are scored on larger ones, so a round's memory stays about 3 x 128 MB whatever the tomogram."""


def _maps(model: Model, data, slices: np.ndarray) -> np.ndarray:
    """The model's scores on each of ``slices``: (z, y, x)."""
    out = np.empty((len(slices), *data.shape[1:]), dtype=np.float32)
    for i, z in enumerate(slices):
        stack = slices_with_context(data, int(z), int(z) + 1, model.net.config.context)
        out[i] = score_slices(model.net, model.amplitude, stack)[0]
    return out


def _scores_and_spread(model: Model, data, slices: np.ndarray, symmetries: int) -> tuple[np.ndarray, np.ndarray]:
    """The model's scores on each of ``slices`` and the spread (standard deviation) of its maps under
    the first ``symmetries`` symmetries of the slice grid, slice by slice (never all maps at once)."""
    scores = np.empty((len(slices), *data.shape[1:]), dtype=np.float32)
    spread = np.empty_like(scores)
    for i, z in enumerate(slices):
        stack = slices_with_context(data, int(z), int(z) + 1, model.net.config.context)
        maps = score_symmetries(model.net, model.amplitude, stack, symmetries)[:, 0]
        scores[i], spread[i] = maps[0], maps.std(axis=0)
    return scores, spread


def suggest_from_models(
    model: Model,
    volume,
    boxes: Sequence[Box] = (),
    config: SuggestConfig = SuggestConfig(),
    models: Sequence[Model] = (),
    others: Sequence[Model] = (),
    max_slices: int = MAX_SLICES,
    progress: Progress | None = None,
    spread=None,
) -> list[Suggestion]:
    """Suggestions for the feature of ``model`` on a (z, y, x) ``volume`` (any array that slices along
    z). ``models``: more networks of the same feature (other annotators, seeds) for ``disagree``;
    without them, the model under :data:`SYMMETRIES` symmetries of the slice grid stands in.
    ``others``: networks of other features, for ``false-positive``. ``spread``: a (z, y, x) map of the
    annotators' disagreement (``tomoseg consensus --spread``) on the volume's grid, for ``disagree``.
    At most ``max_slices`` slices are scored, fewer on large slices (:data:`PIXEL_BUDGET`)."""
    pixels = int(np.prod(volume.shape[1:]))
    slices = sampled_slices(volume.shape[0], max(1, min(max_slices, PIXEL_BUDGET // max(pixels, 1))))
    steps = 1 + len(models) + len(others)
    disagree = config.strategy in ("disagree", "mixed") and spread is None
    if disagree and not models:
        scores, spread_slices = _scores_and_spread(model, volume, slices, SYMMETRIES)
    else:
        scores = _maps(model, volume, slices)
        spread_slices = None
    report(progress, 1, steps, f"scored {len(slices)} slices with {model.name}")
    if disagree and models:  # the annotators' networks: their spread, accumulated (Welford) map by map
        mean, m2 = scores.astype(np.float64), np.zeros(scores.shape)
        for i, m in enumerate(models, start=2):
            x = _maps(m, volume, slices)
            delta = x - mean
            mean += delta / i
            m2 += delta * (x - mean)
            report(progress, i, steps, f"scored {len(slices)} slices with another network of {model.name}")
        spread_slices = np.sqrt(m2 / (len(models) + 1)).astype(np.float32)
    if spread is not None:
        spread_slices = np.stack([np.asarray(spread[int(z)], dtype=np.float32) for z in slices])
    strongest_other = None
    for k, m in enumerate(others, start=1):
        x = _maps(m, volume, slices)
        strongest_other = x if strongest_other is None else np.maximum(strongest_other, x)
        report(progress, k + 1 + len(models), steps, f"scored {len(slices)} slices with {m.name}")
    return suggest_tiles(scores, slices, list(boxes), config, None,
                         None if strongest_other is None else strongest_other[None], spread_slices)


def suggest_file(
    model_path: Path_,
    tomogram: Path_,
    output: Path_,
    config: SuggestConfig = SuggestConfig(),
    boxes: Path_ | None = None,
    models: Sequence[Path_] = (),
    others: Sequence[Path_] = (),
    voxel_size: float | None = None,
    force: bool = False,
    max_slices: int = MAX_SLICES,
    overwrite: bool = False,
    progress: Progress | None = None,
    spread: Path_ | None = None,
) -> list[Suggestion]:
    """``tomoseg suggest``: write the suggested tiles of ``model_path``'s feature on ``tomogram`` to
    ``output`` (x,y,z,kind,reason,score with kind ``?``: :func:`tomoseg.io.boxes.write_suggestions`).
    ``boxes``: the feature's box CSV so far (not suggested again). ``models``: more networks of the
    same feature (other annotators or seeds: ``tomoseg consensus``'s inputs); ``others``: networks of
    other features. ``spread``: a spread or disagreement map of ``tomoseg consensus`` (the annotators'
    maps' disagreement) on the tomogram's grid, for ``disagree``. Every network must suit the
    tomogram (:func:`check_compatible`)."""
    from tomoseg.workflows.pipeline import check_compatible

    check_writable(output, inputs=(model_path, tomogram, *models, *others, *([spread] if spread else [])),
                   overwrite=overwrite)
    loaded = {os.fspath(path): load_model(path) for path in (model_path, *models, *others)}
    model = loaded[os.fspath(model_path)]
    for path in models:
        if loaded[os.fspath(path)].name != model.name:
            raise TomosegError(f"{path}: a network of {loaded[os.fspath(path)].name!r}, not of {model.name!r}: "
                               "give networks of other features as `others`")
    known = read_boxes(boxes) if boxes is not None else []
    with contextlib.ExitStack() as stack:  # every volume opened here is closed, whatever happens
        tomo = stack.enter_context(read_volume(tomogram, voxel_size=voxel_size, near_voxel_size=model.voxel_size))
        for path in (model_path, *models, *others):
            check_compatible(loaded[os.fspath(path)], path, tomo, tomogram, force)
        spread_map = None
        if spread is not None:
            spread_map = stack.enter_context(read_volume(spread, voxel_size=tomo.voxel_size))
            if spread_map.data.shape != tomo.data.shape:
                raise TomosegError(f"{spread}: shape {spread_map.data.shape} differs from the tomogram's "
                                   f"{tomo.data.shape}")
        with about(tomogram):
            suggestions = suggest_from_models(model, Paged(tomo.data), known, config,
                                              [loaded[os.fspath(p)] for p in models],
                                              [loaded[os.fspath(p)] for p in others], max_slices, progress,
                                              None if spread_map is None else spread_map.data)
    write_suggestions(output, suggestions)
    return suggestions
