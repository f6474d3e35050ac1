"""copick projects: tomograms in, segmentations and picks out (``batch --copick``, ``trainset --copick``).

copick (the Data Portal's and napari-copick's data model) organises a project as runs, each with voxel
spacings, each with tomograms by type (``denoised``, ``wbp``...) stored as OME-Zarr; segmentations and
picks belong to a run and carry a ``user_id`` and ``session_id``. tomoseg maps its outputs onto it
(``docs/copick.md``):

- a feature's score map -> a binary segmentation named after the feature (voxels at or above the
  threshold, on the calibrated scale with ``calibrate``), at the tomogram's voxel spacing;
- the merged label map -> a multilabel segmentation named ``tomoseg-merged`` whose values are the
  pickable objects' labels of the features (every feature must be one: copick names binary
  segmentations after pickable objects, so a model of another name is refused before any work);
- picks -> picks of the pickable object of that name: positions in Angstrom (x, y, z), a 4 x 4
  transform per pick whose rotation turns the object's frame into the tomogram's (tomoseg's angles,
  RELION's convention: the filament axis or membrane normal is the object's z), the score.

Every entry is written under tomoseg's ``user_id`` and ``session_id``: another user's data are never
read back as ours, never replaced; our own entries of that session are replaced only with ``overwrite``.
The batch itself runs on each run's tomogram file (a local OME-Zarr folder) with tomoseg's usual
outputs in the output folder (resume, redo only what changed); the copick entries are written from them.
Projects whose tomograms are not on a local file system (S3, HTTP) are refused in one line.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tomoseg.errors import TomosegError
from tomoseg.io.mrc import read_volume
from tomoseg.io.pages import read_slab
from tomoseg.types import Path_

MERGED_NAME = "tomoseg-merged"
"""The name of the multilabel segmentation of merged maps."""

_TAKEN = "exists already for this user and session; give `overwrite` to replace it, or another `session_id`"
"""How a refusal to replace our own entries ends."""


@dataclass(frozen=True)
class CopickSource:
    """Which tomograms of a copick project: runs (all when empty), voxel spacing (A), tomogram type."""

    config: Path
    runs: tuple[str, ...] = ()
    voxel_spacing: float = 10.0
    tomo_type: str = "denoised"


def open_project(config: Path_):
    """The copick root of a project config (JSON), or one clear error."""
    import copick

    path = Path(config)
    if not path.is_file():
        raise TomosegError(f"{path}: no such copick config file")
    try:
        json.loads(path.read_text())
    except ValueError as err:
        raise TomosegError(f"{path}: not a JSON copick config ({err})") from None
    try:
        return copick.from_file(str(path))
    except Exception as err:  # noqa: BLE001 - copick raises pydantic's and fsspec's own errors
        raise TomosegError(f"{path}: copick cannot open this project ({type(err).__name__}: "
                           f"{str(err).splitlines()[0] if str(err) else ''})") from None


def _local(url: str) -> Path | None:
    url = str(url)
    for prefix in ("local://", "file://"):
        if url.startswith(prefix):
            url = url[len(prefix):]
    return Path(url) if "://" not in url else None


def tomogram_paths(source: CopickSource) -> list[tuple[str, Path]]:
    """(run name, local OME-Zarr folder) of the tomogram of each run, or one clear error naming what
    is missing (a run, the voxel spacing, the tomogram type)."""
    root = open_project(source.config)
    names = list(source.runs) or [r.name for r in root.runs]
    if not names:
        raise TomosegError(f"{source.config}: the project has no runs")
    out = []
    for name in names:
        run = root.get_run(name)
        if run is None:
            raise TomosegError(f"{source.config}: no run {name!r} (runs: {', '.join(r.name for r in root.runs)})")
        spacing = run.get_voxel_spacing(source.voxel_spacing)
        if spacing is None:
            have = ", ".join(f"{v.voxel_size:g}" for v in run.voxel_spacings) or "none"
            raise TomosegError(f"{source.config}: run {name!r} has no voxel spacing {source.voxel_spacing:g} A "
                               f"(it has: {have})")
        found = spacing.get_tomograms(source.tomo_type)
        if len(found) > 1:
            warnings.warn(f"{source.config}: run {name!r} has {len(found)} {source.tomo_type!r} tomograms at "
                          f"{source.voxel_spacing:g} A; using the first")
        tomo = found[0] if found else None
        if tomo is None:
            have = ", ".join(t.tomo_type for t in spacing.tomograms) or "none"
            raise TomosegError(f"{source.config}: run {name!r} has no {source.tomo_type!r} tomogram at "
                               f"{source.voxel_spacing:g} A (types: {have})")
        for candidate in (tomo.static_path, tomo.overlay_path):
            local = _local(candidate) if candidate else None
            if local is not None and local.is_dir():
                out.append((name, local))
                break
        else:
            raise TomosegError(f"{source.config}: run {name!r}: the tomogram is not in a local folder "
                               f"({tomo.static_path or tomo.overlay_path}); tomoseg reads copick projects on a "
                               "local file system")
    return out


def check_objects(config: Path_, features: list[str], use: str = "picks") -> None:
    """Every feature must be a pickable object of the project: copick names picks and binary
    segmentations after one (``use`` says which in the refusal)."""
    root = open_project(config)
    names = [o.name for o in root.pickable_objects]
    for feature in features:
        if feature not in names:
            raise TomosegError(f"{config}: no pickable object {feature!r} for the {use} of that feature (objects: "
                               f"{', '.join(names) or 'none'}); add one to the config (copick names {use} after "
                               f"pickable objects)")


RECORD = "copick.json"
"""In a run's batch folder: what the batch wrote into the copick project (config, user, session, entries)."""


