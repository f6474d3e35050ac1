"""``tomoseg batch``: apply feature networks to many tomograms, on Dask.

One task per tomogram, in its own folder ``OUTPUT/STEM/``:

1. with ``preprocess``: the raw tomogram is preprocessed as the models' training
   tomogram was (their band-pass, clamp and contrast), binned and, where no integer
   factor fits, resampled to the models' voxel size -> ``STEM_pre.mrc``;
2. every model is applied, each slab read once -> ``STEM_MODEL.mrc`` score maps;
3. with two or more models, the maps are merged (argmax, threshold) -> ``STEM_labels.mrc``;
4. particles are picked from the requested features' maps -> ``STEM_FEATURE.star`` (or
   another format);
5. ``summary.json`` is written last: a tomogram with one is done and skipped when
   the batch runs again. Every file appears whole or not at all, and an interrupted
   score map is resumed.

Tasks run on Dask: one after another in this process (``workers=1``, every core
for each tomogram), in ``workers`` local processes, or on a distributed cluster
(``scheduler``: the address of a ``distributed`` scheduler, e.g.
``tcp://host:8786``; paths must then be the same on every worker). A tomogram that
fails is reported and the others go on. Every input is checked before any work
(:func:`plan_batch`), so a wrong voxel size or a missing file stops the batch at
once with one line.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tomoseg.errors import TomosegError
from tomoseg.io.atomic import atomic_output
from tomoseg.io.model_file import load_model
from tomoseg.io.mrc import read_volume
from tomoseg.io.particles import write_particles
from tomoseg.progress import Progress, report, scaled
from tomoseg.steps.preprocess import PreprocessConfig
from tomoseg.types import TomogramInfo
from tomoseg.workflows.particles import PickMode, pick_scores
from tomoseg.workflows.pipeline import (
    VOXEL_SIZE_TOLERANCE,
    apply_files,
    check_compatible,
    merge_files,
    preprocess_file,
    torch_threads,
)

Path_ = str | os.PathLike

CONNECT_TIMEOUT = "30s"
"""How long to wait for a Dask distributed scheduler to answer."""

#: File extension of each particle format.
PARTICLE_EXTENSIONS = {"csv": ".csv", "relion5": ".star", "relion3": ".star", "dynamo": ".tbl",
                       "imod": ".mod", "eman2": ".json"}


@dataclass(frozen=True)
class BatchConfig:
    """What to do with each tomogram.

    preprocess: the tomograms are raw; preprocess each as the models' training tomogram
    was. threshold: of the merge. picks: (feature name, picking configuration) pairs.
    particle_format: one of :data:`PARTICLE_EXTENSIONS`. force: apply despite a
    voxel-size or preprocessing mismatch. device, engine: as ``tomoseg apply``.
    """

    preprocess: bool = False
    threshold: float = 1.0
    picks: tuple[tuple[str, PickMode], ...] = ()
    particle_format: str = "relion5"
    force: bool = False
    device: str = "auto"
    engine: str = "fft"

    def __post_init__(self) -> None:
        if self.particle_format not in PARTICLE_EXTENSIONS:
            raise ValueError(f"unknown particle format {self.particle_format!r}; "
                             f"choose one of {', '.join(PARTICLE_EXTENSIONS)}")


@dataclass(frozen=True)
class TomogramJob:
    """One tomogram of a batch: where it is, where its outputs go, how to preprocess it
    (None: it is preprocessed already), and the models to apply."""

    tomogram: Path
    folder: Path
    models: tuple[Path, ...]
    preprocessing: PreprocessConfig | None = None
    features: tuple[str, ...] = field(default=())

    @property
    def stem(self) -> str:
        return self.tomogram.stem


def plan_batch(
    tomograms: Sequence[Path_], model_paths: Sequence[Path_], output: Path_, config: BatchConfig = BatchConfig()
) -> list[TomogramJob]:
    """Check every input and return one job per tomogram; nothing is written.

    Raises :class:`TomosegError` naming the file for a missing or unreadable input,
    two inputs whose outputs would collide, a feature to pick that no model has,
    models trained on differently preprocessed tomograms (with ``preprocess``), or a
    tomogram the models do not fit (without ``preprocess``, unless ``force``).
    """
    if not model_paths:
        raise TomosegError("batch needs at least one model")
    if not tomograms:
        raise TomosegError("batch needs at least one tomogram")
    model_paths = [Path(p) for p in model_paths]
    models = [load_model(p) for p in model_paths]
    _unique([p.stem for p in model_paths], "model file names", "their score maps would collide")
    features = tuple(m.name for m in models)
    for name, _ in config.picks:
        if name not in features:
            raise TomosegError(f"no model is for the feature {name!r} to pick; the models are for "
                               f"{', '.join(features)}")
    paths = [Path(t) for t in tomograms]
    _unique([p.stem for p in paths], "tomogram file names", "their output folders would collide")
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise TomosegError(f"{out}: exists and is not a folder")
    base = _shared_preprocessing(models, model_paths) if config.preprocess else None
    jobs = []
    for path in paths:
        if not path.is_file():
            raise TomosegError(f"{path}: no such file")
        vol = read_volume(path)
        if base is not None:
            pre = base.reaching(vol.voxel_size, models[0].voxel_size, VOXEL_SIZE_TOLERANCE)
        else:
            pre = None
            if not config.force:
                for model, model_path in zip(models, model_paths):
                    check_compatible(model, model_path, vol, path)
        jobs.append(TomogramJob(path, out / path.stem, tuple(model_paths), pre, features))
    return jobs


def _unique(names: list[str], what: str, why: str) -> None:
    seen = set()
    for name in names:
        if name in seen:
            raise TomosegError(f"two {what} are {name!r}; {why}")
        seen.add(name)


def _shared_preprocessing(models, model_paths: list[Path]) -> PreprocessConfig:
    """The preprocessing every model expects (their training tomograms'), or an error."""
    first, first_path = models[0], model_paths[0]
    if first.preprocessing is None:
        raise TomosegError(f"{first_path}: the model does not record how its training tomogram was preprocessed; "
                           "preprocess the tomograms yourself and run batch without --preprocess")
    base = PreprocessConfig.from_dict(first.preprocessing)
    for model, path in zip(models[1:], model_paths[1:]):
        other = None if model.preprocessing is None else PreprocessConfig.from_dict(model.preprocessing)
        same_size = abs(model.voxel_size - first.voxel_size) <= VOXEL_SIZE_TOLERANCE * first.voxel_size
        if other is None or not same_size or not other.same_filters(base) or other.invert != base.invert:
            raise TomosegError(f"{path}: trained on tomograms preprocessed otherwise than {first_path}'s "
                               "(voxel size, band-pass, clamp or contrast); run one batch per group of models")
    return base


def run_tomogram(job: TomogramJob, config: BatchConfig = BatchConfig(), threads: int | None = None,
                 progress: Progress | None = None) -> dict:
    """Preprocess, apply, merge and pick one tomogram; returns its summary (also in ``summary.json``).

    Steps whose output exists already are skipped (outputs appear whole or not at all).
    """
    start = time.perf_counter()
    job.folder.mkdir(parents=True, exist_ok=True)
    stem = job.stem
    tomogram = job.tomogram
    if job.preprocessing is not None:
        tomogram = job.folder / f"{stem}_pre.mrc"
        if not tomogram.exists():
            report(progress, 0, 100, "preprocessing")
            preprocess_file(job.tomogram, tomogram, job.preprocessing)
    scores = [job.folder / f"{stem}_{m.stem}.mrc" for m in job.models]
    todo = [i for i, s in enumerate(scores) if not s.exists()]
    if todo:
        apply_files([job.models[i] for i in todo], tomogram, job.folder, engine=config.engine,
                    force=True, device=config.device, threads=threads, resume=True,
                    progress=scaled(progress, 10, 80, 100, "applying"), outputs=[scores[i] for i in todo])
    summary: dict = {"tomogram": str(job.tomogram), "scored": str(tomogram), "status": "done"}
    if len(scores) > 1:
        labels = job.folder / f"{stem}_labels.mrc"
        if not labels.exists():
            report(progress, 90, 100, "merging")
            merge_files(scores, labels, config.threshold)
        summary["labels"] = str(labels)
    vol = read_volume(scores[0])
    info = TomogramInfo(stem, float(vol.voxel_size), tuple(int(s) for s in vol.data.shape), vol.origin)
    summary.update(voxel_size=info.voxel_size, shape=list(info.shape), score_maps=[str(s) for s in scores])
    extension = PARTICLE_EXTENSIONS[config.particle_format]
    for feature, pick in config.picks:
        report(progress, 95, 100, f"picking {feature}")
        path = job.folder / f"{stem}_{feature}{extension}"
        score_map = read_volume(scores[job.features.index(feature)])
        picks = pick_scores(np.asarray(score_map.data, dtype=np.float32), info.voxel_size, pick)
        write_particles(path, picks, info, config.particle_format)
        summary.setdefault("picks", {})[feature] = {"file": str(path), "count": len(picks)}
    summary["seconds"] = round(time.perf_counter() - start, 2)
    with atomic_output(job.folder / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    report(progress, 100, 100, "done")
    return summary


def is_done(job: TomogramJob) -> bool:
    """Whether an earlier run finished this tomogram."""
    return (job.folder / "summary.json").is_file()


def _run_safely(job: TomogramJob, config: BatchConfig, threads: int | None, progress: Progress | None = None) -> dict:
    """:func:`run_tomogram` with ``threads`` torch threads; a failure becomes a summary, not a lost batch."""
    try:
        with torch_threads(threads or _node_threads()):
            return run_tomogram(job, config, progress=progress)
    except TomosegError as err:
        message = str(err)
    except OSError as err:
        message = f"{err.filename or ''}: {err.strerror or err}"
    except Exception as err:  # noqa: BLE001 - one tomogram's bug must not lose the others' results
        message = f"internal error: {type(err).__name__}: {err}"
    return {"tomogram": str(job.tomogram), "status": "failed", "error": message.splitlines()[0]}


def _node_threads() -> int | None:
    """On a Dask distributed worker: torch threads for a task, the node's cores shared among
    the worker's task threads; None elsewhere.

    A worker's nanny sets ``OMP_NUM_THREADS=1`` (torch on one core) and
    ``MALLOC_TRIM_THRESHOLD_``, which turns glibc's adaptive mmap threshold off: every
    array over 128 KiB is then mapped and unmapped again, and ``apply`` ran 2.4x slower
    (docs/benchmarks.md). glibc's usual ceilings (32 MiB mapped, 64 MiB trimmed) are restored.
    """
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    if "MALLOC_TRIM_THRESHOLD_" in os.environ:
        _restore_malloc_thresholds()
    return max(1, (os.cpu_count() or 1) // max(1, worker.state.nthreads))


def _restore_malloc_thresholds() -> None:
    import ctypes

    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's mallopt parameters
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(m_mmap_threshold, 32 * 2**20)
        libc.mallopt(m_trim_threshold, 64 * 2**20)
    except (OSError, AttributeError):  # not glibc
        pass


def run_batch(
    jobs: Sequence[TomogramJob],
    config: BatchConfig = BatchConfig(),
    workers: int = 1,
    threads: int | None = None,
    scheduler: str | None = None,
    progress: Progress | None = None,
) -> list[dict]:
    """Run the jobs on Dask and return one summary per job, in order (``status``: "done",
    "skipped" for one finished earlier, or "failed" with ``error``).

    ``workers``: tomograms at once on this machine (1: in this process; more: local
    processes). ``threads``: CPU threads per tomogram (default: the machine's cores
    divided among the workers). ``scheduler``: address of a Dask distributed scheduler
    instead (needs the ``distributed`` package; ``workers`` is then the cluster's, and
    ``threads`` defaults to all cores of the node running each tomogram).
    """
    if workers < 1:
        raise TomosegError(f"--workers must be >= 1, got {workers}")
    if threads is not None and threads < 1:
        raise TomosegError(f"--threads must be >= 1, got {threads}")
    results: list[dict | None] = [None] * len(jobs)
    pending = []
    for i, job in enumerate(jobs):
        if is_done(job):
            results[i] = {**json.loads((job.folder / "summary.json").read_text()), "status": "skipped"}
        else:
            pending.append(i)
    total = 100 * len(jobs)
    finished = 100 * (len(jobs) - len(pending))
    report(progress, finished, total, f"{len(pending)} to do")
    if not pending:
        return results
    if scheduler is None and workers == 1:  # in this process, with progress inside each tomogram
        for k, i in enumerate(pending):
            job = jobs[i]
            results[i] = _run_safely(job, config, threads, scaled(progress, finished + 100 * k, 100, total, job.stem))
        return results
    import dask

    if scheduler is None:  # share this machine's cores out; on a cluster each worker's torch uses its own
        threads = threads or max(1, (os.cpu_count() or 1) // workers)
    tasks = [dask.delayed(_run_safely, pure=False)(jobs[i], config, threads) for i in pending]

    def done(count: int, job_index: int, summary: dict) -> None:
        results[job_index] = summary
        report(progress, finished + 100 * count, total, f"{jobs[job_index].stem} {summary['status']}")

    if scheduler is not None:
        _on_cluster(tasks, pending, scheduler, done)
    else:
        _on_processes(tasks, pending, workers, done)
    return results


def _on_processes(tasks, pending: list[int], workers: int, done) -> None:
    """Local Dask processes (spawned, so torch starts clean in each, one tomogram per submission).

    Ctrl-C reaches the workers too, so each stops at once and removes its partial files
    (a score map's journal is kept for resuming)."""
    import multiprocessing
    import signal
    from concurrent.futures import ProcessPoolExecutor

    import dask
    from dask.callbacks import Callback

    keys = {task.key: i for task, i in zip(tasks, pending)}
    count = [0]

    class Reporter(Callback):
        def _posttask(self, key, result, dsk, state, worker_id):  # noqa: D102
            if key in keys:
                count[0] += 1
                done(count[0], keys[key], result)

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool, Reporter():
        try:
            dask.compute(*tasks, scheduler="processes", pool=pool, chunksize=1)
        except KeyboardInterrupt:
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                if process.is_alive():
                    os.kill(process.pid, signal.SIGINT)
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _on_cluster(tasks, pending: list[int], address: str, done) -> None:
    """A Dask distributed scheduler at ``address``."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise TomosegError("--scheduler needs the 'distributed' package: pip install 'tomoseg[cluster]'") from None
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as err:
        raise TomosegError(f"cannot reach the Dask scheduler at {address} ({err})") from None
    with client:
        futures = client.compute(tasks)
        index = {f.key: i for f, i in zip(futures, pending)}
        for count, future in enumerate(as_completed(futures), start=1):
            done(count, index[future.key], future.result())


def write_batch_table(results: Sequence[dict], path: Path_) -> None:
    """One row per tomogram: status, seconds, voxel size, picks per feature, error (CSV, atomic)."""
    import pandas as pd

    rows = []
    for r in results:
        row = {"tomogram": r["tomogram"], "status": r["status"], "seconds": r.get("seconds"),
               "voxel_size": r.get("voxel_size"), "error": r.get("error", "")}
        for feature, pick in r.get("picks", {}).items():
            row[f"picks_{feature}"] = pick["count"]
        rows.append(row)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
