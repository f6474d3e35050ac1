"""Calibration: a map from a tomogram imaged otherwise, put back on its network's training scale."""

import numpy as np
import pytest

from tomoseg.errors import TomosegError
from tomoseg.io.model_file import load_model, save_model
from tomoseg.io.mrc import read_volume, write_volume
from tomoseg.nn.model import Model
from tomoseg.steps.calibrate import BINS, calibration_scale, level_from_histogram, level_of, score_histogram
from tomoseg.steps.preprocess import PreprocessConfig
from tomoseg.workflows import apply_file, merge_files
from tomoseg.workflows.maps import calibration_scale_of
from tomoseg.workflows.particles import PickConfig, pick_file


def _two_populations(scale: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    background = np.abs(rng.normal(0, 0.15, 90_000))
    structure = rng.normal(1.0, 0.15, 10_000)
    return (np.concatenate([background, structure]) * scale).astype(np.float32)


def test_the_level_splits_two_populations_and_follows_the_scale():
    level = level_of(_two_populations(1.0))
    assert 0.4 < level < 0.75
    for scale in (0.25, 0.5, 2.0):
        assert level_of(_two_populations(scale)) == pytest.approx(scale * level, rel=0.02)
    # a floor above 0 leaves out more of a dimmer map's background, and the level no longer follows the scale
    assert level_of(_two_populations(0.25), floor=0.05) > 1.05 * 0.25 * level_of(_two_populations(1.0), floor=0.05)
    halves = _two_populations(1.0).reshape(2, -1)
    np.testing.assert_array_equal(score_histogram(halves[0]) + score_histogram(halves[1]),
                                  score_histogram(_two_populations(1.0)))
    assert len(score_histogram(halves[0])) == BINS
    assert level_from_histogram(score_histogram(np.zeros(1000))) is None  # nothing above 0
    with pytest.raises(ValueError, match="cannot be calibrated"):
        calibration_scale(None, 0.5)


def test_training_records_the_level_and_the_model_file_keeps_it(particle_model, tmp_path):
    assert particle_model.level is not None and 0 < particle_model.level < 5
    model = Model(particle_model.net, particle_model.amplitude, "particle", 10.0, level=particle_model.level)
    save_model(tmp_path / "m.model", model)
    assert load_model(tmp_path / "m.model").level == pytest.approx(particle_model.level)


@pytest.fixture(scope="module")
def dimmed(tmp_path_factory, particle_model, small_pre):
    """A score map, and the same map as a tomogram imaged otherwise would give it: 0.3 times lower."""
    d = tmp_path_factory.mktemp("calibrate")
    pre = PreprocessConfig()
    write_volume(d / "pre.mrc", small_pre, 10.0, labels=(f"tomoseg preprocess: {pre.describe()}",))
    save_model(d / "particle.model", Model(particle_model.net, particle_model.amplitude, "particle", 10.0,
                                           pre.to_dict(), level=particle_model.level))
    apply_file(d / "particle.model", d / "pre.mrc", d / "scores.mrc")
    vol = read_volume(d / "scores.mrc")
    assert vol.label_value("level") is not None
    write_volume(d / "dim.mrc", np.asarray(vol.data) * np.float32(0.3), 10.0, labels=vol.labels)
    return d


def test_calibration_undoes_a_dimmed_map(dimmed, small_tomo, tmp_path):
    scale, note = calibration_scale_of(dimmed / "scores.mrc")
    dim_scale, _ = calibration_scale_of(dimmed / "dim.mrc")
    assert dim_scale == pytest.approx(0.3 * scale, rel=0.03) and "divided by" in note
    plain = pick_file(dimmed / "scores.mrc", tmp_path / "plain.csv", PickConfig(), scale=scale)
    dim_raw = pick_file(dimmed / "dim.mrc", tmp_path / "raw.csv", PickConfig())
    dim_cal = pick_file(dimmed / "dim.mrc", tmp_path / "cal.csv", PickConfig(), scale=dim_scale)
    assert len(dim_raw) < len(plain) // 2  # at 0.3x, few voxels reach threshold 1
    assert abs(len(dim_cal) - len(plain)) <= max(1, len(plain) // 10)
    merge_files([dimmed / "dim.mrc"], tmp_path / "m_dim.mrc", scales=[dim_scale])
    merge_files([dimmed / "scores.mrc"], tmp_path / "m.mrc", scales=[scale])
    a, b = np.asarray(read_volume(tmp_path / "m_dim.mrc").data), np.asarray(read_volume(tmp_path / "m.mrc").data)
    assert np.mean(a != b) < 0.01


def test_calibrate_on_the_command_line_and_its_refusals(dimmed, tmp_path, capsys):
    from tomoseg.cli.main import main

    assert main(["pick", str(dimmed / "dim.mrc"), "-o", str(tmp_path / "p.csv"), "--calibrate"]) == 0
    out = capsys.readouterr().out
    assert "calibrated: scores divided by" in out and "wrote" in out
    assert main(["merge", str(dimmed / "dim.mrc"), str(dimmed / "scores.mrc"), "-o", str(tmp_path / "l.mrc"),
                 "--calibrate"]) == 0
    vol = read_volume(dimmed / "scores.mrc")
    old = [label for label in vol.labels if "level" not in label]
    write_volume(tmp_path / "old.mrc", np.asarray(vol.data), 10.0, labels=tuple(old))
    capsys.readouterr()
    assert main(["pick", str(tmp_path / "old.mrc"), "-o", str(tmp_path / "q.csv"), "--calibrate"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "old.mrc" in err and "records no training level" in err
    assert not (tmp_path / "q.csv").exists()
    with pytest.raises(TomosegError, match="records no training level"):
        calibration_scale_of(tmp_path / "old.mrc")
