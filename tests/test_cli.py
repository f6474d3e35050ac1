"""The command line, through its real entry points."""

import argparse
import subprocess
import sys
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from tomoseg.cli.main import build_parser, main
from tomoseg.io.boxes import write_boxes
from tomoseg.io.mrc import read_volume, write_volume
from tomoseg.io.particles import read_particles
from tomoseg.steps.recipes import RECIPES
from tomoseg.steps.trainset import choose_boxes
from tomoseg.workflows.particles import tomogram_info


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


@pytest.mark.slow
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
    picks, _ = read_particles(d / "picks.star", info=tomogram_info(d / "scores.mrc"))
    truth = small_tomo.particles
    dist = np.linalg.norm(picks.xyz[:, None] - truth[None], axis=-1)
    assert (dist.min(axis=0) <= 6).mean() >= 0.6  # most planted particles found
    assert (dist.min(axis=1) <= 6).mean() >= 0.6  # most picks are real


@pytest.mark.slow
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


@pytest.mark.slow
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


# --- One behaviour for every command (issue 16) -------------------------------------------------------------

OUTPUT_COMMANDS = {
    # command: (arguments before -o, output kind); inputs need not exist: the output is checked first
    "preprocess": (["raw.mrc"], "file"),
    "trainset": (["pre.mrc", "--boxes", "b.csv", "--masks", "m.mrc"], "file"),
    "train": (["x.set"], "file"),
    "apply": (["x.model", "pre.mrc"], "file"),
    "merge": (["a.mrc", "b.mrc"], "file"),
    "consensus": (["a.mrc", "b.mrc"], "file"),
    "pick": (["scores.mrc"], "file"),
    "export": (["p.csv"], "file"),
    "extract": (["pre.mrc", "p.csv"], "folder"),
    "demo": ([], "folder"),
}


