"""``tomoseg demo``: the whole pipeline on a generated tomogram, through the files a user would have."""

from __future__ import annotations

import os

import numpy as np

from tomoseg.errors import TomosegError
from tomoseg.io.atomic import check_folder
from tomoseg.io.boxes import write_boxes
from tomoseg.io.mrc import read_volume, write_volume
from tomoseg.progress import Progress, report, scaled
from tomoseg.steps.pick import PickConfig
from tomoseg.steps.recipes import recipe
from tomoseg.steps.trainset import choose_boxes
from tomoseg.testing import make_tomogram
from tomoseg.testing.metrics import dice, match_points
from tomoseg.workflows.figures import annotation_figure, sphere_sections
from tomoseg.workflows.particles import pick_file
from tomoseg.workflows.pipeline import (
    apply_file,
    merge_files,
    preprocess_file,
    train_file,
    trainset_file,
)

DEMO_SHAPE = (48, 160, 160)
DEMO_FEATURES = {"membrane": 1, "particle": 3}
PICK = PickConfig(diameter=220.0)
DEMO_TRAINING = {"negative_copies": 4, "epochs": 10}
"""Fewer rotated copies and epochs than the default recipe, so the demo runs in minutes."""


def _xz_row(particles_xyz: np.ndarray, ny: int, diameter: float) -> int:
    """The y of the picture's XZ view: the one cutting the most true particles, the nearest the middle among equals."""
    return max(range(ny), key=lambda y: (len(sphere_sections(particles_xyz, 1, y, diameter)[0]), -abs(y - ny // 2)))


def run_demo(output: str | os.PathLike = "tomoseg-demo", seed: int = 0, progress: Progress | None = None,
             overwrite: bool = False) -> str:
    """Generate a tomogram, train membrane and particle networks, apply, merge, pick, draw.

    Writes every intermediate file into ``output`` and returns a summary text. An existing
    non-empty ``output`` is refused unless ``overwrite`` (its files are then replaced).
    """
    out = check_folder(output, overwrite)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise TomosegError(f"{out}: cannot create the output folder ({err.strerror})") from None
    units, n_feat = 100.0, len(DEMO_FEATURES)
    report(progress, 0, int(units), "generating a tomogram")
    sim = make_tomogram(DEMO_SHAPE, voxel_size=10.0, seed=seed)
    write_volume(out / "tomogram.mrc", sim.volume, sim.voxel_size)
    write_volume(out / "truth_labels.mrc", sim.labels.astype(np.int8), sim.voxel_size)
    preprocess_file(out / "tomogram.mrc", out / "preprocessed.mrc", overwrite=True)
    report(progress, 4, int(units), "preprocessed")

    score_paths = []
    per_feature = 90.0 / n_feat
    for k, (name, value) in enumerate(DEMO_FEATURES.items()):
        start = 4 + k * per_feature
        boxes = choose_boxes(sim.labels, value, n_positive=10, n_negative=100, seed=seed + value)
        write_boxes(out / f"{name}_boxes.csv", boxes)
        trainset_file(out / "preprocessed.mrc", out / f"{name}_boxes.csv", out / f"{name}.trainset",
                      labels=out / "truth_labels.mrc", value=value, name=name, overwrite=True)
        train_file(out / f"{name}.trainset", out / f"{name}.model", recipe("default", seed=seed, **DEMO_TRAINING), name=name,
                   progress=scaled(progress, start, 0.8 * per_feature, units, f"training {name}"), overwrite=True)
        apply_file(out / f"{name}.model", out / "preprocessed.mrc", out / f"{name}_scores.mrc",
                   progress=scaled(progress, start + 0.8 * per_feature, 0.2 * per_feature, units, f"applying {name}"),
                   overwrite=True)
        score_paths.append(out / f"{name}_scores.mrc")

    names = merge_files(score_paths, out / "merged_labels.mrc", overwrite=True)
    picks = pick_file(out / "particle_scores.mrc", out / "particles.csv", PICK, overwrite=True)
    pre = read_volume(out / "preprocessed.mrc", mmap=False).data
    merged = read_volume(out / "merged_labels.mrc", mmap=False).data
    scores = {name: dice(merged == k, sim.labels == value) for k, (name, value) in enumerate(DEMO_FEATURES.items(), 1)}
    diameter = PICK.diameter / sim.voxel_size
    _, _, found = match_points(picks.xyz, sim.particles, radius=diameter / 2)
    annotation_figure(out / "demo.png", pre, merged, names, picks.xyz,
                      title="tomoseg demo: merged annotation (threshold 1) and particle picks on a synthetic tomogram",
                      voxel_size=sim.voxel_size, truth=sim.labels, truth_names=sim.classes, truth_xyz=sim.particles,
                      particle_diameter=PICK.diameter, dice=scores, pick_counts=(len(picks), found, len(sim.particles)),
                      y_slice=_xz_row(sim.particles, sim.labels.shape[1], diameter))
    report(progress, int(units), int(units), "done")

    lines = [f"tomoseg demo: outputs in {out}/"]
    for name, score in scores.items():
        lines.append(f"  {name:9s} Dice vs truth after merge: {score:.2f}")
    lines.append(f"  particles: {len(picks)} picked, {found} of {len(sim.particles)} true particles found")
    lines.append(f"  picture: {out / 'demo.png'}")
    lines.append("  files: tomogram.mrc, preprocessed.mrc, *_boxes.csv, *.trainset, *.model, "
                 "*_scores.mrc, merged_labels.mrc, particles.csv, truth_labels.mrc")
    return "\n".join(lines)

