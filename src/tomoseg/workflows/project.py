"""An annotation project: one tomogram, its features, their boxes, masks, models and outputs.

A workflow without Qt: the napari dock edits a :class:`Project`, ``tomoseg project`` does the same
from the command line, and scripts and tests use it without a screen. A project is a small folder
(its format: ``docs/projects.md``)::

    PROJECT/
      project.json        tomogram path, voxel size, features (name, colour, label value, boxes, outputs)
      masks.npz           painted masks: one uint8 slice per painted z ("z12"), value = feature
      trainsets/NAME.trainset   models/NAME.model   scores/NAME.mrc   merged.mrc   picks/NAME.csv

Everything is written atomically (temporary name, then rename), so a crash
never leaves a half-written project; :meth:`Project.save` is cheap enough to
call after every edit (autosave).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tomoseg.errors import TomosegError, VoxelSizeMissing
from tomoseg.io.atomic import atomic_output, check_writable
from tomoseg.io.boxes import read_boxes
from tomoseg.io.mrc import Volume, read_volume
from tomoseg.io.trainset_file import save_trainset
from tomoseg.progress import Progress
from tomoseg.steps.recipes import TrainConfig
from tomoseg.steps.trainset import TILE_SIZE, make_trainset
from tomoseg.types import Box, TrainingSet

if TYPE_CHECKING:
    from tomoseg.nn.model import Model

# torch is loaded by the first training or scoring, not by opening a project: the dock sets how
# waiting threads behave before that (tomoseg.nn.threads); so pipeline is imported where used.

PROJECT_FORMAT = 1
PROJECT_FILE = "project.json"
MASKS_FILE = "masks.npz"
_PATHS = {"trainset": "trainsets/{name}.trainset", "model": "models/{name}.model", "scores": "scores/{name}.mrc",
          "picks": "picks/{name}.csv", "merged": "merged.mrc"}
"""Where a project keeps its outputs (docs/projects.md)."""
DEFAULT_COLOURS = ("#ffcc00", "#00c8ff", "#ff4d6d", "#7cfc00", "#c080ff", "#ff9f40", "#40e0d0", "#ff66cc")


ANSWERS = ("?", "positive", "negative", "skip")
"""A suggested tile's answer: not yet, holds the feature, does not, left out."""


@dataclass
class Suggested:
    """A tile suggested to label (:mod:`tomoseg.steps.suggest`) in a round of the annotation loop,
    and the user's answer (one of :data:`ANSWERS`)."""

    x: int
    y: int
    z: int
    reason: str
    score: float
    round: int
    strategy: str
    answer: str = "?"


@dataclass
class Feature:
    """One feature to annotate. ``value``: its label value in masks and merged maps (1, 2, ...).
    ``suggested``: every tile suggested so far, with its round and answer (the loop's history)."""

    name: str
    colour: str
    value: int
    boxes: list[Box] = field(default_factory=list)
    suggested: list[Suggested] = field(default_factory=list)

    @property
    def rounds(self) -> int:
        """Rounds of suggestions so far."""
        return max((s.round for s in self.suggested), default=0)

    def pending(self) -> list[Suggested]:
        """Suggested tiles not answered yet, in the order suggested."""
        return [s for s in self.suggested if s.answer == "?"]

    @property
    def n_positive(self) -> int:
        return sum(b.positive for b in self.boxes)

    @property
    def n_negative(self) -> int:
        return len(self.boxes) - self.n_positive


def _safe_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,59}", name):
        raise TomosegError(
            f"feature name {name!r}: use 1-60 letters, digits, '_', '-' or '.', starting with a letter or digit"
        )
    return name


class Project:
    """The state of one annotation session, saved in ``folder``.

    ``volume``: the (preprocessed) tomogram the boxes and masks refer to.
    ``voxel_size_given``: the voxel size (A) the user gave for a tomogram file that records
    none; files read for the project (the tomogram, its preprocessing) use it.
    ``masks``: uint8 (z, y, x), 0 = unpainted, else a feature's ``value``; the
    napari Labels layer paints into this very array.
    """

    def __init__(self, folder: str | os.PathLike, tomogram: str | os.PathLike, volume: Volume,
                 voxel_size_given: float | None = None) -> None:
        self.folder = Path(folder)
        self.tomogram = Path(tomogram)
        self.volume = volume
        self.voxel_size_given = voxel_size_given
        self.features: dict[str, Feature] = {}
        self.masks = np.zeros(volume.data.shape, dtype=np.uint8)
        self._undo: list[tuple[str, str, Box]] = []

    # -- creating and opening -------------------------------------------------
    @classmethod
    def create(cls, folder: str | os.PathLike, tomogram: str | os.PathLike,
               voxel_size: float | None = None) -> Project:
        """A new project for a tomogram (the folder is created; an existing project there is an error).

        ``voxel_size`` (A) overrides the file's; a file that records none raises
        :class:`~tomoseg.errors.VoxelSizeMissing` without it.
        """
        folder = Path(folder)
        if (folder / PROJECT_FILE).exists():
            raise TomosegError(f"{folder}: already holds a project; open it instead")
        volume = read_volume(tomogram, voxel_size=voxel_size)
        folder.mkdir(parents=True, exist_ok=True)
        project = cls(folder, Path(tomogram).resolve(), volume, voxel_size)
        project.save()
        return project

    @classmethod
    def open(cls, folder: str | os.PathLike) -> Project:
        folder = Path(folder)
        path = folder / PROJECT_FILE
        if not path.exists():
            raise TomosegError(f"{folder}: not a tomoseg project (no {PROJECT_FILE})")
        try:
            state = json.loads(path.read_text())
        except ValueError as err:
            raise TomosegError(f"{path}: not valid JSON ({err})") from None
        if state.get("format") != PROJECT_FORMAT:
            raise TomosegError(f"{path}: project format {state.get('format')!r} is not supported")
        given = state.get("voxel_size_given")
        project = cls(folder, Path(state["tomogram"]), read_volume(state["tomogram"], voxel_size=given), given)
        for f in state["features"]:
            boxes = [Box(int(x), int(y), int(z), bool(p)) for x, y, z, p in f["boxes"]]
            suggested = [Suggested(**s) for s in f.get("suggested", [])]
            project.features[f["name"]] = Feature(f["name"], f["colour"], int(f["value"]), boxes, suggested)
        masks = folder / MASKS_FILE
        if masks.exists():
            with np.load(masks, allow_pickle=False) as saved:
                for key in saved.files:
                    project.masks[int(key[1:])] = saved[key]
        return project

    def save(self) -> None:
        """Write project.json and masks.npz atomically."""
        state = {
            "format": PROJECT_FORMAT,
            "tomogram": str(self.tomogram),
            "voxel_size": self.volume.voxel_size,
            "voxel_size_given": self.voxel_size_given,
            "shape_zyx": list(self.volume.data.shape),
            "features": [
                {**{k: v for k, v in asdict(f).items() if k not in ("boxes", "suggested")},
                 "boxes": [[b.x, b.y, b.z, b.positive] for b in f.boxes],
                 **({"suggested": [asdict(t) for t in f.suggested]} if f.suggested else {})}
                for f in self.features.values()
            ],
        }
        with atomic_output(self.folder / PROJECT_FILE) as tmp:
            tmp.write_text(json.dumps(state, indent=1))
        painted = np.flatnonzero(self.masks.reshape(len(self.masks), -1).any(axis=1))
        with atomic_output(self.folder / MASKS_FILE) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **{f"z{z}": self.masks[z] for z in painted})

    def use_tomogram(self, tomogram: str | os.PathLike) -> None:
        """Annotate another file of the same grid (e.g. the preprocessed version of the raw tomogram).

        Boxes and masks are kept, so the shape must be the same unless nothing is annotated yet.
        A file that records no voxel size is read with the one the user gave, if any.
        """
        given = None
        try:
            volume = read_volume(tomogram)
        except VoxelSizeMissing:
            if self.voxel_size_given is None:
                raise
            given = self.voxel_size_given
            volume = read_volume(tomogram, voxel_size=given)
        annotated = any(f.boxes for f in self.features.values()) or self.masks.any()
        if volume.data.shape != self.volume.data.shape:
            if annotated:
                raise TomosegError(
                    f"{tomogram}: shape {volume.data.shape} differs from the annotated tomogram's "
                    f"{self.volume.data.shape}; boxes and masks would no longer fit"
                )
            self.masks = np.zeros(volume.data.shape, dtype=np.uint8)
        self.tomogram, self.volume, self.voxel_size_given = Path(tomogram).resolve(), volume, given

    @property
    def preprocessed(self) -> bool:
        """Whether the tomogram was preprocessed by tomoseg (its header says how)."""
        return self.volume.label_value("preprocess") is not None

    # -- features and boxes ---------------------------------------------------
    def add_feature(self, name: str, colour: str | None = None) -> Feature:
        name = _safe_name(name)
        if name in self.features:
            raise TomosegError(f"feature {name!r} exists already")
        used = {f.value for f in self.features.values()}
        value = next(v for v in range(1, 256) if v not in used)
        colour = colour or DEFAULT_COLOURS[(value - 1) % len(DEFAULT_COLOURS)]
        feature = Feature(name, colour, value)
        self.features[name] = feature
        return feature

    def _feature(self, name: str) -> Feature:
        try:
            return self.features[name]
        except KeyError:
            raise TomosegError(f"no feature called {name!r}") from None

    def box_fits(self, x: int, y: int, z: int) -> bool:
        """Whether a 64 x 64 tile centred at (x, y) on slice z lies inside the tomogram."""
        nz, ny, nx = self.volume.data.shape
        h = TILE_SIZE // 2
        return 0 <= z < nz and h <= y <= ny - h and h <= x <= nx - h

    def add_box(self, name: str, x: int, y: int, z: int, positive: bool) -> Box:
        """Add a tile centred at voxel (x, y, z); refuses one that sticks out of the tomogram."""
        feature = self._feature(name)
        if not self.box_fits(x, y, z):
            raise TomosegError(f"a {TILE_SIZE} x {TILE_SIZE} box at x={x}, y={y}, z={z} sticks out of the tomogram")
        box = Box(int(x), int(y), int(z), bool(positive))
        feature.boxes.append(box)
        self._undo.append(("add", name, box))
        return box

    def nearest_box(self, name: str, x: float, y: float, z: int) -> Box | None:
        """The box of ``name`` on slice z whose tile contains (x, y), nearest first."""
        h = TILE_SIZE / 2
        hits = [b for b in self._feature(name).boxes if b.z == z and abs(b.x - x) <= h and abs(b.y - y) <= h]
        return min(hits, key=lambda b: (b.x - x) ** 2 + (b.y - y) ** 2, default=None)

    def remove_box(self, name: str, box: Box) -> None:
        self._feature(name).boxes.remove(box)
        self._undo.append(("remove", name, box))

    def move_box(self, name: str, box: Box, x: int, y: int) -> Box:
        """Move a box on its slice (one undo step)."""
        moved = Box(int(x), int(y), box.z, box.positive)
        if not self.box_fits(moved.x, moved.y, moved.z):
            raise TomosegError(f"a box at x={x}, y={y}, z={box.z} would stick out of the tomogram")
        boxes = self._feature(name).boxes
        boxes[boxes.index(box)] = moved
        self._undo.append(("move", name, (box, moved)))
        return moved

    def undo(self) -> str | None:
        """Undo the last box edit; returns a description, or None if there is nothing to undo."""
        if not self._undo:
            return None
        action, name, item = self._undo.pop()
        boxes = self.features[name].boxes
        if action == "add":
            boxes.remove(item)
            return f"removed the box at x={item.x}, y={item.y}, z={item.z}"
        if action == "remove":
            boxes.append(item)
            return f"restored the box at x={item.x}, y={item.y}, z={item.z}"
        old, new = item
        boxes[boxes.index(new)] = old
        return f"moved the box back to x={old.x}, y={old.y}"

    def import_trainset(self, trainset: TrainingSet) -> Feature:
        """Boxes and painted masks from a training set (e.g. made with ``tomoseg trainset``) on this tomogram.

        The feature is created if missing; masks are painted where the set's positive masks are set.
        """
        if abs(trainset.voxel_size - self.volume.voxel_size) > 0.01 * self.volume.voxel_size:
            raise TomosegError(
                f"training set {trainset.name!r} is at {trainset.voxel_size:g} A/voxel, the tomogram at "
                f"{self.volume.voxel_size:g}"
            )
        size = trainset.tile_size
        outside = [tuple(b) for b in trainset.boxes if not self.box_fits(*map(int, b))]
        if size != TILE_SIZE or outside:
            raise TomosegError(f"training set {trainset.name!r} does not fit this tomogram's grid")
        feature = self.features.get(trainset.name) or self.add_feature(trainset.name)
        h = size // 2
        for (x, y, z), positive, mask in zip(trainset.boxes, trainset.positive, trainset.masks):
            feature.boxes.append(Box(int(x), int(y), int(z), bool(positive)))
            if positive:
                self.masks[z, y - h : y + h, x - h : x + h][mask > 0] = feature.value
        return feature

    def add_boxes(self, name: str, boxes: list[Box]) -> int:
        """Add boxes to a feature (created if missing), all or none: a box that sticks out of the
        tomogram is refused, naming it. Boxes the feature has already are not added twice.
        Returns how many were added."""
        feature = self.features.get(name) or self.add_feature(name)
        for b in boxes:
            if not self.box_fits(b.x, b.y, b.z):
                raise TomosegError(f"a {TILE_SIZE} x {TILE_SIZE} box at x={b.x}, y={b.y}, z={b.z} sticks out of "
                                   f"the tomogram ({'x'.join(map(str, self.volume.data.shape[::-1]))} voxels)")
        new = [b for b in dict.fromkeys(boxes) if b not in feature.boxes]
        feature.boxes.extend(new)
        return len(new)

    def add_suggestions(self, name: str, suggestions, strategy: str) -> list[Suggested]:
        """Record a round of suggested tiles (:class:`tomoseg.steps.suggest.Suggestion`) of a feature;
        returns them as :class:`Suggested`, answer ``?``."""
        feature = self._feature(name)
        k = feature.rounds + 1
        new = [Suggested(s.x, s.y, s.z, s.reason, round(float(s.score), 4), k, strategy) for s in suggestions]
        feature.suggested.extend(new)
        return new

    def answer(self, name: str, tile: Suggested, answer: str) -> Box | None:
        """Answer a suggested tile: ``positive`` or ``negative`` adds it as a box (then paint a
        positive one), ``skip`` leaves it out. Returns the box added, if any."""
        if answer not in ANSWERS[1:]:
            raise TomosegError(f"answer {answer!r}: use positive, negative or skip")
        box = None
        if answer != "skip":
            known = Box(tile.x, tile.y, tile.z, answer == "positive")
            box = known if known in self._feature(name).boxes else self.add_box(name, tile.x, tile.y, tile.z,
                                                                                answer == "positive")
        tile.answer = answer
        return box

    def mark_answered(self, name: str, boxes: list[Box], skipped=()) -> int:
        """Suggested tiles of ``name`` at these boxes' centres take their kind as the answer, and those
        at ``skipped`` (x, y, z) are skipped (an answered suggestions file). Returns how many were marked."""
        kinds = {(b.x, b.y, b.z): "positive" if b.positive else "negative" for b in boxes}
        kinds.update({tuple(int(v) for v in xyz): "skip" for xyz in skipped})
        marked = 0
        for tile in self._feature(name).pending():
            if (tile.x, tile.y, tile.z) in kinds:
                tile.answer = kinds[(tile.x, tile.y, tile.z)]
                marked += 1
        return marked

    def paint(self, name: str, mask: np.ndarray) -> int:
        """Paint a feature (created if missing) wherever ``mask`` (z, y, x, the tomogram's shape) is
        true, over what was painted there before. Returns the voxels painted."""
        if mask.shape != self.masks.shape:
            raise TomosegError(f"a mask of shape {mask.shape} does not fit the tomogram's {self.masks.shape}")
        feature = self.features.get(name) or self.add_feature(name)
        self.masks[mask] = feature.value
        return int(np.count_nonzero(mask))

    def painted_voxels(self, name: str) -> int:
        return int(np.count_nonzero(self.masks == self._feature(name).value))

    def summary(self) -> dict:
        """What the project holds, as plain data (``tomoseg project show``)."""
        return {
            "tomogram": str(self.tomogram), "voxel_size": self.volume.voxel_size,
            "shape_zyx": list(self.volume.data.shape), "preprocessed": self.preprocessed,
            "features": [{"name": f.name, "value": f.value, "colour": f.colour, "positive": f.n_positive,
                          "negative": f.n_negative, "painted_voxels": self.painted_voxels(f.name),
                          "model": self._exists("model", f.name), "scores": self._exists("scores", f.name),
                          "rounds": f.rounds, "pending": len(f.pending())}
                         for f in self.features.values()],
        }

    def _exists(self, kind: str, name: str) -> str | None:
        path = self.folder / _PATHS[kind].format(name=name)
        return str(path) if path.exists() else None

    # -- training sets and outputs -------------------------------------------
    def trainset(self, name: str, context: int = 0) -> TrainingSet:
        """The feature's boxes with their painted masks, as a training set (``context``: slab
        context K, tiles of 2K + 1 slices).

        Raises TomosegError when there is no positive box, or a positive box
        holds no painted voxel of the feature.
        """
        feature = self._feature(name)
        if feature.n_positive == 0:
            raise TomosegError(f"feature {name!r} has no positive box: place some with the positive box tool")
        empty = [b for b in feature.boxes if b.positive and not self._painted(feature, b)]
        if empty:
            b = empty[0]
            raise TomosegError(
                f"feature {name!r}: the positive box at x={b.x}, y={b.y}, z={b.z} holds no painted "
                f"{name}; paint the feature in it or make it negative"
            )
        from tomoseg.workflows.pipeline import preprocessing_of

        pre = preprocessing_of(self.volume, self.tomogram)
        return make_trainset(
            self.volume.data, feature.boxes, lambda z: self.masks[z] == feature.value, name,
            self.volume.voxel_size, None if pre is None else pre.to_dict(),
            source=str(self.tomogram), context=context,
        )

    def _painted(self, feature: Feature, box: Box) -> bool:
        h = TILE_SIZE // 2
        tile = self.masks[box.z, box.y - h : box.y + h, box.x - h : box.x + h]
        return bool((tile == feature.value).any())

    def path(self, kind: str, name: str | None = None) -> Path:
        """Where outputs go: kind is trainset, model, scores, picks or merged."""
        path = self.folder / _PATHS[kind].format(name=name)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


