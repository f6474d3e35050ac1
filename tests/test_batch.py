"""tomoseg batch: many tomograms, preprocessed like the models' training data, on Dask."""

from __future__ import annotations

import copy
import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest

from tomoseg.cli.main import main
from tomoseg.errors import Cancelled, TomosegError
from tomoseg.io.model_file import save_model
from tomoseg.io.mrc import read_volume, write_volume
from tomoseg.io.particles import read_particles
from tomoseg.nn.model import Model
from tomoseg.steps.preprocess import PreprocessConfig
from tomoseg.workflows.batch import BatchConfig, plan_batch, run_batch, runner
from tomoseg.workflows.pipeline import apply_file


@pytest.fixture(scope="module")
def batch_dir(tmp_path_factory, small_tomo, small_pre, particle_model):
    """Two models (particle, and a copy named 'copy') and two raw tomograms: ``a`` at 10 A and ``b``,
    the same volume at 5 A (every voxel repeated twice per axis), which binning by 2 brings back."""
    d = tmp_path_factory.mktemp("batch")
    pre = PreprocessConfig()
    for name in ("particle", "copy"):
        save_model(d / f"{name}.model", Model(net=copy.deepcopy(particle_model.net), amplitude=particle_model.amplitude,
                                              name=name, voxel_size=10.0, preprocessing=pre.to_dict(),
                                              level=particle_model.level))
    write_volume(d / "a.mrc", small_tomo.volume, 10.0, origin=(100.0, 0.0, 0.0))
    fine = small_tomo.volume.repeat(2, 0).repeat(2, 1).repeat(2, 2)
    write_volume(d / "b.mrc", fine, 5.0, origin=(100.0, 0.0, 0.0))
    write_volume(d / "a_pre.mrc", small_pre, 10.0, labels=(f"tomoseg preprocess: {pre.describe()}",))
    return d


def _run(d, out, *extra):
    return main(["batch", str(d / "a.mrc"), str(d / "b.mrc"), "-m", str(d / "particle.model"),
                 str(d / "copy.model"), "-o", str(out), "--preprocess", "-q", *extra])


def test_batch_preprocesses_applies_merges_and_picks(batch_dir, tmp_path):
    d, out = batch_dir, tmp_path / "out"
    assert _run(d, out, "--pick", "particle", "--diameter", "220") == 0
    a_pre, b_pre = read_volume(out / "a" / "a_pre.mrc"), read_volume(out / "b" / "b_pre.mrc")
    assert a_pre.voxel_size == pytest.approx(10.0) and b_pre.voxel_size == pytest.approx(10.0)
    assert b_pre.data.shape == a_pre.data.shape == (32, 128, 128)
    assert b_pre.origin == (102.5, 2.5, 2.5)  # binned voxel 0 lies half a raw voxel in
    np.testing.assert_allclose(np.asarray(b_pre.data), np.asarray(a_pre.data), atol=1e-4)
    # the same scores as applying the model by hand to the same preprocessing
    apply_file(d / "particle.model", d / "a_pre.mrc", tmp_path / "by_hand.mrc")
    by_hand = np.asarray(read_volume(tmp_path / "by_hand.mrc").data)
    a_scores = read_volume(out / "a" / "a_particle.mrc")
    np.testing.assert_allclose(np.asarray(a_scores.data), by_hand, atol=1e-4)
    assert a_scores.origin == (100.0, 0.0, 0.0) and a_scores.label_value("feature") == "particle"
    labels = np.asarray(read_volume(out / "a" / "a_labels.mrc").data)
    assert set(np.unique(labels)) <= {0, 1, 2} and (labels == 1).sum() == (by_hand >= 1).sum()  # ties: the first
    picks_a, meta = read_particles(out / "a" / "a_particle.star")
    picks_b, _ = read_particles(out / "b" / "b_particle.star")
    assert len(picks_a) > 3 and len(picks_a) == len(picks_b)
    table = pd.read_csv(out / "batch.csv")
    assert list(table["status"]) == ["done", "done"] and list(table["picks_particle"]) == [len(picks_a)] * 2
    summary = json.loads((out / "a" / "summary.json").read_text())
    assert summary["voxel_size"] == 10.0 and summary["picks"]["particle"]["count"] == len(picks_a)


