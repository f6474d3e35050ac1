"""``tomoseg batch``: apply feature networks to many tomograms, on Dask.

One task per tomogram, in its own folder ``OUTPUT/STEM/``:

1. with ``preprocess``: the raw tomogram is preprocessed as the models' training
   tomogram was (their band-pass, clamp and contrast), binned and, where no integer
   factor fits, resampled to the models' voxel size -> ``STEM_pre.mrc``;
2. every model is applied, each slab read once -> ``STEM_MODEL.mrc`` score maps;
3. with two or more models, the maps are merged (argmax, threshold) -> ``STEM_labels.mrc``;
4. particles are picked from the requested features' maps -> ``STEM_FEATURE.star`` (or
   another format);
5. ``summary.json`` is written last.

``.batch.json`` records what the outputs were made from (input files, models,
preprocessing; threshold, picks, format). Running the batch again skips a finished
tomogram made from the same, reuses and resumes the outputs of an interrupted one,
redoes only the merge and picks when only those options changed, and everything when
an input or model changed. Every file appears whole or not at all. A tomogram's folder
is locked while a task works in it (``.batch.lock``), so a second batch started on the
same output (e.g. again at once, while a cluster still finishes the tasks of one
interrupted) fails that tomogram instead of writing the same files.

Tasks run on Dask: one after another in this process (``workers=1``, every core for
each tomogram), in ``workers`` local processes, or on a distributed cluster
(``scheduler``: the address of a ``distributed`` scheduler, e.g. ``tcp://host:8786``;
paths must then be the same on every worker). A tomogram that fails (bad data, a
worker killed for memory) is reported and the others go on; the tomograms that ran
beside a local worker that died are retried one at a time, so only its own fails. Every input is checked
before any work (:func:`plan_batch`), so a wrong voxel size or a missing file stops
the batch at once with one line.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from tomoseg.errors import Cancelled, InvalidValue, TomosegError
from tomoseg.io.atomic import atomic_output
from tomoseg.io.model_file import load_model
from tomoseg.io.mrc import read_volume
from tomoseg.io.particle_formats import FORMATS
from tomoseg.io.particles import extension_of
from tomoseg.io.resumable import partial_paths
from tomoseg.allocator import keep_freed_memory
from tomoseg.nn.threads import available_cores
from tomoseg.progress import Progress, report, scaled
from tomoseg.steps.preprocess import PreprocessConfig
from tomoseg.steps.segment import check_tta
from tomoseg.workflows.maps import calibration_scale_of
from tomoseg.workflows.particles import PickMode, pick_file
from tomoseg.workflows.pipeline import (
    VOXEL_SIZE_TOLERANCE,
    apply_files,
    check_compatible,
    file_fingerprint,
    merge_files,
    preprocess_file,
    torch_threads,
)

Path_ = str | os.PathLike

CONNECT_TIMEOUT = "30s"
"""How long to wait for a Dask distributed scheduler to answer."""

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
        return self.tomogram.stem

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
    tomograms: Sequence[Path_], model_paths: Sequence[Path_], output: Path_, config: BatchConfig = BatchConfig()
) -> list[TomogramJob]:
    """Check every input and return one job per tomogram; nothing is written.

    Raises :class:`TomosegError` naming the file for a missing or unreadable input,
    outputs that would collide, a feature to pick that no model (or more than one) has,
    models trained on differently preprocessed tomograms (with ``preprocess``), a
    tomogram the models do not fit (without ``preprocess``, unless ``force``), or an
    output folder that cannot be written. Paths are made absolute (cluster workers
    have other working folders).
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
    _unique([p.stem for p in paths], "tomogram file names", "their output folders would collide")
    out = _absolute(output)
    _check_output_folder(out)
    base = _shared_preprocessing(models, model_paths) if config.preprocess else None
    jobs = []
    for path in paths:
        if not path.is_file():
            raise TomosegError(f"{path}: no such file")
        vol = read_volume(path, voxel_size=config.voxel_size, header_only=True)
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
        job = TomogramJob(path, out / path.stem, tuple(model_paths), pre, features)
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