# -- files in, files out: what ``tomoseg project`` and the dock call ----------------------------------
def import_boxes_file(project: Project, name: str, path: str | os.PathLike) -> int:
    """Add the boxes of a ``BOXES.csv`` (x,y,z,kind; :mod:`tomoseg.io.boxes`) to a feature and save.
    Returns how many were new."""
    from tomoseg.io.boxes import skipped_rows

    boxes = read_boxes(path)
    added = project.add_boxes(name, boxes)
    project.mark_answered(name, boxes, skipped=skipped_rows(path))
    project.save()
    return added


def import_masks_file(project: Project, name: str, path: str | os.PathLike, value: int | None = None,
                      voxel_size: float | None = None) -> int:
    """Paint a feature from a volume on the tomogram's grid: where it equals ``value`` (a label
    volume, e.g. from another program) or, without ``value``, where it is not 0 (a mask). Saves;
    returns the voxels painted."""
    volume = read_volume(path, voxel_size=voxel_size or project.volume.voxel_size)
    if volume.data.shape != project.volume.data.shape:
        raise TomosegError(f"{path}: shape {volume.data.shape} differs from the project's tomogram "
                           f"{project.volume.data.shape}")
    if abs(volume.voxel_size - project.volume.voxel_size) > 0.01 * project.volume.voxel_size:
        raise TomosegError(f"{path}: voxel size {volume.voxel_size:g} A differs from the tomogram's "
                           f"{project.volume.voxel_size:g} A")
    mask = np.asarray(volume.data) == value if value is not None else np.asarray(volume.data) != 0
    if not mask.any():
        raise TomosegError(f"{path}: no voxel " + (f"has the value {value}" if value is not None else "is set"))
    painted = project.paint(name, mask)
    project.save()
    return painted