@pytest.mark.parametrize("command", sorted(OUTPUT_COMMANDS))
def test_every_command_refuses_to_replace_an_output_unless_overwrite(command, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args, kind = OUTPUT_COMMANDS[command]
    out = tmp_path / ("out" if kind == "folder" else "out.csv" if command in ("pick", "export") else "out.mrc")
    if kind == "folder":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    else:
        out.write_text("mine")
    assert main([command, *args, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"tomoseg: error: {out}") and "--overwrite" in err[0], err
    assert (out / "keep.txt" if kind == "folder" else out).read_text() == "mine"
    if command == "demo":
        return  # with --overwrite the demo would run (tests/test_demo.py)
    # --overwrite gets past the check: the error is now about the missing input
    assert main([command, *args, "-o", str(out), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "no such file" in err and "--overwrite" not in err, err


def test_force_means_only_accept_a_mismatch(capsys):
    for command in ("extract", "classify2d", "average", "pick", "merge", "preprocess"):
        with pytest.raises(SystemExit) as exc:
            build_parser().parse_args([command, "a", "b", "-o", "x", "--force"])
        assert exc.value.code == 2
    capsys.readouterr()
    for command in ("apply", "batch"):
        help_text = _help(command)
        assert "--force" in help_text and "mismatch" in help_text and "--overwrite" in help_text


def _help(command: str) -> str:
    return build_parser()._subparsers._group_actions[0].choices[command].format_help()


def test_every_command_help_states_its_defaults_and_ends_with_examples():
    sub = build_parser()._subparsers._group_actions[0]
    for name, parser in sub.choices.items():
        text = parser.format_help()
        assert f"examples:\n  tomoseg {name}" in text, name
        for action in parser._actions:
            if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
                assert "default" in (action.help or ""), (name, action.option_strings)
    train = " ".join(_help("train").split())
    for name, r in RECIPES.items():
        assert f"{name} (" in train and f"{r.epochs} epochs, batch {r.batch_size}" in train
    usage = _help("apply").splitlines()[0]
    assert usage == "usage: tomoseg apply [options] MODEL [MODEL ...] TOMOGRAM -o OUTPUT"


def test_apply_names_model_file_problems_in_its_own_words(apply_inputs, tmp_path):
    d = apply_inputs
    (tmp_path / "junk.model").write_bytes(b"\xff" * 64)
    r = run_cli("apply", tmp_path / "junk.model", d / "pre.mrc", "-o", tmp_path / "s.mrc")
    assert_one_line_error(r, "junk.model: not a tomoseg model file")
    assert "deserializing" not in r.stderr and "header" not in r.stderr
    r = run_cli("apply", d / "pre.mrc", d / "particle.model", "-o", tmp_path / "s.mrc")  # swapped
    assert_one_line_error(r, "pre.mrc: not a tomoseg model file", "give the models first")
    assert not (tmp_path / "s.mrc").exists()


def test_an_interrupted_apply_says_that_resume_continues(monkeypatch, capsys, tmp_path):
    import tomoseg.workflows as workflows

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(workflows, "apply_files", interrupted)
    assert main(["apply", "m.model", "t.mrc", "-o", str(tmp_path / "s.mrc"), "-q"]) == 130
    err = capsys.readouterr().err
    assert "--resume" in err and "no output was written" not in err


@pytest.fixture(scope="module")
def apply_inputs(tmp_path_factory, small_pre, particle_model):
    """A preprocessed tomogram (pre.mrc, 10 A) and the particle model (particle.model)."""
    from tomoseg.io.model_file import save_model
    from tomoseg.io.mrc import header_label
    from tomoseg.nn.model import Model
    from tomoseg.steps.preprocess import PreprocessConfig

    d = tmp_path_factory.mktemp("apply_inputs")
    pre = PreprocessConfig()
    write_volume(d / "pre.mrc", small_pre[:12], 10.0, origin=(1.0, 2.0, 3.0),
                 labels=(header_label("preprocess", pre.describe()),))
    save_model(d / "particle.model", Model(net=particle_model.net, amplitude=particle_model.amplitude,
                                           name="particle", voxel_size=10.0, preprocessing=pre.to_dict()))
    return d


# --- No silent wrong results (issue 16) -----------------------------------------------------------------------

@pytest.mark.slow
def test_volumes_are_written_in_the_format_their_extension_names(apply_inputs, tmp_path):
    import tifffile

    d = apply_inputs
    r = run_cli("apply", d / "particle.model", d / "pre.mrc", "-o", tmp_path / "s.tif", "-q")
    assert r.returncode == 0, r.stderr
    with tifffile.TiffFile(tmp_path / "s.tif") as tif:  # a real TIFF, as Fiji and cylindra read it
        assert tif.is_imagej and tif.imagej_metadata["unit"] == "nm"
        assert tif.imagej_metadata["spacing"] == pytest.approx(1.0)
        assert tif.pages[0].tags["XResolution"].value == (1, 1)  # 1 pixel per nm
    mrc_run = run_cli("apply", d / "particle.model", d / "pre.mrc", "-o", tmp_path / "s.mrc", "-q")
    assert mrc_run.returncode == 0, mrc_run.stderr
    tif, mrc = read_volume(tmp_path / "s.tif"), read_volume(tmp_path / "s.mrc")
    np.testing.assert_array_equal(np.asarray(tif.data), np.asarray(mrc.data))
    assert tif.voxel_size == pytest.approx(10.0) and tif.origin == pytest.approx((1.0, 2.0, 3.0))
    assert tif.label_value("feature") == "particle"
    for name in ("labels.tiff", "labels.rec", "labels.map"):
        r = run_cli("merge", tmp_path / "s.tif", "-o", tmp_path / name, "-q")
        assert r.returncode == 0, r.stderr
        assert read_volume(tmp_path / name).label_value("label 1") == "particle"
    assert (tmp_path / "labels.rec").read_bytes()[208:212] == b"MAP "
    for bad in ("s.png", "s.h5", "scores"):
        r = run_cli("apply", d / "particle.model", d / "pre.mrc", "-o", tmp_path / bad)
        assert_one_line_error(r, bad, ".mrc", ".tif")
        assert not (tmp_path / bad).exists()
        r = run_cli("preprocess", d / "pre.mrc", "-o", tmp_path / bad)
        assert_one_line_error(r, bad, ".mrc", ".tif")
    assert not list(tmp_path.glob(".*"))


@pytest.mark.slow
def test_pick_refuses_a_label_map_unless_told_which_label(apply_inputs, tmp_path):
    d = apply_inputs
    assert main(["apply", str(d / "particle.model"), str(d / "pre.mrc"), "-o", str(tmp_path / "s.mrc"), "-q"]) == 0
    assert main(["merge", str(tmp_path / "s.mrc"), str(tmp_path / "s.mrc"), "-o", str(tmp_path / "l.mrc"), "-q"]) == 0
    r = run_cli("pick", tmp_path / "l.mrc", "-o", tmp_path / "p.csv")
    assert_one_line_error(r, "l.mrc: is a label map", "1=particle", "--label N")
    assert not (tmp_path / "p.csv").exists()
    for command in ("merge", "consensus"):  # the other commands that expect score maps
        r = run_cli(command, tmp_path / "s.mrc", tmp_path / "l.mrc", "-o", tmp_path / "x.mrc")
        assert_one_line_error(r, "l.mrc: is a label map")
    r = run_cli("pick", d / "pre.mrc", "-o", tmp_path / "p.csv")
    assert_one_line_error(r, "pre.mrc: is a preprocessed tomogram, not a score map")
    r = run_cli("pick", tmp_path / "l.mrc", "--label", 7, "-o", tmp_path / "p.csv")
    assert_one_line_error(r, "no voxel of label 7")
    # the label's pieces are the score map's at threshold 1 (merge keeps >= 1): the same particles, each
    # placed at its piece's centre, inside the label
    assert main(["pick", str(tmp_path / "l.mrc"), "--label", "1", "--no-split", "-o", str(tmp_path / "p.csv"), "-q"]) == 0
    assert main(["pick", str(tmp_path / "s.mrc"), "--no-split", "-o", str(tmp_path / "q.csv"), "-q"]) == 0
    (by_label, _), (by_score, _) = read_particles(tmp_path / "p.csv"), read_particles(tmp_path / "q.csv")
    assert len(by_label) == len(by_score) > 0
    a, b = by_label.xyz, by_score.xyz
    assert np.linalg.norm(a[:, None] - b[None], axis=-1).min(axis=1).max() <= 8  # within a particle radius
    labels = read_volume(tmp_path / "l.mrc").data
    assert all(labels[z, y, x] == 1 for x, y, z in a.astype(int))


def test_force_always_warns_about_what_it_forced(apply_inputs, tmp_path):
    d = apply_inputs
    vol = read_volume(d / "pre.mrc", mmap=False)
    write_volume(tmp_path / "coarse.mrc", vol.data, 23.0, labels=vol.labels)
    r = run_cli("apply", d / "particle.model", tmp_path / "coarse.mrc", "-o", tmp_path / "s.mrc", "--force", "-q")
    assert r.returncode == 0, r.stderr
    warnings = [l for l in r.stderr.splitlines() if l.startswith("tomoseg: warning")]
    assert len(warnings) == 1 and "--force" in warnings[0] and "voxel size 23 A" in warnings[0]
    assert "2.3x" in warnings[0] and "anyway" in warnings[0]
    r = run_cli("apply", d / "particle.model", d / "pre.mrc", "-o", tmp_path / "t.mrc", "--force", "-q")
    assert r.returncode == 0 and r.stderr == ""  # nothing forced, nothing said


def test_preprocess_says_when_the_lowpass_is_beyond_nyquist(tmp_path):
    data = np.random.default_rng(0).normal(size=(8, 32, 32)).astype(np.float32)
    write_volume(tmp_path / "coarse.mrc", data, 23.2)
    r = run_cli("preprocess", tmp_path / "coarse.mrc", "-o", tmp_path / "pre.mrc", "-q")
    assert r.returncode == 0, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tomoseg: warning: ") and "coarse.mrc" in lines[0]
    assert "low-pass cutoff 20 A" in lines[0] and "46.4 A" in lines[0]
    r = run_cli("preprocess", tmp_path / "coarse.mrc", "-o", tmp_path / "pre2.mrc", "--lowpass", 60, "-q")
    assert r.returncode == 0 and r.stderr == ""


def test_the_command_line_starts_without_torch():
    """--help and argument errors stay instant: the CLI, its registries (picking modes, particle formats,
    recipes) and the error words load neither torch nor scipy nor scikit-image."""
    code = ("import sys, tomoseg.cli.main as m; m.build_parser(); "
            "print(sorted(k for k in ('torch', 'scipy', 'skimage', 'pandas') if k in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr
