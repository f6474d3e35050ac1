"""What a batch does to each tomogram, and what of it is up to date.

``plan_batch`` checks every input before any work and returns one :class:`TomogramJob` per
tomogram. ``.batch.json`` in each tomogram's folder records what its outputs were made from (the
fingerprints of the input files and models, and of the options): :func:`is_done` and the start of
a run (:func:`start`) compare them, to skip, reuse, resume or redo only what changed.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from tomoseg.errors import InvalidValue, TomosegError
from tomoseg.io.atomic import atomic_output
from tomoseg.io.model_file import load_model
from tomoseg.io.mrc import read_volume
from tomoseg.io.particle_formats import FORMATS
from tomoseg.io.particles import extension_of
from tomoseg.io.resumable import partial_paths
from tomoseg.steps.preprocess import PreprocessConfig
from tomoseg.steps.segment import check_tta
from tomoseg.types import Path_
from tomoseg.workflows.particles import PickMode
from tomoseg.workflows.pipeline import VOXEL_SIZE_TOLERANCE, check_compatible, file_fingerprint

RESERVED_STEMS = ("pre", "labels")
"""Model file names whose score maps would take the name of the batch's own outputs."""


@dataclass(frozen=True)
class BatchConfig:
    """What to do with each tomogram.

    preprocess: the tomograms are raw; preprocess each as the models' training tomogram
    was. voxel_size: A/voxel of the raw tomograms, where their headers are wrong
    (with ``preprocess`` only). threshold: of the merge. picks: (feature name, picking
    configuration) pairs. particle_format: one of ``io.particles.FORMATS``. force:
    apply despite a voxel-size or preprocessing mismatch (each one forced is warned about).
    overwrite: start every tomogram over, replacing what an earlier batch (or anyone) left
    where its outputs go; without it the output folder is the batch's own workspace: a
    re-run skips, resumes or redoes only what its changed inputs and options require.
    device, engine, tta: as ``tomoseg apply``. calibrate: merge and pick each map on its network's
    training scale (``merge --calibrate``).
    """

    preprocess: bool = False
    voxel_size: float | None = None
    threshold: float = 1.0
    picks: tuple[tuple[str, PickMode], ...] = ()
    particle_format: str = "relion5"
    force: bool = False
    overwrite: bool = False
    device: str = "auto"
    engine: str = "fft"
    tta: int = 1
    calibrate: bool = False

    def __post_init__(self) -> None:
        check_tta(self.tta)
        if self.particle_format not in FORMATS:
            raise InvalidValue(f"unknown `particle_format` {self.particle_format!r}; choose one of {', '.join(FORMATS)}")
        if self.voxel_size is not None and not self.preprocess:
            raise InvalidValue("`voxel_size` corrects raw tomograms' headers: it needs `preprocess`")


@dataclass(frozen=True)
class TomogramJob:
    """One tomogram of a batch: where it is, where its outputs go, how to preprocess it
    (None: it is preprocessed already), the models to apply and their feature names."""

    tomogram: Path
    folder: Path
    models: tuple[Path, ...]
    preprocessing: PreprocessConfig | None = None
    features: tuple[str, ...] = ()

    @property
    def stem(self) -> str:
        """The name of this tomogram's outputs: its folder's (the file's stem, or a copick run's name)."""
        return self.folder.name

    @property
    def scored(self) -> Path:
        """The tomogram the models are applied to."""
        return self.tomogram if self.preprocessing is None else self.folder / f"{self.stem}_pre.mrc"

    def score_maps(self) -> list[Path]:
        return [self.folder / f"{self.stem}_{m.stem}.mrc" for m in self.models]

    def labels(self) -> Path:
        return self.folder / f"{self.stem}_labels.mrc"

    def picks(self, feature: str, format: str) -> Path:
        return self.folder / f"{self.stem}_{feature}{extension_of(format)}"