def save_feature_trainset(project: Project, name: str, output: str | os.PathLike | None = None,
                          context: int = 0, overwrite: bool = True) -> Path:
    """Write the training set of a feature (its boxes and painted masks) to ``output`` (default: the
    project's ``trainsets/NAME.trainset``); returns the path."""
    path = Path(output) if output is not None else project.path("trainset", name)
    check_writable(path, inputs=(project.tomogram,), overwrite=overwrite)
    trainset = project.trainset(name, context=context)
    project.save()
    save_trainset(path, trainset)
    return path


def train_feature(project: Project, name: str, config: TrainConfig, trainset_path: str | os.PathLike | None = None,
                  context: int = 0, progress: Progress | None = None, device: str = "auto",
                  threads: int | None = None, on_epoch: Callable[[int, float], None] | None = None,
                  fine_tune: bool = False) -> Model:
    """Train a feature's network from its boxes and masks and save it as the project's
    ``models/NAME.model`` (replacing an earlier one). ``trainset_path``: a training set written
    already (:func:`save_feature_trainset`, as the dock does before training in the background);
    else the feature's set is written first, with slab ``context``.

    ``fine_tune``: continue the feature's current network (``train --init``; give the ``fine-tune``
    recipe) instead of starting afresh; the network it started from is kept as
    ``models/history/NAME.K.model`` (K = 1, 2, ...), so every round's network stays."""
    import shutil

    from tomoseg.workflows.pipeline import train_file

    init = None
    if fine_tune and not project.path("model", name).exists():
        raise TomosegError(f"feature {name!r} has no trained network to fine-tune yet: Train first")
    if trainset_path is None:  # first: a set that cannot be made (an unpainted positive box) stops here
        trainset_path = save_feature_trainset(project, name, context=context)
    if fine_tune:
        history = project.folder / "models" / "history"
        history.mkdir(parents=True, exist_ok=True)
        rounds = [int(m.group(1)) for p in history.iterdir()
                  if (m := re.fullmatch(re.escape(name) + r"\.(\d+)\.model", p.name))]
        init = history / f"{name}.{max(rounds, default=0) + 1}.model"
        with atomic_output(init) as tmp:
            shutil.copyfile(project.path("model", name), tmp)
    colour = project.features[name].colour if name in project.features else None
    return train_file(trainset_path, project.path("model", name), config, name=name, colour=colour,
                      progress=progress, device=device, threads=threads, on_epoch=on_epoch, overwrite=True,
                      init=init)