def _recorded(folder: Path | None, config: Path_, user_id: str, session_id: str) -> bool:
    """Whether this batch folder wrote this project's entries of this user and session before."""
    if folder is None or not (folder / RECORD).is_file():
        return False
    try:
        record = json.loads((folder / RECORD).read_text())
    except ValueError:
        return False
    return (record.get("config"), record.get("user_id"), record.get("session_id")) == (
        str(Path(config).resolve()), user_id, session_id)


def check_free(config: Path_, runs: list[str], features: tuple[str, ...], picked: list[str], merged: bool,
               user_id: str, session_id: str, overwrite: bool, folders: dict[str, Path] | None = None) -> set[str]:
    """Before any work: refuse (one line) when this user and session have these entries already, unless
    ``overwrite`` or this batch's own folder for the run (``folders``) recorded writing them (the same
    batch run again: it replaces its own entries). Other users' entries never matter. Returns the runs
    whose entries of this user and session will be replaced."""
    root = open_project(config)
    replace = set()
    for name in runs:
        if overwrite or _recorded((folders or {}).get(name), config, user_id, session_id):
            replace.add(name)
            continue
        run = root.get_run(name)
        for feature in features + ((MERGED_NAME,) if merged else ()):
            if run.get_segmentations(name=feature, user_id=user_id, session_id=session_id):
                raise TomosegError(f"run {name!r}: segmentation {feature!r} {_TAKEN}")
        for feature in picked:
            if run.get_picks(object_name=feature, user_id=user_id, session_id=session_id):
                raise TomosegError(f"run {name!r}: picks of {feature!r} {_TAKEN}")
    return replace


def _transforms(angles: np.ndarray, xyz_angstrom: np.ndarray) -> np.ndarray:
    from tomoseg.ops.rotations import rotation

    transforms = np.tile(np.eye(4), (len(angles), 1, 1))
    if len(angles):
        transforms[:, :3, :3] = rotation(angles).as_matrix()
    return transforms