def plan_batch(
    tomograms: Sequence[Path_], model_paths: Sequence[Path_], output: Path_, config: BatchConfig = BatchConfig(),
    names: Sequence[str] | None = None,
) -> list[TomogramJob]:
    """Check every input and return one job per tomogram; nothing is written.

    Raises :class:`TomosegError` naming the file for a missing or unreadable input,
    outputs that would collide, a feature to pick that no model (or more than one) has,
    models trained on differently preprocessed tomograms (with ``preprocess``), a
    tomogram the models do not fit (without ``preprocess``, unless ``force``), or an
    output folder that cannot be written. Paths are made absolute (cluster workers
    have other working folders). ``names``: each tomogram's output folder name (default: its file
    name's stem; copick runs give theirs, their files all being ``denoised.zarr``).
    """
    if not model_paths:
        raise TomosegError("batch needs at least one model")
    if not tomograms:
        raise TomosegError("batch needs at least one tomogram")
    model_paths = [_absolute(p) for p in model_paths]
    models = [load_model(p) for p in model_paths]
    _unique([p.stem for p in model_paths], "model file names", "their score maps would collide")
    for path in model_paths:
        if path.stem in RESERVED_STEMS:
            raise TomosegError(f"{path}: a model file may not be called {path.stem!r} in a batch (its score map "
                               "would take the name of the batch's own output); rename it")
    features = tuple(m.name for m in models)
    for name, _ in config.picks:
        if features.count(name) != 1:
            raise TomosegError(f"{'no model' if name not in features else 'more than one model'} is for the "
                               f"feature {name!r} to pick; the models are for {', '.join(features)}")
    paths = [_absolute(t) for t in tomograms]
    stems = list(names) if names is not None else [p.stem for p in paths]
    _unique(stems, "tomogram file names" if names is None else "run names", "their output folders would collide")
    out = _absolute(output)
    _check_output_folder(out)
    base = _shared_preprocessing(models, model_paths) if config.preprocess else None
    jobs = []
    for path, stem in zip(paths, stems):
        if not (path.is_file() or (path.is_dir() and path.suffix.lower() == ".zarr")):
            raise TomosegError(f"{path}: no such file")
        vol = read_volume(path, voxel_size=config.voxel_size, header_only=True,
                          near_voxel_size=None if config.preprocess else models[0].voxel_size)
        pre = None
        if base is not None:
            target = models[0].voxel_size
            pre = base.reaching(vol.voxel_size, target, VOXEL_SIZE_TOLERANCE)
            if vol.voxel_size > 1.25 * target:  # a few per cent finer is harmless
                warnings.warn(f"{path}: its {vol.voxel_size:g} A voxels are resampled to the models' finer "
                              f"{target:g} A, which adds no detail; a model trained at {vol.voxel_size:g} A would "
                              "fit these data better")
        else:
            for model, model_path in zip(models, model_paths):
                check_compatible(model, model_path, vol, path, force=config.force)
        job = TomogramJob(path, out / stem, tuple(model_paths), pre, features)
        found = [] if config.overwrite else unrecorded_outputs(job, config)
        if found:
            raise TomosegError(f"{job.folder}: holds {found[0].name}, which no batch recorded making (an older "
                               "tomoseg's, or another program's); remove it or choose another output folder")
        jobs.append(job)
    return jobs


def _absolute(path: Path_) -> Path:
    """An absolute path, symbolic links kept (their names are the tomograms' names)."""
    return Path(os.path.abspath(path))


def _unique(names: list[str], what: str, why: str) -> None:
    seen = set()
    for name in names:
        if name in seen:
            raise TomosegError(f"two {what} are {name!r}; {why}")
        seen.add(name)


