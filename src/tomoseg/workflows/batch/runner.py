"""Running a batch's tomograms: in this process, in local worker processes, or on a Dask cluster.

A failed tomogram becomes a summary (``status`` "failed" with the error), never a lost batch. Local
workers are ``spawn``ed processes of a ``concurrent.futures.ProcessPoolExecutor`` that Dask drives;
if one dies (killed for memory), the tomograms that ran beside it are retried one at a time, so
only its own fails. Ctrl-C stops the tomograms being processed cleanly (a score map's journal is
kept for resuming) and is raised again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path

from tomoseg.allocator import keep_freed_memory
from tomoseg.errors import Cancelled, InvalidValue, TomosegError
from tomoseg.io.atomic import atomic_output
from tomoseg.nn.threads import available_cores
from tomoseg.progress import Progress, report, scaled
from tomoseg.types import Path_
from tomoseg.workflows.batch.plan import BatchConfig, TomogramJob, is_done, read_summary
from tomoseg.workflows.batch.tomogram import run_tomogram
from tomoseg.workflows.pipeline import torch_threads

CONNECT_TIMEOUT = "30s"
"""How long to wait for a Dask distributed scheduler to answer."""

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
        summary = read_summary(job) if is_done(job, config) else None
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
    others = set(multiprocessing.active_children())
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker)

    def pool_processes() -> list:
        """The pool's worker processes: this process's children that it made (public API only)."""
        return [p for p in multiprocessing.active_children() if p not in others]

    try:
        # Start the workers with SIGINT blocked (they inherit the mask), so a Ctrl-C while they import
        # cannot kill them; each unblocks it once its handler is installed (_init_worker).
        with _sigint_blocked():
            list(pool.map(_ready, range(workers)))
        with Reporter():
            dask.compute(*tasks, scheduler="processes", pool=pool, chunksize=1)
    except BrokenProcessPool:
        processes = pool_processes()
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
        processes = [p for p in pool_processes() if p.is_alive()]
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
