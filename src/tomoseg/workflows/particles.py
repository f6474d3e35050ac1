"""Files in, files out, from picks to a structure: pick (blobs, filaments, membranes), export,
extract, classify2d, average. The CLI and the GUI call these."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from tomoseg.errors import InvalidValue, TomosegError, about
from tomoseg.io.atomic import atomic_directory, check_folder, check_writable
from tomoseg.io.mrc import check_finite, read_volume, write_volume
from tomoseg.io.particles import read_particles, write_particles
from tomoseg.io.subtomograms import image_files, picks_of, read_subtomograms, write_subset_star, write_subtomograms
from tomoseg.progress import Progress
from tomoseg.steps.continuous import FilamentConfig, MembraneConfig
from tomoseg.steps.extract import ExtractConfig, box_start, extract_subtomograms
from tomoseg.steps.pick import PickConfig
from tomoseg.steps.picking_modes import pick
from tomoseg.types import Path_, Picks, TomogramInfo
from tomoseg.workflows.maps import label_scores, require_score_map


def tomogram_info(path: Path_, volume=None) -> TomogramInfo:
    """Name (file stem), voxel size, shape and origin of an MRC tomogram (header only)."""
    vol = volume if volume is not None else read_volume(path)
    return TomogramInfo(Path(path).stem, float(vol.voxel_size), tuple(int(s) for s in vol.data.shape), vol.origin)


PickMode = PickConfig | FilamentConfig | MembraneConfig
"""A picking mode's config (:mod:`tomoseg.steps.picking_modes`)."""


def pick_scores(scores: np.ndarray, voxel_size: float, config: PickMode = PickConfig()) -> Picks:
    """Blobs (PickConfig), filament points (FilamentConfig) or membrane points (MembraneConfig):
    the mode the config belongs to (:data:`~tomoseg.steps.picking_modes.PICKING_MODES`)."""
    return pick(scores, voxel_size, config)


def pick_file(
    scores_path: Path_,
    output_path: Path_,
    config: PickMode = PickConfig(),
    format: str | None = None,
    name: str | None = None,
    overwrite: bool = False,
    label: int | None = None,
    scale: float | None = None,
) -> Picks:
    """Pick blobs (PickConfig), filament points or membrane points from a score map and write them.

    The format follows ``format`` or the extension (.csv, .star = RELION 5, .tbl, .mod, .json).
    ``name``: the tomogram's name in the particle file (default: the score map's file name).
    ``label``: pick the voxels of this label of a label map (from merge) instead; a label map
    without it, or a tomogram, is refused (:func:`~tomoseg.workflows.maps.require_score_map`).
    ``scale``: divide the scores by it first (calibration to the network's training scale:
    :func:`~tomoseg.workflows.maps.calibration_scale_of`).
    """
    check_writable(output_path, inputs=(scores_path,), overwrite=overwrite)
    vol = read_volume(scores_path)
    if label is None:
        require_score_map(scores_path, vol, hint="choose the label to pick with `label` N")
        scores = np.asarray(vol.data, dtype=np.float32)
        if scale is not None:
            scores = scores / np.float32(scale)
    else:
        if config.threshold > 1:
            raise TomosegError(f"{scores_path}: a label's voxels score 1, so threshold {config.threshold:g} would "
                               "pick nothing; keep threshold 1 when picking a label")
        scores = label_scores(scores_path, vol, label)
    check_finite(scores_path, scores)
    picks = pick_scores(scores, vol.voxel_size, config)
    info = tomogram_info(scores_path, vol)
    write_particles(output_path, picks, info if name is None else replace(info, name=name), format)
    return picks