def _check_output_folder(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise TomosegError(f"{out}: exists and is not a folder")
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise TomosegError(f"{out}: cannot be written ({existing} is not a writable folder)")


def _shared_preprocessing(models, model_paths: list[Path]) -> PreprocessConfig:
    """The preprocessing every model expects (their training tomograms'), or an error."""
    first, first_path = models[0], model_paths[0]
    if first.preprocessing is None:
        raise TomosegError(f"{first_path}: the model does not record how its training tomogram was preprocessed; "
                           "preprocess the tomograms yourself and run batch without `preprocess`")
    base = PreprocessConfig.from_dict(first.preprocessing)
    for model, path in zip(models[1:], model_paths[1:]):
        other = None if model.preprocessing is None else PreprocessConfig.from_dict(model.preprocessing)
        same_size = abs(model.voxel_size - first.voxel_size) <= VOXEL_SIZE_TOLERANCE * first.voxel_size
        if other is None or not same_size or not other.same_filters(base) or other.invert != base.invert:
            raise TomosegError(f"{path}: trained on tomograms preprocessed otherwise than {first_path}'s "
                               "(voxel size, band-pass, clamp or contrast); run one batch per group of models")
    return base


def _fingerprints(job: TomogramJob, config: BatchConfig) -> dict:
    """What the score maps, and what the labels and picks, are made from."""
    maps = {"tomogram": file_fingerprint(job.tomogram), "models": [file_fingerprint(m) for m in job.models],
            "preprocessing": None if job.preprocessing is None else job.preprocessing.to_dict(),
            "voxel_size": config.voxel_size, "engine": config.engine,
            **({"tta": config.tta} if config.tta > 1 else {})}
    post = {"threshold": config.threshold, "format": config.particle_format,
            **({"calibrate": True} if config.calibrate else {}),
            "picks": [[feature, type(pick).__name__, asdict(pick)] for feature, pick in config.picks]}
    return json.loads(json.dumps({"maps": maps, "post": post}))


def _state_path(job: TomogramJob) -> Path:
    return job.folder / ".batch.json"


def _read_state(job: TomogramJob) -> dict:
    try:
        state = json.loads(_state_path(job).read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _outputs(job: TomogramJob, config: BatchConfig) -> dict[str, list[str]]:
    """File names (inside the job's folder) of the outputs made from the maps' and the post level's inputs."""
    maps = ([job.scored] if job.preprocessing is not None else []) + job.score_maps()
    post = ([job.labels()] if len(job.models) > 1 else []) + \
        [job.picks(feature, config.particle_format) for feature, _ in config.picks]
    return {"maps": [p.name for p in maps], "post": [p.name for p in post] + ["summary.json"]}


def _remove(job: TomogramJob, names) -> None:
    """Delete these outputs (plain names inside the job's folder, never its tomogram or models)."""
    keep = {job.tomogram.resolve(), *(m.resolve() for m in job.models)}
    for name in names:
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            continue  # not a plain file name: not batch's
        path = job.folder / name
        if path.resolve() not in keep and (path.is_file() or path.is_symlink()):
            path.unlink()


def unrecorded_outputs(job: TomogramJob, config: BatchConfig) -> list[Path]:
    """Outputs already in a job's folder that no batch recorded (``.batch.json`` missing):
    made by hand or by another program, so neither reused nor deleted."""
    if _read_state(job):
        return []
    names = [n for level in _outputs(job, config).values() for n in level]
    return [job.folder / n for n in names if (job.folder / n).exists()]


def prepare_folder(job: TomogramJob, config: BatchConfig) -> None:
    """Remove outputs made from other inputs or options than these (and temporary files a killed
    run left), and record these."""
    job.folder.mkdir(parents=True, exist_ok=True)
    old, new = _read_state(job), _fingerprints(job, config)
    files = old.get("files") if isinstance(old.get("files"), dict) else {}
    if config.overwrite:  # start over: nothing is reused, whoever made it
        files = {level: list(files.get(level, [])) + names for level, names in _outputs(job, config).items()}
        old = {}
    if old.get("maps") != new["maps"]:
        maps = list(files.get("maps", []))
        _remove(job, maps + [n for f in maps if isinstance(f, str) for n in (p.name for p in partial_paths(f))])
    if old.get("maps") != new["maps"] or old.get("post") != new["post"]:
        _remove(job, list(files.get("post", [])) + ["summary.json"])
    _remove(job, [p.name for p in job.folder.glob(".*.part")])  # atomic_output's, from a killed worker
    new["files"] = _outputs(job, config)
    with atomic_output(_state_path(job)) as tmp:
        tmp.write_text(json.dumps(new, indent=2))


def is_done(job: TomogramJob, config: BatchConfig = BatchConfig()) -> bool:
    """Whether an earlier run finished this tomogram with these inputs and options (and its outputs are there)."""
    if config.overwrite:
        return False
    state, now = _read_state(job), _fingerprints(job, config)
    if state.get("maps") != now["maps"] or state.get("post") != now["post"]:
        return False
    return all((job.folder / n).is_file() for level in _outputs(job, config).values() for n in level)


def read_summary(job: TomogramJob) -> dict | None:
    try:
        summary = json.loads((job.folder / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) and "tomogram" in summary else None