def suggest_feature(project: Project, name: str, config=None, max_slices: int | None = None,
                    progress: Progress | None = None) -> list[Suggested]:
    """A round of suggested tiles for a feature (:func:`feature_suggestions`), recorded in the project
    (saved); returns its tiles."""
    from tomoseg.steps.suggest import SuggestConfig

    config = config or SuggestConfig()
    tiles = project.add_suggestions(name, feature_suggestions(project, name, config, max_slices, progress),
                                    config.strategy)
    project.save()
    return tiles


def feature_suggestions(project: Project, name: str, config=None, max_slices: int | None = None,
                        progress: Progress | None = None) -> list:
    """Tiles to label next for a feature (:mod:`tomoseg.steps.suggest`): its network on the project's
    tomogram; its boxes, and tiles suggested before and not answered or skipped, kept clear; the other
    features' networks (where trained) for the false-positive strategy. Changes nothing (the dock runs
    it in the background, then records the round on the Qt thread)."""
    from tomoseg.io.model_file import load_model
    from tomoseg.io.pages import Paged
    from tomoseg.steps.suggest import SuggestConfig
    from tomoseg.workflows.suggest import MAX_SLICES, suggest_from_models

    config = config or SuggestConfig()
    path = project.path("model", name)
    if not path.exists():
        raise TomosegError(f"feature {name!r} has no trained network yet: Train first")
    others = [load_model(project.path("model", n)) for n in project.features
              if n != name and project.path("model", n).exists()]
    feature = project.features[name]
    clear = list(feature.boxes) + [Box(t.x, t.y, t.z, False) for t in feature.suggested if t.answer in ("?", "skip")]
    return suggest_from_models(load_model(path), Paged(project.volume.data), clear, config, others=others,
                               max_slices=max_slices or MAX_SLICES, progress=progress)