def export_file(input_path: Path_, output_path: Path_, format: str | None = None,
                tomogram: Path_ | None = None, input_format: str | None = None, overwrite: bool = False) -> Picks:
    """Convert a particle list between formats; ``tomogram`` supplies size/voxel size/name where needed."""
    check_writable(output_path, inputs=(input_path,), overwrite=overwrite)
    info = tomogram_info(tomogram) if tomogram is not None else None
    picks, meta = read_particles(input_path, input_format, info=info)
    if info is None:
        shape = meta.get("shape") or (0, 0, 0)
        voxel = meta.get("voxel_size") or 0.0
        if not voxel:
            raise TomosegError(f"{input_path}: the file does not say the voxel size; give the `tomogram`")
        info = TomogramInfo(meta.get("tomo_name") or Path(input_path).stem, float(voxel), tuple(shape))
    write_particles(output_path, picks, info, format)
    return picks


def extract_file(tomogram_path: Path_, particles_path: Path_, output_dir: Path_,
                 config: ExtractConfig = ExtractConfig(), files: bool = False, overwrite: bool = False,
                 progress: Progress | None = None) -> int:
    """Cut subtomograms at the particles of a list and write them with ``particles.star``; returns the count."""
    check_folder(output_dir, overwrite, (tomogram_path, particles_path))
    vol = read_volume(tomogram_path)
    info = tomogram_info(tomogram_path, vol)
    picks, _ = read_particles(particles_path, info=info)
    if len(picks) == 0:
        raise TomosegError(f"{particles_path}: lists no particles")
    stack, inside = extract_subtomograms(vol.data, picks.xyz, config, progress)
    with atomic_directory(output_dir, overwrite=overwrite, inputs=(tomogram_path, particles_path)) as tmp:
        write_subtomograms(tmp, stack, picks, info, bin=config.bin, inside=inside, files=files)
        (tmp / "extract.json").write_text(json.dumps({"tomogram": str(tomogram_path), "particles":
                                                      str(particles_path), **config.to_dict()}, indent=1))
    return len(picks)


def classify_file(star_path: Path_, output_dir: Path_, config=None, keep: list[int] | None = None,
                  thickness: int | None = None, overwrite: bool = False, progress: Progress | None = None):
    """2D classification of Z-projections: ``classes.png``, ``classes.csv`` (editable ``keep`` column),
    ``kept.star`` (the kept particles), ``averages.mrcs``."""
    from tomoseg.steps.classify2d import Classify2DConfig, classify2d, z_projections
    from tomoseg.workflows.class_figures import class_montage

    config = config or Classify2DConfig()
    star_path = Path(star_path)
    stack, table, voxel = read_subtomograms(star_path)
    sources = image_files(star_path, table)
    check_folder(output_dir, overwrite, (star_path, *sources))
    with about(star_path):
        images = z_projections(stack, thickness)
        result = classify2d(images, config, progress)
    if keep is not None:
        bad = [k for k in keep if not 0 <= k < len(result.counts)]
        if bad:
            raise TomosegError(f"`keep`: no class {bad[0]} (classes are 0..{len(result.counts) - 1})")
    kept = np.ones(len(table), bool) if keep is None else np.isin(result.labels, keep)
    out = Path(output_dir)
    with atomic_directory(out, overwrite=overwrite, inputs=(star_path, *sources)) as tmp:
        class_montage(tmp / "classes.png", result.averages, result.counts,
                      title=f"{len(table)} particles, {len(result.counts)} classes")
        pd.DataFrame({"particle": np.arange(1, len(table) + 1), "image": table["rlnImageName"],
                      "class": result.labels, "angle": result.angles, "score": result.score,
                      "keep": kept.astype(int)}).to_csv(tmp / "classes.csv", index=False, float_format="%.4f")
        write_volume(tmp / "averages.mrcs", result.averages.astype(np.float32), voxel)
        write_subset_star(star_path, table, kept, tmp / "kept.star", out.parent.resolve() / out.name)
    return result, int(kept.sum())


