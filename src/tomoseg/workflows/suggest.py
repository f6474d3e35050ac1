"""Suggested tiles from files: a feature's network on some slices of a tomogram -> ``next.csv``.

``tomoseg suggest`` and ``tomoseg project suggest`` call :func:`suggest_from_models`; the method is
:mod:`tomoseg.steps.suggest`. The networks run on at most ``max_slices`` slices, evenly spaced
(suggestions fall on those slices), so a suggestion round costs seconds even on a large tomogram.
"""

from __future__ import annotations

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


def _maps(model: Model, data, slices: np.ndarray, symmetries: int = 1) -> np.ndarray:
    """The model's scores on each of ``slices``: (z, y, x), or (symmetries, z, y, x) when > 1."""
    out = []
    for z in slices:
        stack = slices_with_context(data, int(z), int(z) + 1, model.net.config.context)
        if symmetries > 1:
            out.append(score_symmetries(model.net, model.amplitude, stack, symmetries)[:, 0])
        else:
            out.append(score_slices(model.net, model.amplitude, stack)[0])
    return np.stack(out, axis=-3)


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
    annotators' disagreement (``tomoseg consensus --spread``) on the volume's grid, for ``disagree``."""
    slices = sampled_slices(volume.shape[0], max_slices)
    steps = 1 + len(models) + len(others)
    need_variants = config.strategy in ("disagree", "mixed") and spread is None
    if need_variants and not models:
        variants = _maps(model, volume, slices, SYMMETRIES)
        scores = variants[0]
    else:
        scores = _maps(model, volume, slices)
        variants = None
    report(progress, 1, steps, f"scored {len(slices)} slices with {model.name}")
    if need_variants and models:
        maps = [scores]
        for i, m in enumerate(models, start=2):
            maps.append(_maps(m, volume, slices))
            report(progress, i, steps, f"scored {len(slices)} slices with another network of {model.name}")
        variants = np.stack(maps)
    other_maps = []
    for m in others:
        other_maps.append(_maps(m, volume, slices))
        report(progress, len(other_maps) + 1 + len(models), steps, f"scored {len(slices)} slices with {m.name}")
    spread_slices = None if spread is None else np.stack([np.asarray(spread[int(z)], dtype=np.float32) for z in slices])
    return suggest_tiles(scores, slices, list(boxes), config, variants,
                         np.stack(other_maps) if other_maps else None, spread_slices)


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
    tomo = read_volume(tomogram, voxel_size=voxel_size)
    spread_map = None
    if spread is not None:
        spread_map = read_volume(spread, voxel_size=tomo.voxel_size)
        if spread_map.data.shape != tomo.data.shape:
            raise TomosegError(f"{spread}: shape {spread_map.data.shape} differs from the tomogram's {tomo.data.shape}")
    loaded = {}
    for path in (model_path, *models, *others):
        loaded[os.fspath(path)] = load_model(path)
        check_compatible(loaded[os.fspath(path)], path, tomo, tomogram, force)
    model = loaded[os.fspath(model_path)]
    for path in models:
        if loaded[os.fspath(path)].name != model.name:
            raise TomosegError(f"{path}: a network of {loaded[os.fspath(path)].name!r}, not of {model.name!r}: "
                               "give networks of other features as `others`")
    known = read_boxes(boxes) if boxes is not None else []
    with tomo, about(tomogram):
        suggestions = suggest_from_models(model, Paged(tomo.data), known, config,
                                          [loaded[os.fspath(p)] for p in models],
                                          [loaded[os.fspath(p)] for p in others], max_slices, progress,
                                          None if spread_map is None else spread_map.data)
    write_suggestions(output, suggestions)
    return suggestions