def _replace_ours(existing: list, overwrite: bool, what: str) -> None:
    """Our own entries of this session: refused without overwrite, else deleted first."""
    if existing and not overwrite:
        raise TomosegError(f"{what} {_TAKEN}")
    for entry in existing:
        entry.delete()


def write_run(config: Path_, run_name: str, summary: dict, features: tuple[str, ...], threshold: float,
              user_id: str, session_id: str, overwrite: bool = False, folder: Path | None = None) -> dict:
    """Write one run's batch outputs (``summary.json`` of its tomogram) into the copick project:
    a segmentation per feature, the merged multilabel one, picks. Returns what was written, also
    recorded in ``folder`` (the run's batch folder: :data:`RECORD`), so the same batch run again
    replaces its own entries. Positions are voxel index x voxel size (A), as copick's grids."""
    from tomoseg.io.particles import read_particles
    from tomoseg.types import TomogramInfo

    root = open_project(config)
    run = root.get_run(run_name)
    written: dict = {"run": run_name, "segmentations": [], "picks": {}}
    calibration = summary.get("calibration") or {}
    for feature, path in zip(features, summary["score_maps"]):
        with read_volume(path, mmap=True) as vol:
            voxel = float(vol.voxel_size)
            scale = np.float32(calibration.get(feature, 1.0))
            _replace_ours(run.get_segmentations(name=feature, user_id=user_id, session_id=session_id,
                                                is_multilabel=False, voxel_size=voxel),
                          overwrite, f"run {run_name!r}: segmentation {feature!r}")
            seg = run.new_segmentation(voxel_size=voxel, name=feature, session_id=session_id, is_multilabel=False,
                                       user_id=user_id)
            write_segmentation(seg, vol.data, voxel, lambda block, s=scale: np.asarray(block) / s >= threshold)
        written["segmentations"].append(feature)
    if "labels" in summary:
        values = {o.name: o.label for o in root.pickable_objects}  # every feature has one (check_objects)
        lut = np.zeros(256, dtype=np.uint8)
        for k, feature in enumerate(features, start=1):
            lut[k] = values[feature]
        with read_volume(summary["labels"], mmap=True) as vol:
            merged_voxel = float(vol.voxel_size)
            _replace_ours(run.get_segmentations(name=MERGED_NAME, user_id=user_id, session_id=session_id,
                                                is_multilabel=True, voxel_size=merged_voxel),
                          overwrite, f"run {run_name!r}: segmentation {MERGED_NAME!r}")
            seg = run.new_segmentation(voxel_size=merged_voxel, name=MERGED_NAME, session_id=session_id,
                                       is_multilabel=True, user_id=user_id)
            write_segmentation(seg, vol.data, merged_voxel, lambda block: lut[_label_bytes(block, summary["labels"])])
        written["segmentations"].append(MERGED_NAME)
    for feature, entry in (summary.get("picks") or {}).items():
        with read_volume(summary["score_maps"][features.index(feature)]) as scores:
            info = TomogramInfo(run_name, float(scores.voxel_size), tuple(scores.data.shape), scores.origin)
        picks, _ = read_particles(entry["file"], info=info)
        xyz = picks.xyz * info.voxel_size  # Angstrom, x y z, from voxel 0 (copick's grids have no origin)
        _replace_ours(run.get_picks(object_name=feature, user_id=user_id, session_id=session_id), overwrite,
                      f"run {run_name!r}: picks of {feature!r}")
        out = run.new_picks(object_name=feature, session_id=session_id, user_id=user_id)
        out.from_numpy(xyz, _transforms(picks.angles, xyz), scores=np.asarray(picks.score, dtype=np.float64))
        written["picks"][feature] = len(picks)
    if folder is not None:
        from tomoseg.io.atomic import atomic_output

        with atomic_output(Path(folder) / RECORD) as tmp:
            tmp.write_text(json.dumps({"config": str(Path(config).resolve()), "user_id": user_id,
                                       "session_id": session_id, **written}, indent=1))
    return written