def read_selection(path: Path_, n: int) -> np.ndarray:
    """The ``keep`` column of a classes.csv as a boolean mask of ``n`` particles."""
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise TomosegError(f"{path}: not a readable CSV ({exc})") from exc
    if "keep" not in table.columns or len(table) != n:
        raise TomosegError(f"{path}: needs a 'keep' column with one row per particle ({n})")
    return table["keep"].to_numpy().astype(bool)


def average_file(star_path: Path_, output_dir: Path_, config=None, reference: Path_ | None = None,
                 selection: Path_ | None = None, overwrite: bool = False, progress: Progress | None = None,
                 use_angles: bool = False, device: str = "auto") -> dict:
    """Refine and average subtomograms: average.mrc, half1/2.mrc, fsc.csv, fsc.png, slices.png,
    particles.star (refined positions and angles in the source tomogram), summary.json.

    use_angles: start from the particles' own angles (filament axes, membrane normals, an earlier
    refinement) and search only locally around them (no global rounds).
    """
    import time
    from dataclasses import replace

    from tomoseg.nn.device import resolve_device
    from tomoseg.steps.average import AverageConfig, refine
    from tomoseg.workflows.average_figures import fsc_figure, slices_figure

    config = config or AverageConfig()
    star_path = Path(star_path)
    stack, table, voxel = read_subtomograms(star_path)
    inputs = (star_path, *image_files(star_path, table), *(p for p in (reference, selection) if p is not None))
    check_folder(output_dir, overwrite, inputs)
    if selection is not None:
        keep = read_selection(selection, len(table))
        stack, table = stack[keep], table[keep].reset_index(drop=True)
    ref = None
    if reference is not None:
        rvol = read_volume(reference)
        ref = np.asarray(rvol.data, np.float32)
        if ref.shape != stack.shape[1:]:
            raise TomosegError(f"{reference}: reference is {ref.shape[::-1]} voxels, subtomograms are "
                               f"{stack.shape[1:][::-1]}")
        if abs(rvol.voxel_size - voxel) > 0.01 * voxel:
            raise TomosegError(f"{reference}: voxel size {rvol.voxel_size:g} A differs from the subtomograms' {voxel:g} A")
    torch_device = resolve_device(device)
    picks = picks_of(table)
    start = picks.angles if use_angles else None
    if use_angles:
        config = replace(config, global_iterations=0)
    t0 = time.perf_counter()
    with about(star_path):
        result = refine(stack, voxel, config, reference=ref, start_angles=start, progress=progress,
                        device=torch_device)
    seconds = time.perf_counter() - t0
    bin_ = table["tsBin"].to_numpy(float) if "tsBin" in table else np.ones(len(table))
    source_voxel = table["rlnTomoTiltSeriesPixelSize"].to_numpy(float) if "rlnTomoTiltSeriesPixelSize" in table else None
    n = stack.shape[-1]
    centre = np.stack([box_start(p, n, int(b)) + (n // 2) * b + (b - 1) / 2 for p, b in zip(picks.xyz, bin_)])
    refined = Picks(centre + result.alignment.shifts * bin_[:, None], result.alignment.score,
                    result.alignment.score, np.zeros(len(table), dtype=np.int64), result.alignment.angles)
    summary = {"particles": len(table), "box": n, "voxel_size": voxel, "resolution_fsc_0143": result.resolution,
               "seconds": seconds, "device": str(torch_device), "history": result.history,
               "config": config.to_dict(), "use_angles": use_angles}
    with atomic_directory(output_dir, overwrite=overwrite, inputs=inputs) as tmp:
        write_volume(tmp / "average.mrc", result.average, voxel)
        write_volume(tmp / "half1.mrc", result.halves[0], voxel)
        write_volume(tmp / "half2.mrc", result.halves[1], voxel)
        shells = np.arange(len(result.fsc))
        pd.DataFrame({"shell": shells, "frequency_per_A": shells / (n * voxel),
                      "resolution_A": np.where(shells > 0, n * voxel / np.maximum(shells, 1), np.inf),
                      "fsc": result.fsc}).to_csv(tmp / "fsc.csv", index=False, float_format="%.5g")
        fsc_figure(tmp / "fsc.png", result.fsc, n, voxel, result.resolution,
                   title=f"{len(table)} particles: {result.resolution:.1f} A at FSC 0.143")
        slices_figure(tmp / "slices.png", [result.average], ["average"])
        name = str(table["rlnTomoName"].iloc[0]) if "rlnTomoName" in table else "tomogram"
        sv = float(source_voxel[0]) if source_voxel is not None else voxel
        write_particles(tmp / "particles.star", refined, TomogramInfo(name, sv, (0, 0, 0)), "relion3")
        (tmp / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
    return summary


def align_map_file(map_path: Path_, reference_path: Path_, output_path: Path_, resolution: float | None = None,
                   local: bool = False, overwrite: bool = False) -> dict:
    """Turn and move a map (an average) onto a reference map on the same grid, and write it.

    ``resolution`` (A): compare the maps up to it (default: 3 voxels). ``local``: only a small
    correction (within 10 degrees), for maps known to be nearly aligned. Returns the transform
    (``rot, tilt, psi`` degrees, RELION's ZYZ; ``shift_x/y/z`` voxels) and the maps' correlation
    inside the mask before and after. The output keeps the map's voxel size and origin."""
    import torch

    from tomoseg.ops.shells import soft_sphere
    from tomoseg.steps.average import CORRECTION_STEP, align_maps, move_map

    check_writable(output_path, inputs=(map_path, reference_path), overwrite=overwrite)
    moving, fixed = read_volume(map_path, mmap=False), read_volume(reference_path, mmap=False)
    shape = moving.data.shape
    if len(set(shape)) != 1 or shape[0] % 2:
        raise TomosegError(f"{map_path}: a map to align must be a cube with an even edge, got "
                           f"{'x'.join(map(str, shape[::-1]))}")
    if fixed.data.shape != shape:
        raise TomosegError(f"{reference_path}: box {'x'.join(map(str, fixed.data.shape[::-1]))} differs from "
                           f"{map_path}'s {'x'.join(map(str, shape[::-1]))}; resample one onto the other first")
    if abs(fixed.voxel_size - moving.voxel_size) > 0.01 * moving.voxel_size:
        raise TomosegError(f"{reference_path}: voxel size {fixed.voxel_size:g} A differs from {map_path}'s "
                           f"{moving.voxel_size:g} A")
    check_finite(map_path, moving.data)
    check_finite(reference_path, fixed.data)
    voxel = float(moving.voxel_size)
    resolution = 3 * voxel if resolution is None else float(resolution)
    if not resolution >= 2 * voxel:
        raise InvalidValue(f"`resolution` must be at least 2 voxels ({2 * voxel:g} A), got {resolution:g}")
    n = shape[0]
    mask = soft_sphere(n, 0.4 * n, edge=max(2.0, 0.05 * n))
    t = align_maps(fixed.data, moving.data, voxel, resolution, torch.from_numpy(mask.astype(np.float32)),
                   full=not local, step=CORRECTION_STEP, seed=0)
    moved = move_map(moving.data, t)

    def correlation(a: np.ndarray) -> float:
        return float(np.corrcoef((a * mask).ravel(), (fixed.data * mask).ravel())[0, 1])

    write_volume(output_path, moved.astype(np.float32), voxel, origin=moving.origin,
                 labels=(f"tomoseg aligned-to: {Path(reference_path).name}"[:80],))
    rot, tilt, psi = (float(a) for a in t.angles[0])
    sx, sy, sz = (float(v) for v in t.shifts[0])
    return {"rot": rot, "tilt": tilt, "psi": psi, "shift_x": sx, "shift_y": sy, "shift_z": sz,
            "correlation_before": correlation(moving.data), "correlation_after": correlation(moved),
            "resolution": resolution}

