"""The command line, through its real entry points."""

import subprocess
import sys
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from tomoseg.cli.main import main
from tomoseg.io.boxes import write_boxes
from tomoseg.io.mrc import read_volume, write_volume
from tomoseg.io.particles import read_picks
from tomoseg.steps.trainset import choose_boxes


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """Run the installed ``tomoseg`` console script (falls back to ``python -m tomoseg``)."""
    exe = Path(sys.executable).with_name("tomoseg")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "tomoseg"]
    return subprocess.run(cmd + list(map(str, args)), capture_output=True, text=True, timeout=600)


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = [l for l in result.stderr.strip().splitlines() if not l.startswith("tomoseg: warning")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tomoseg: error: ") and "Traceback" not in result.stderr
    for f in fragments:
        assert f in lines[0]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, small_tomo):
    d = tmp_path_factory.mktemp("cli")
    write_volume(d / "raw.mrc", small_tomo.volume, 10.0, origin=(5.0, 6.0, 7.0))
    write_volume(d / "labels.mrc", small_tomo.labels.astype(np.int8), 10.0)
    write_boxes(d / "boxes.csv", choose_boxes(small_tomo.labels, 3, 8, 40, seed=1))
    return d


def test_every_command_has_help():
    for cmd in ["preprocess", "trainset", "train", "apply", "merge", "pick", "demo"]:
        with pytest.raises(SystemExit) as exc:
            main([cmd, "--help"])
        assert exc.value.code == 0


def test_pipeline_through_the_console_script(workdir, small_tomo):
    d = workdir
    r = run_cli("preprocess", d / "raw.mrc", "-o", d / "pre.mrc")
    assert r.returncode == 0, r.stderr
    pre = read_volume(d / "pre.mrc")
    assert pre.voxel_size == pytest.approx(10.0) and pre.origin == (5.0, 6.0, 7.0)
    assert pre.label_value("preprocess") == "lowpass=20 highpass=4000 bin=1 invert=false clamp=3"

    r = run_cli("trainset", d / "pre.mrc", "--boxes", d / "boxes.csv", "--labels", d / "labels.mrc",
                "--value", 3, "--name", "particle", "-o", d / "particle.set")
    assert r.returncode == 0, r.stderr
    r = run_cli("train", d / "particle.set", "-o", d / "particle.model", "--epochs", 8, "--copies", 3, "--seed", 1)
    assert r.returncode == 0, r.stderr
    assert "feature 'particle'" in r.stdout
    r = run_cli("apply", d / "particle.model", d / "pre.mrc", "-o", d / "scores.mrc")
    assert r.returncode == 0, r.stderr
    scores = read_volume(d / "scores.mrc")
    assert scores.data.shape == small_tomo.volume.shape and scores.data.dtype == np.float32
    assert scores.voxel_size == pytest.approx(10.0) and scores.origin == (5.0, 6.0, 7.0)
    on = np.median(scores.data[small_tomo.labels == 3])
    assert 0.5 < on < 2.0  # amplitude-normalised: on-feature voxels score about 1
    assert np.median(scores.data[small_tomo.labels == 0]) < 0.3

    r = run_cli("merge", d / "scores.mrc", d / "scores.mrc", "-o", d / "merged.mrc", "--threshold", 0.8)
    assert r.returncode == 0, r.stderr
    merged = read_volume(d / "merged.mrc")
    assert set(np.unique(merged.data)) <= {0, 1}
    assert merged.label_value("label 1") == "particle"

    r = run_cli("pick", d / "scores.mrc", "-o", d / "picks.star", "--diameter", 220)
    assert r.returncode == 0, r.stderr
    picks = read_picks(d / "picks.star")
    truth = small_tomo.particles
    dist = np.linalg.norm(picks[["x", "y", "z"]].to_numpy()[:, None] - truth[None], axis=-1)
    assert (dist.min(axis=0) <= 6).mean() >= 0.6  # most planted particles found
    assert (dist.min(axis=1) <= 6).mean() >= 0.6  # most picks are real


def test_apply_refuses_another_voxel_size_unless_forced(workdir, tmp_path):
    d = workdir
    if not (d / "particle.model").exists():
        pytest.skip("needs the pipeline test's model")
    vol = read_volume(d / "pre.mrc", mmap=False)
    write_volume(tmp_path / "other.mrc", vol.data[:4], 14.0, labels=vol.labels)
    r = run_cli("apply", d / "particle.model", tmp_path / "other.mrc", "-o", tmp_path / "s.mrc")
    assert_one_line_error(r, "voxel size 14 A differs", "--resample 10", "--force")
    assert not (tmp_path / "s.mrc").exists()
    # the remedy the message names: preprocess the raw data again, resampled to the model's voxel size
    write_volume(tmp_path / "raw14.mrc", read_volume(d / "raw.mrc", mmap=False).data[:8], 14.0)
    r = run_cli("preprocess", tmp_path / "raw14.mrc", "-o", tmp_path / "pre14.mrc", "--resample", 10)
    assert r.returncode == 0, r.stderr
    pre14 = read_volume(tmp_path / "pre14.mrc")
    assert pre14.voxel_size == pytest.approx(10.0) and pre14.label_value("resample") == "10"
    assert pre14.data.shape[0] == int(7 * 1.4) + 1
    r = run_cli("apply", d / "particle.model", tmp_path / "pre14.mrc", "-o", tmp_path / "s14.mrc")
    assert r.returncode == 0, r.stderr
    assert read_volume(tmp_path / "s14.mrc").data.shape == pre14.data.shape
    assert main(["apply", str(d / "particle.model"), str(tmp_path / "other.mrc"), "-o",
                 str(tmp_path / "s.mrc"), "--force", "-q"]) == 0
    # a header without a voxel size: one error naming the option, then the option's size reaches the output
    write_volume(tmp_path / "novox.mrc", vol.data[:4], 10.0, origin=(1.0, 2.0, 3.0), labels=vol.labels)
    with mrcfile.open(tmp_path / "novox.mrc", mode="r+") as m:
        m.voxel_size = 0.0
    r = run_cli("apply", d / "particle.model", tmp_path / "novox.mrc", "-o", tmp_path / "sv.mrc")
    assert_one_line_error(r, "novox.mrc", "no voxel size", "--voxel-size")
    assert main(["apply", str(d / "particle.model"), str(tmp_path / "novox.mrc"), "-o",
                 str(tmp_path / "sv.mrc"), "--voxel-size", "10", "-q"]) == 0
    out = read_volume(tmp_path / "sv.mrc")
    assert out.voxel_size == pytest.approx(10.0) and out.origin == (1.0, 2.0, 3.0)
    # another preprocessing is refused too
    write_volume(tmp_path / "pre2.mrc", vol.data[:4], 10.0,
                 labels=("tomoseg preprocess: lowpass=40 highpass=4000 bin=1 invert=false clamp=3",))
    r = run_cli("apply", d / "particle.model", tmp_path / "pre2.mrc", "-o", tmp_path / "s2.mrc")
    assert_one_line_error(r, "lowpass=40", "expects")
    # inverting depends on the source's contrast convention: a warning, not a refusal
    write_volume(tmp_path / "pre3.mrc", vol.data[:4], 10.0,
                 labels=("tomoseg preprocess: lowpass=20 highpass=4000 bin=1 invert=true clamp=3",))
    r = run_cli("apply", d / "particle.model", tmp_path / "pre3.mrc", "-o", tmp_path / "s3.mrc")
    assert r.returncode == 0 and "warning" in r.stderr and "invert=true" in r.stderr, r.stderr


def test_bad_inputs_give_one_line_and_write_nothing(workdir, tmp_path):
    d = workdir
    (tmp_path / "junk.mrc").write_bytes(b"not an mrc file at all" * 100)
    out = tmp_path / "out.mrc"
    assert_one_line_error(run_cli("preprocess", tmp_path / "junk.mrc", "-o", out), "junk.mrc")
    raw = (d / "raw.mrc").read_bytes()
    (tmp_path / "trunc.mrc").write_bytes(raw[: len(raw) // 2])
    assert_one_line_error(run_cli("preprocess", tmp_path / "trunc.mrc", "-o", out), "truncated")
    nan = np.zeros((4, 16, 16), np.float32)
    nan[2, 3, 3] = np.nan
    write_volume(tmp_path / "nan.mrc", nan, 10.0)
    assert_one_line_error(run_cli("preprocess", tmp_path / "nan.mrc", "-o", out), "NaN")
    with mrcfile.new(tmp_path / "flat.mrc") as m:
        m.set_data(np.zeros((16, 16), np.float32))
        m.voxel_size = 10.0
    assert_one_line_error(run_cli("preprocess", tmp_path / "flat.mrc", "-o", out), "3D tomogram")
    assert_one_line_error(run_cli("preprocess", d / "raw.mrc", "-o", tmp_path / "nodir" / "x.mrc"), "does not exist")
    assert_one_line_error(run_cli("preprocess", d / "raw.mrc", "-o", d / "raw.mrc"), "overwrite an input")
    assert not out.exists()

    (tmp_path / "empty.csv").write_text("x,y,z,kind\n")
    r = run_cli("trainset", d / "raw.mrc", "--boxes", tmp_path / "empty.csv", "--labels", d / "labels.mrc",
                "--value", 3, "-o", tmp_path / "s.set")
    assert_one_line_error(r, "empty.csv", "empty")
    (tmp_path / "neg.csv").write_text("x,y,z,kind\n64,64,5,negative\n")
    r = run_cli("trainset", d / "raw.mrc", "--boxes", tmp_path / "neg.csv", "--labels", d / "labels.mrc",
                "--value", 3, "-o", tmp_path / "s.set")
    assert_one_line_error(r, "no positive box")
    (tmp_path / "out.csv").write_text("x,y,z,kind\n64,64,5,negative\n10,64,5,positive\n")
    r = run_cli("trainset", d / "raw.mrc", "--boxes", tmp_path / "out.csv", "--labels", d / "labels.mrc",
                "--value", 3, "-o", tmp_path / "s.set")
    assert_one_line_error(r, "box 2", "sticks out")
    assert not (tmp_path / "s.set").exists()
    assert_one_line_error(run_cli("apply", d / "boxes.csv", d / "raw.mrc", "-o", out), "boxes.csv")
    assert list(tmp_path.glob(".*part")) == []