def _label_bytes(block: np.ndarray, path) -> np.ndarray:
    """A merged map's labels as bytes (MRC label maps are int8, read unsigned); refused beyond 255."""
    if block.dtype.itemsize == 1:
        return block.view(np.uint8)
    if block.size and (block.min() < 0 or block.max() > 255):
        raise TomosegError(f"{path}: labels beyond 255; a copick multilabel segmentation holds bytes")
    return block.astype(np.uint8)


SEGMENTATION_CHUNKS = (64, 256, 256)
"""Chunks of the segmentations tomoseg writes (z, y, x); also how many slices are converted at a time."""


def write_segmentation(seg, data, voxel_size: float, convert) -> None:
    """Write a copick segmentation slab by slab: ``convert(block)`` turns each block of ``data`` (slices
    of a memory-mapped map) into uint8 labels. The same OME-Zarr layout as copick's ``from_numpy``
    (one level "0", a scale transform in A), without the whole volume in memory. Interrupted or
    failed, the segmentation is deleted again (the batch, run again, writes it whole)."""
    import zarr
    from ome_zarr.writer import write_multiscales_metadata

    shape = tuple(int(n) for n in data.shape)
    chunks = tuple(min(c, n) for c, n in zip(SEGMENTATION_CHUNKS, shape))
    try:
        group = zarr.group(store=seg.zarr(), overwrite=True)
        level = group.create_dataset("0", shape=shape, chunks=chunks, dtype=np.uint8, fill_value=0,
                                     dimension_separator="/")
        for z0 in range(0, shape[0], chunks[0]):
            level[z0:z0 + chunks[0]] = np.asarray(convert(read_slab(data, z0, z0 + chunks[0])), dtype=np.uint8)
        axes = [{"name": a, "type": "space", "unit": "angstrom"} for a in "zyx"]
        write_multiscales_metadata(group, [{"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": [float(voxel_size)] * 3}]}], axes=axes, name="/")
    except BaseException:  # Ctrl-C or an unreadable map: no half-written segmentation stays in the project
        seg.delete()
        raise


def user_check(user_id: str, session_id: str) -> None:
    for name, value in (("user_id", user_id), ("session_id", session_id)):
        if not value or any(c in value for c in "/\\_ ") or value != value.strip():
            raise TomosegError(f"`{name}` {value!r}: use letters, digits and '-' (copick joins names with '_')")



def _segmentation_mask(run, config: Path_, name: str, voxel: float, user_id: str | None, value: int | None):
    found = run.get_segmentations(name=name, voxel_size=voxel, **({"user_id": user_id} if user_id else {}))
    if not found:
        have = sorted({f"{s.name} ({s.user_id})" for s in run.get_segmentations()}) or ["none"]
        raise TomosegError(f"{config}: run {run.name!r} has no segmentation {name!r} at {voxel:g} A"
                           + (f" by {user_id!r}" if user_id else "") + f" (segmentations: {', '.join(have)})")
    if len(found) > 1:
        raise TomosegError(f"{config}: run {run.name!r} has {len(found)} segmentations {name!r} (users "
                           f"{', '.join(sorted({s.user_id for s in found}))}); choose one with `from_user`")
    data = found[0].numpy()
    if found[0].is_multilabel:
        if value is None:
            raise TomosegError(f"{config}: segmentation {name!r} is multilabel; give the feature's `value`")
        return data == value
    return data > 0


def _pick_spheres(root, run, config: Path_, name: str, shape, voxel: float, user_id: str | None) -> np.ndarray:
    obj = root.get_object(name)
    if obj is None or not obj.radius:
        raise TomosegError(f"{config}: no pickable object {name!r} with a radius (the masks at its picks are "
                           "spheres of that radius)")
    found = run.get_picks(object_name=name, **({"user_id": user_id} if user_id else {}))
    points = [p.numpy()[0] for p in found]
    xyz = np.concatenate(points) if points else np.zeros((0, 3))
    if len(xyz) == 0:
        raise TomosegError(f"{config}: run {run.name!r} has no picks of {name!r}"
                           + (f" by {user_id!r}" if user_id else ""))
    mask = np.zeros(shape, dtype=bool)
    r = obj.radius / voxel
    reach = int(np.ceil(r))
    g = np.arange(-reach, reach + 1)
    ball = (g[:, None, None] ** 2 + g[None, :, None] ** 2 + g[None, None, :] ** 2) <= r * r
    for x, y, z in np.round(xyz / voxel).astype(int):
        lo = np.array([z, y, x]) - reach
        hi = lo + 2 * reach + 1
        a, b = np.maximum(lo, 0), np.minimum(hi, shape)
        if np.any(a >= b):
            continue
        sub = ball[a[0] - lo[0]:b[0] - lo[0], a[1] - lo[1]:b[1] - lo[1], a[2] - lo[2]:b[2] - lo[2]]
        mask[a[0]:b[0], a[1]:b[1], a[2]:b[2]] |= sub
    return mask


def copick_trainset(source: CopickSource, output: Path_, segmentation: str | None = None, picks: str | None = None,
                    value: int | None = None, from_user: str | None = None, boxes: Path_ | None = None,
                    n_positive: int = 10, n_negative: int = 100, seed: int = 0, name: str | None = None,
                    context: int = 0, overwrite: bool = False):
    """``trainset --copick``: training tiles of one run's tomogram, their masks from a copick
    segmentation (binary, or one ``value`` of a multilabel one) or from picks (spheres of the pickable
    object's radius), by ``from_user`` where several users made one; the boxes from a CSV, or chosen from the masks (``n_positive`` tiles on the
    feature, ``n_negative`` free of it, seeded: :func:`~tomoseg.steps.trainset.choose_boxes`)."""
    import warnings

    from tomoseg.errors import about
    from tomoseg.io.atomic import check_writable
    from tomoseg.io.boxes import read_boxes
    from tomoseg.io.trainset_file import save_trainset
    from tomoseg.steps.trainset import choose_boxes, make_trainset
    from tomoseg.workflows.pipeline import preprocessing_of

    if (segmentation is None) == (picks is None):
        raise TomosegError("give exactly one of `segmentation` or `picks` (the masks' source)")
    if len(source.runs) != 1:
        raise TomosegError("trainset --copick takes one run")
    check_writable(output, inputs=(source.config,), overwrite=overwrite)
    (run_name, path), = tomogram_paths(source)
    root = open_project(source.config)
    run = root.get_run(run_name)
    tomo = read_volume(path)
    voxel = float(tomo.voxel_size)
    if segmentation is not None:
        mask = _segmentation_mask(run, source.config, segmentation, source.voxel_spacing, from_user, value)
    else:
        mask = _pick_spheres(root, run, source.config, picks, tomo.data.shape, voxel, from_user)
    if mask.shape != tomo.data.shape:
        raise TomosegError(f"{source.config}: run {run_name!r}: the masks are {mask.shape}, the tomogram "
                           f"{tomo.data.shape} (z, y, x)")
    chosen = read_boxes(boxes) if boxes is not None else None
    if chosen is None:
        with about(f"{source.config}: run {run_name!r}"):
            chosen = choose_boxes(mask.astype(np.uint8), 1, n_positive, n_negative, seed=seed)
    pre = preprocessing_of(tomo, path)
    if pre is None:
        warnings.warn(f"{path}: not preprocessed by tomoseg; apply the model only to tomograms prepared the same way",
                      stacklevel=2)
    with about(boxes or f"{source.config}: run {run_name!r}"):
        trainset = make_trainset(tomo.data, chosen, lambda z: mask[z], name or segmentation or picks, voxel,
                                 None if pre is None else pre.to_dict(), source=f"copick {source.config} {run_name}",
                                 context=context)
    save_trainset(output, trainset)
    return trainset