def test_batch_skips_finished_tomograms_and_goes_on_after_a_failure(batch_dir, tmp_path, monkeypatch, capsys):
    d, out = batch_dir, tmp_path / "out"
    real = runner.run_tomogram

    def failing_b(job, *args, **kwargs):
        if job.stem == "b":
            raise TomosegError(f"{job.tomogram}: something went wrong")
        return real(job, *args, **kwargs)

    monkeypatch.setattr(runner, "run_tomogram", failing_b)
    assert _run(d, out) == 2
    err = capsys.readouterr().err
    assert f"tomoseg: error: {d / 'b.mrc'}: something went wrong\n" in err
    assert err.count("b.mrc") == 1 and "Traceback" not in err
    assert (out / "a" / "summary.json").exists() and not (out / "b" / "summary.json").exists()
    assert list(pd.read_csv(out / "batch.csv")["status"]) == ["done", "failed"]
    monkeypatch.setattr(runner, "run_tomogram", real)
    first = (out / "a" / "a_particle.mrc").stat().st_mtime_ns
    assert _run(d, out) == 0
    assert list(pd.read_csv(out / "batch.csv")["status"]) == ["skipped", "done"]
    assert (out / "a" / "a_particle.mrc").stat().st_mtime_ns == first  # not redone


def test_batch_checks_every_input_before_any_work(batch_dir, tmp_path, capsys):
    d, out = batch_dir, tmp_path / "out"
    # raw 5 A tomogram without --preprocess: the models want 10 A
    code = main(["batch", str(d / "a_pre.mrc"), str(d / "b.mrc"), "-m", str(d / "particle.model"), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "b.mrc: voxel size 5 A differs" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    with pytest.raises(TomosegError, match="no model is for the feature 'ribosome'"):
        plan_batch([d / "a.mrc"], [d / "particle.model"], out,
                   BatchConfig(preprocess=True, picks=(("ribosome", None),)))
    with pytest.raises(TomosegError, match="missing.mrc: no such file"):
        plan_batch([d / "missing.mrc"], [d / "particle.model"], out, BatchConfig(preprocess=True))
    with pytest.raises(TomosegError, match="two tomogram file names are 'a'"):
        plan_batch([d / "a.mrc", tmp_path / "a.mrc"], [d / "particle.model"], out, BatchConfig(preprocess=True))


def _scores(out, stem):
    return np.asarray(read_volume(out / stem / f"{stem}_particle.mrc").data)


def test_batch_on_local_processes_gives_the_same_maps(batch_dir, tmp_path):
    d = batch_dir
    config = BatchConfig(preprocess=True)
    one = plan_batch([d / "a.mrc", d / "b.mrc"], [d / "particle.model"], tmp_path / "one", config)
    two = plan_batch([d / "a.mrc", d / "b.mrc"], [d / "particle.model"], tmp_path / "two", config)
    seen = []
    assert [r["status"] for r in run_batch(one, config)] == ["done", "done"]
    results = run_batch(two, config, workers=2, progress=lambda done, total, msg="": seen.append(done))
    assert [r["status"] for r in results] == ["done", "done"] and seen[-1] == 200
    for stem in ("a", "b"):
        np.testing.assert_allclose(_scores(tmp_path / "two", stem), _scores(tmp_path / "one", stem), atol=1e-5)


def test_batch_on_a_distributed_cluster(batch_dir, tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    d = batch_dir
    config = BatchConfig(preprocess=True)
    jobs = plan_batch([d / "a.mrc"], [d / "particle.model"], tmp_path / "out", config)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cl:
        results = run_batch(jobs, config, scheduler=cl.scheduler_address)
    assert results[0]["status"] == "done"
    run_batch(plan_batch([d / "a.mrc"], [d / "particle.model"], tmp_path / "here", config), config)
    np.testing.assert_allclose(_scores(tmp_path / "out", "a"), _scores(tmp_path / "here", "a"), atol=1e-5)
    monkeypatch.setattr(runner, "CONNECT_TIMEOUT", "2s")
    with pytest.raises(TomosegError, match="cannot reach the Dask scheduler"):
        run_batch(plan_batch([d / "a.mrc"], [d / "particle.model"], tmp_path / "x", config), config,
                  scheduler="tcp://127.0.0.1:1")


def test_batch_redoes_only_what_changed(batch_dir, tmp_path):
    d, out = batch_dir, tmp_path / "out"
    assert _run(d, out) == 0
    maps = out / "a" / "a_particle.mrc"
    first = maps.stat().st_mtime_ns
    # new picking options: score maps reused, picks made
    assert _run(d, out, "--pick", "particle", "--format", "csv") == 0
    assert maps.stat().st_mtime_ns == first and (out / "a" / "a_particle.csv").exists()
    assert list(pd.read_csv(out / "batch.csv")["status"]) == ["done", "done"]
    # the same again: nothing to do
    assert _run(d, out, "--pick", "particle", "--format", "csv") == 0
    assert list(pd.read_csv(out / "batch.csv")["status"]) == ["skipped", "skipped"]
    # fewer picks: the old particle list goes; a changed model: its maps are made again
    os.utime(d / "copy.model")
    assert _run(d, out) == 0
    assert not (out / "a" / "a_particle.csv").exists() and maps.stat().st_mtime_ns != first


def test_a_cancel_stops_the_batch(batch_dir, tmp_path):
    d = batch_dir
    config = BatchConfig(preprocess=True)
    jobs = plan_batch([d / "a.mrc", d / "b.mrc"], [d / "particle.model"], tmp_path / "out", config)

    def cancel(done, total, message=""):
        if "applying" in message:
            raise Cancelled()

    with pytest.raises(Cancelled):
        run_batch(jobs, config, progress=cancel)
    assert not (tmp_path / "out" / "a" / "summary.json").exists() and not (tmp_path / "out" / "b").exists()


def test_batch_refuses_outputs_that_would_collide(batch_dir, tmp_path):
    d = batch_dir
    shutil.copy(d / "particle.model", tmp_path / "labels.model")
    with pytest.raises(TomosegError, match="may not be called 'labels'"):
        plan_batch([d / "a.mrc"], [d / "particle.model", tmp_path / "labels.model"], tmp_path / "out",
                   BatchConfig(preprocess=True))
    shutil.copy(d / "particle.model", tmp_path / "again.model")  # a second model for the feature 'particle'
    with pytest.raises(TomosegError, match="more than one model is for the feature 'particle'"):
        plan_batch([d / "a.mrc"], [d / "particle.model", tmp_path / "again.model"], tmp_path / "out",
                   BatchConfig(preprocess=True, picks=(("particle", None),)))


def test_batch_touches_only_its_own_recorded_outputs(batch_dir, tmp_path):
    d, out = batch_dir, tmp_path / "out"
    # a file batch did not make, where its output would go: refused, not reused or deleted
    (out / "a").mkdir(parents=True)
    write_volume(out / "a" / "a_particle.mrc", np.full((2, 4, 4), 7.0, np.float32), 10.0)
    with pytest.raises(TomosegError, match="a_particle.mrc, which no batch recorded"):
        plan_batch([d / "a.mrc"], [d / "particle.model"], out, BatchConfig(preprocess=True))
    shutil.rmtree(out)
    assert _run(d, out) == 0
    # a copy of the output folder re-run with a changed model leaves the original alone
    shutil.copytree(out, tmp_path / "copy")
    original = (out / "a" / "a_copy.mrc").stat().st_mtime_ns
    os.utime(d / "copy.model")
    assert _run(d, tmp_path / "copy") == 0
    assert (out / "a" / "a_copy.mrc").stat().st_mtime_ns == original
    # a recorded output deleted by hand: the tomogram is done again
    (tmp_path / "copy" / "b" / "b_labels.mrc").unlink()
    assert _run(d, tmp_path / "copy") == 0
    assert list(pd.read_csv(tmp_path / "copy" / "batch.csv")["status"]) == ["skipped", "done"]
    assert (tmp_path / "copy" / "b" / "b_labels.mrc").exists()


def test_a_folder_in_use_by_another_batch_is_not_touched(batch_dir, tmp_path, capsys):
    import fcntl

    d, out = batch_dir, tmp_path / "out"
    (out / "b").mkdir(parents=True)
    with open(out / "b" / ".batch.lock", "a") as held:  # another batch (e.g. a cluster task still running)
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert _run(d, out) == 2
        assert f"{out / 'b'}: another tomoseg batch is working on this tomogram" in capsys.readouterr().err
        assert sorted(p.name for p in (out / "b").iterdir()) == [".batch.lock"]  # nothing written there
        assert list(pd.read_csv(out / "batch.csv")["status"]) == ["done", "failed"]
    assert _run(d, out) == 0  # released: the run goes on where it stopped
    assert list(pd.read_csv(out / "batch.csv")["status"]) == ["skipped", "done"]


def _dies_on_b(job, config, threads):
    """A batch task whose worker process dies on tomogram ``b`` (as if killed for lack of memory)."""
    import os
    import time

    if job.stem == "b":
        time.sleep(0.5)
        os._exit(9)
    time.sleep(2.0)
    return {"tomogram": str(job.tomogram), "status": "done"}


@pytest.mark.slow
def test_a_worker_that_dies_fails_only_its_own_tomogram(batch_dir, tmp_path):
    import dask

    d = batch_dir
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.mrc").symlink_to(d / "a_pre.mrc")
    jobs = plan_batch([tmp_path / f"{n}.mrc" for n in "abc"], [d / "particle.model"], tmp_path / "out")
    results: dict[int, dict] = {}

    def task(i):
        return dask.delayed(_dies_on_b, pure=False)(jobs[i], BatchConfig(), 1)

    suspects, rest = runner._on_processes(task, [0, 1, 2], jobs, 2, results.__setitem__)
    # Dask picks which two tomograms start first. If b was one of them, b and the other were running
    # when the pool broke (either could be it); if a and c ran first, b died alone and is reported at once.
    if suspects:
        assert len(suspects) == 2 and 1 in suspects and sorted(suspects + rest) == [0, 1, 2] and results == {}
    else:
        assert rest == [] and sorted(results) == [0, 1, 2]
    for i in suspects + rest:  # as run_batch does: each suspect alone (a second death is its own)
        assert runner._on_processes(task, [i], jobs, 1, results.__setitem__) == ([], [])
    assert [results[i]["status"] for i in range(3)] == ["done", "failed", "done"]
    assert "b.mrc: its worker process died" in results[1]["error"]


def test_batch_force_warns_once_per_mismatch_and_overwrite_starts_over(batch_dir, tmp_path, capsys):
    d, out = batch_dir, tmp_path / "out"
    args = ["batch", str(d / "b.mrc"), "-m", str(d / "particle.model"), "-o", str(out), "-q"]
    assert main(args) == 2  # b is at 5 A, the model at 10 A, and no --preprocess
    assert "--force" in capsys.readouterr().err
    assert main(args + ["--force"]) == 0
    warned = [l for l in capsys.readouterr().err.splitlines() if "--force" in l]
    assert len(warned) == 1 and "voxel size 5 A" in warned[0] and "0.5x" in warned[0], warned
    score_map = out / "b" / "b_particle.mrc"
    first = score_map.stat().st_mtime_ns
    assert main(args + ["--force"]) == 0 and score_map.stat().st_mtime_ns == first  # done: skipped
    assert main(args + ["--force", "--overwrite"]) == 0 and score_map.stat().st_mtime_ns != first  # redone
    assert list(pd.read_csv(out / "batch.csv")["status"]) == ["done"]


@pytest.mark.slow
def test_batch_calibrate_merges_and_picks_on_the_calibrated_scale(batch_dir, tmp_path):
    from tomoseg.workflows.maps import calibration_scale_of
    from tomoseg.workflows.pipeline import merge_files

    d, out = batch_dir, tmp_path / "out"
    assert _run(d, out, "--pick", "particle", "--calibrate") == 0
    summary = json.loads((out / "a" / "summary.json").read_text())
    maps = [out / "a" / "a_particle.mrc", out / "a" / "a_copy.mrc"]
    scales = [calibration_scale_of(m)[0] for m in maps]
    assert summary["calibration"] == {"particle": round(scales[0], 4), "copy": round(scales[1], 4)}
    merge_files(maps, tmp_path / "by_hand.mrc", scales=scales)
    np.testing.assert_array_equal(np.asarray(read_volume(out / "a" / "a_labels.mrc").data),
                                  np.asarray(read_volume(tmp_path / "by_hand.mrc").data))