def import_model_file(project: Project, path: str | os.PathLike) -> str:
    """Use a model file made elsewhere (the CLI, another project) as a feature of this project: the
    feature named in the model (added if new) gets it as ``models/NAME.model``. Saves; returns the name."""
    import shutil

    from tomoseg.io.model_file import load_model

    model = load_model(path)  # refuses anything that is not a tomoseg model, before copying
    if model.name not in project.features:
        project.add_feature(model.name, model.colour)
    target = project.path("model", model.name)
    with atomic_output(target) as tmp:
        shutil.copyfile(path, tmp)
    project.save()
    return model.name


def import_trainset_file(project: Project, path: str | os.PathLike) -> Feature:
    """The boxes and masks of a training-set file become (part of) a feature. Saves; returns it."""
    from tomoseg.io.trainset_file import load_trainset

    feature = project.import_trainset(load_trainset(path))
    project.save()
    return feature


def read_scores(project: Project, name: str) -> np.ndarray:
    """The feature's score map (``scores/NAME.mrc``), memory-mapped."""
    path = project.path("scores", name)
    if not path.exists():
        raise TomosegError(f"feature {name!r} has no score map yet: Apply first")
    return read_volume(path, mmap=True).data


def merge_features(project: Project, threshold: float = 1.0, calibrate: bool = False,
                   scale_of: Callable[[Path], float] | None = None) -> tuple[np.ndarray, list[str]]:
    """Merge the score maps of every feature that has one into ``merged.mrc`` (argmax above
    ``threshold``; :func:`~tomoseg.workflows.pipeline.merge_files`); returns the labels (k = k-th
    name) and the names. ``calibrate``: each map divided by its calibration scale first
    (``scale_of(path)``, default :func:`~tomoseg.workflows.maps.calibration_scale_of`)."""
    from tomoseg.workflows.maps import calibration_scale_of
    from tomoseg.workflows.pipeline import merge_files

    names = [n for n in project.features if project.path("scores", n).exists()]
    if not names:
        raise TomosegError("no feature has a score map yet: Apply first")
    paths = [project.path("scores", n) for n in names]
    if scale_of is None:
        scale_of = lambda p: calibration_scale_of(p)[0]  # noqa: E731
    scales = [scale_of(p) for p in paths] if calibrate else None
    out = project.path("merged")
    merge_files(paths, out, threshold=threshold, overwrite=True, scales=scales)
    return np.asarray(read_volume(out).data).view(np.uint8), names


