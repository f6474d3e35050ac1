"""One tomogram of a batch, start to end, in its own locked folder: preprocess, apply, merge, pick,
``summary.json`` last."""

from __future__ import annotations

import contextlib
import json
import time

from tomoseg.errors import TomosegError
from tomoseg.io.atomic import atomic_output
from tomoseg.io.mrc import read_volume
from tomoseg.progress import Progress, report, scaled
from tomoseg.workflows.batch.plan import BatchConfig, TomogramJob, prepare_folder
from tomoseg.workflows.maps import calibration_scale_of
from tomoseg.workflows.particles import pick_file
from tomoseg.workflows.pipeline import apply_files, merge_files, preprocess_file


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
    prepare_folder(job, config)
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