def _start(job: TomogramJob, config: BatchConfig) -> None:
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


@contextlib.contextmanager
def _folder_lock(job: TomogramJob):
    """Hold ``.batch.lock`` in the tomogram's folder (an advisory ``flock``, released when the
    process ends, even if killed); a folder locked by another process is a TomosegError."""
    job.folder.mkdir(parents=True, exist_ok=True)
    path = job.folder / ".batch.lock"
    with open(path, "a") as fh:
        try:
            import fcntl

            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TomosegError(f"{job.folder}: another tomoseg batch is working on this tomogram (it holds "
                               f"{path.name}); let it finish or stop it, then run again") from None
        except (ImportError, OSError):
            pass  # no advisory locks here (Windows, some network file systems): go on unlocked
        yield


def run_tomogram(job: TomogramJob, config: BatchConfig = BatchConfig(), progress: Progress | None = None) -> dict:
    """Preprocess, apply, merge and pick one tomogram; returns its summary (also in ``summary.json``).

    Outputs of an earlier run from the same inputs and options are reused (an interrupted
    score map is resumed); others are removed first. The folder is locked meanwhile.
    """
    with _folder_lock(job):
        return _run_tomogram(job, config, progress)


def _run_tomogram(job: TomogramJob, config: BatchConfig, progress: Progress | None) -> dict:
    start = time.perf_counter()
    _start(job, config)
    if job.preprocessing is not None and not job.scored.exists():
        report(progress, 0, 100, "preprocessing")
        import torch  # its thread count is this tomogram's share of the cores (run_batch's threads)

        preprocess_file(job.tomogram, job.scored, job.preprocessing, voxel_size=config.voxel_size,
                        workers=torch.get_num_threads(), overwrite=True)
    scores = job.score_maps()
    todo = [i for i, s in enumerate(scores) if not s.exists()]
    if todo:
        apply_files([job.models[i] for i in todo], job.scored, job.folder, engine=config.engine,
                    check_models=False, device=config.device, resume=True, overwrite=True, tta=config.tta,
                    progress=scaled(progress, 10, 80, 100, "applying"), outputs=[scores[i] for i in todo])
    summary: dict = {"tomogram": str(job.tomogram), "scored": str(job.scored), "status": "done",
                     "score_maps": [str(s) for s in scores]}
    scales = None
    if config.calibrate:  # each map on its network's training scale (tomoseg.steps.calibrate)
        scales = [calibration_scale_of(s)[0] for s in scores]
        summary["calibration"] = {f: round(x, 4) for f, x in zip(job.features, scales)}
    if len(scores) > 1:
        if not job.labels().exists():
            report(progress, 90, 100, "merging")
            merge_files(scores, job.labels(), config.threshold, overwrite=True, scales=scales)
        summary["labels"] = str(job.labels())
    vol = read_volume(scores[0])
    summary.update(voxel_size=float(vol.voxel_size), shape=[int(n) for n in vol.data.shape])
    for feature, pick in config.picks:
        report(progress, 95, 100, f"picking {feature}")
        path = job.picks(feature, config.particle_format)
        k = job.features.index(feature)
        picks = pick_file(scores[k], path, pick, config.particle_format, name=job.stem, overwrite=True,
                          scale=None if scales is None else scales[k])
        summary.setdefault("picks", {})[feature] = {"file": str(path), "count": len(picks)}
    summary["seconds"] = round(time.perf_counter() - start, 2)
    with atomic_output(job.folder / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    report(progress, 100, 100, "done")
    return summary


# Ctrl-C in local worker processes: a tomogram being processed stops (its partial files are
# removed, a score map's journal is kept for resuming); an idle worker ignores it, as does a
# worker already stopping (the terminal and the batch's main process may both send one).
_busy = False
_stopping = False


def _on_sigint(signum, frame) -> None:
    global _stopping
    if _busy and not _stopping:
        _stopping = True
        raise KeyboardInterrupt


def _init_worker() -> None:
    signal.signal(signal.SIGINT, _on_sigint)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _run_safely(job: TomogramJob, config: BatchConfig, threads: int | None, progress: Progress | None = None) -> dict:
    """:func:`run_tomogram` with ``threads`` torch threads; a failure becomes a summary, not a lost batch.
    Cancelling (the progress callback raising :class:`Cancelled`) and Ctrl-C stop it."""
    global _busy
    _busy = True
    try:
        node = _dask_worker_threads()  # also restores malloc's thresholds on a Dask worker
        with torch_threads(threads or node):
            return run_tomogram(job, config, progress=progress)
    except Cancelled:
        raise
    except TomosegError as err:
        message = str(err)
    except OSError as err:
        message = f"{err.filename}: {err.strerror or err}" if err.filename else (err.strerror or str(err))
    except Exception as err:  # noqa: BLE001 - one tomogram's bug must not lose the others' results
        message = f"internal error: {type(err).__name__}: {err}"
    finally:
        _busy = False
    return _failed(job, message)


def _failed(job: TomogramJob, message: str) -> dict:
    message = message.splitlines()[0] if message else "failed"
    if str(job.tomogram) not in message:
        message = f"{job.tomogram}: {message}"
    return {"tomogram": str(job.tomogram), "status": "failed", "error": message}


def _dask_worker_threads() -> int | None:
    """On a Dask distributed worker: torch threads for a task, the node's cores shared among
    the worker's task threads; None elsewhere.

    A worker's nanny sets ``OMP_NUM_THREADS=1`` (torch on one core) and
    ``MALLOC_TRIM_THRESHOLD_``, which turns glibc's adaptive mmap threshold off: every
    array over 128 KiB is then mapped and unmapped again, and ``apply`` ran 2.4x slower
    (docs/benchmarks.md). Training and scoring set the thresholds themselves
    (:func:`tomoseg.allocator.keep_freed_memory`); it is called here too, for the rest of the task.
    """
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    keep_freed_memory()
    return max(1, available_cores() // max(1, worker.state.nthreads))


def _read_summary(job: TomogramJob) -> dict | None:
    try:
        summary = json.loads((job.folder / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) and "tomogram" in summary else None


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
    ``threads`` defaults to the cores of the node running each tomogram).
    """
    if workers < 1:
        raise InvalidValue(f"`workers` must be >= 1, got {workers}")
    if threads is not None and threads < 1:
        raise InvalidValue(f"`threads` must be >= 1, got {threads}")
    results: list[dict | None] = [None] * len(jobs)
    pending = []
    for i, job in enumerate(jobs):
        summary = _read_summary(job) if is_done(job, config) else None
        if summary is not None:
            results[i] = {**summary, "status": "skipped"}
        else:
            pending.append(i)
    total = 100 * len(jobs)
    finished = 100 * (len(jobs) - len(pending))
    report(progress, finished, total, f"{len(pending)} to do")
    workers = min(workers, len(pending))
    if scheduler is None and workers <= 1:  # in this process, with progress inside each tomogram
        for k, i in enumerate(pending):
            results[i] = _run_safely(jobs[i], config, threads, scaled(progress, finished + 100 * k, 100, total,
                                                                      jobs[i].stem))
        return results
    import dask

    if scheduler is None:  # share this machine's cores out; on a cluster each node's are used
        threads = threads or max(1, available_cores() // workers)
    count = [0]

    def done(job_index: int, summary: dict) -> None:
        results[job_index] = summary
        count[0] += 1
        report(progress, finished + 100 * count[0], total, f"{jobs[job_index].stem} {summary['status']}")

    def task(i: int):
        return dask.delayed(_run_safely, pure=False)(jobs[i], config, threads)

    if scheduler is not None:
        _on_cluster(task, pending, jobs, scheduler, done)
    else:
        while pending:  # again in a new pool after a worker died
            suspects, pending = _on_processes(task, pending, jobs, workers, done)
            for i in suspects:  # each alone, so that only the tomogram that kills its worker fails
                _on_processes(task, [i], jobs, 1, done)
    return results


STOP_GRACE_SECONDS = 30.0
"""How long workers get to stop a tomogram cleanly after Ctrl-C before they are terminated."""


@contextlib.contextmanager
def _sigint_blocked():
    """SIGINT held back in this thread (POSIX; elsewhere a no-op); delivered when the block ends."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _ready(_: int = 0) -> None:
    """A no-op task: starts a worker process."""


def _on_processes(task, pending: list[int], jobs, workers: int, done) -> tuple[list[int], list[int]]:
    """Local Dask processes (spawned, so torch starts clean in each; one tomogram per submission).

    If a worker dies (killed, e.g. for lack of memory), the pool breaks: returns the tomograms
    that were running, to retry each alone (a tomogram running alone is reported failed
    instead), and those not started yet; else ([], []). Ctrl-C stops the workers (after up to
    STOP_GRACE_SECONDS, or at a second Ctrl-C, they are terminated) and is raised again.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    import dask
    from dask.callbacks import Callback

    tasks = [task(i) for i in pending]
    keys = {t.key: i for t, i in zip(tasks, pending)}
    started: set[int] = set()
    reported: set[int] = set()

    class Reporter(Callback):
        def _pretask(self, key, dsk, state):  # noqa: D102
            if key in keys:
                started.add(keys[key])

        def _posttask(self, key, result, dsk, state, worker_id):  # noqa: D102
            if key in keys:
                reported.add(keys[key])
                done(keys[key], result)

    workers = min(workers, len(pending))
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker)
    try:
        # Start the workers with SIGINT blocked (they inherit the mask), so a Ctrl-C while they import
        # cannot kill them; each unblocks it once its handler is installed (_init_worker).
        with _sigint_blocked():
            list(pool.map(_ready, range(workers)))
        with Reporter():
            dask.compute(*tasks, scheduler="processes", pool=pool, chunksize=1)
    except BrokenProcessPool:
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:  # the pool terminates the others; a retry must not meet them at work
            process.join(10.0)
        if not started:  # the workers die before any tomogram starts: retrying would loop
            for i in pending:
                done(i, _failed(jobs[i], "the worker processes died on start"))
            return [], []
        running = [i for i in pending if i in started and i not in reported]
        if len(running) == 1:  # it alone was running: its worker died on it
            done(running[0], _failed(jobs[running[0]], "its worker process died (killed, e.g. for lack of "
                                                       "memory?); run the batch again to retry"))
            running = []
        return running, [i for i in pending if i not in started]
    except KeyboardInterrupt:
        processes = [p for p in (getattr(pool, "_processes", None) or {}).values() if p.is_alive()]
        for process in processes:  # stop the tomograms being processed (the workers ignore a second one)
            os.kill(process.pid, signal.SIGINT)
        pool.shutdown(wait=False, cancel_futures=True)
        try:
            deadline = time.monotonic() + STOP_GRACE_SECONDS
            for process in processes:
                process.join(max(0.0, deadline - time.monotonic()))
        except KeyboardInterrupt:  # a second Ctrl-C: stop now
            pass
        for process in processes:
            if process.is_alive():
                process.terminate()
        raise
    pool.shutdown(wait=True)
    return [], []


def _on_cluster(task, pending: list[int], jobs, address: str, done) -> None:
    """A Dask distributed scheduler at ``address``."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise TomosegError("`scheduler` needs the 'distributed' package: pip install 'tomoseg[cluster]'") from None
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as err:
        raise TomosegError(f"cannot reach the Dask scheduler at {address} ({err})") from None
    with client:
        futures = client.compute([task(i) for i in pending])
        index = {f.key: i for f, i in zip(futures, pending)}
        for future in as_completed(futures):
            i = index[future.key]
            try:
                summary = future.result()
            except BaseException as err:  # noqa: BLE001 - KilledWorker, CancelledError (a BaseException)
                if isinstance(err, KeyboardInterrupt):
                    raise
                summary = _failed(jobs[i], f"{type(err).__name__}: {err}")
            done(i, summary)


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