def map_copies(project: Project, folder: str | os.PathLike, suffix: str = ".zarr") -> list[tuple[Path, Path]]:
    """(source, copy) for each score map (``NAME`` + ``suffix``) and the merged map (``merged`` +
    ``suffix``) of the project that :func:`save_maps` writes into ``folder``."""
    sources = [(project.path("scores", n), n) for n in project.features if project.path("scores", n).exists()]
    if project.path("merged").exists():
        if "merged" in project.features:
            raise TomosegError(f"feature 'merged' and the merged map would both be saved as merged{suffix}: "
                               "rename the feature")
        sources.append((project.path("merged"), "merged"))
    if not sources:
        raise TomosegError("no feature has a score map yet: Apply first")
    return [(source, Path(folder) / f"{name}{suffix}") for source, name in sources]


def save_maps(project: Project, folder: str | os.PathLike, suffix: str = ".zarr", overwrite: bool = False,
              progress=None) -> list[Path]:
    """Copies of the project's score maps and merged map in ``folder`` (:func:`map_copies`), in the
    format ``suffix`` names (``.zarr``: OME-Zarr with a pyramid; ``.mrc``; ``.tif``), with voxel size,
    origin and labels (:func:`~tomoseg.workflows.convert.convert_file`). Refuses before writing
    anything if one exists already (unless ``overwrite``). Returns the written paths."""
    from tomoseg.io.atomic import check_writable
    from tomoseg.progress import scaled
    from tomoseg.workflows.convert import convert_file

    if not Path(folder).is_dir():
        raise TomosegError(f"{folder}: no such folder")
    copies = map_copies(project, folder, suffix)
    for source, target in copies:
        check_writable(target, inputs=(source,), overwrite=overwrite)
    for k, (source, target) in enumerate(copies):
        convert_file(source, target, overwrite=overwrite,
                     progress=scaled(progress, 100 * k, 100, 100 * len(copies), f"saving {target.name}"))
    return [target for _, target in copies]


def export_picks(project: Project, picks, path: str | os.PathLike) -> int:
    """Write picked particles of the project's tomogram to ``path`` in the format its extension names
    (:mod:`tomoseg.io.particle_formats`), with the tomogram's name, voxel size and origin; returns how many."""
    from tomoseg.io.particles import write_particles
    from tomoseg.types import TomogramInfo

    if picks is None:
        raise TomosegError("nothing to export: Pick first")
    vol = project.volume
    write_particles(path, picks, TomogramInfo(project.tomogram.stem, float(vol.voxel_size), tuple(vol.data.shape),
                                              vol.origin))
    return len(picks)


def preview_slice(project: Project, name: str, z: int) -> np.ndarray:
    """The feature's network (``models/NAME.model``) on slice ``z`` of the project's tomogram, with the
    slices around it that a network with slab context needs: scores (1, y, x)."""
    from tomoseg.io.model_file import load_model
    from tomoseg.io.pages import Paged
    from tomoseg.steps.segment import score_slices, slices_with_context

    path = project.path("model", name)
    if not path.exists():
        raise TomosegError(f"feature {name!r} has no trained network yet: Train first")
    model = load_model(path)
    data = project.volume.data
    if not 0 <= z < data.shape[0]:
        raise TomosegError(f"slice {z} is outside the tomogram (0..{data.shape[0] - 1})")
    return score_slices(model.net, model.amplitude, slices_with_context(Paged(data), z, z + 1, model.net.config.context))
