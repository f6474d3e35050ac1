"""From picks to a structure on the command line: extract, classify, average, export (workflows/particles)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import mrcfile
import numpy as np
import pandas as pd
import pytest

from tomoseg.io.mrc import write_volume
from tomoseg.io.particles import read_particles, write_particles
from tomoseg.io.subtomograms import read_subtomograms
from tomoseg.steps.average import refine
from tomoseg.testing.particles import asymmetric_template, planted_subtomograms
from tomoseg.types import Picks, TomogramInfo


def _planted_tomogram(tmp_path, n=24, count=12):
    """A tomogram with template copies at known places, and a CSV of those places."""
    template = asymmetric_template(n)
    stack, _, _ = planted_subtomograms(template, count, noise=0.3, max_shift=0.0, seed=3)
    vol = np.random.default_rng(0).normal(0, 0.05, (40, 120, 150)).astype(np.float32)
    xyz = []
    for i, cube in enumerate(stack):
        x, y = 20 + (i % 5) * 27, 20 + (i // 5) * 35
        vol[8 : 8 + n, y - n // 2 : y + n - n // 2, x - n // 2 : x + n - n // 2] += cube
        xyz.append((x, y, 8 + n // 2))
    path = tmp_path / "tomo.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(vol)
        mrc.voxel_size = 10.0
    pd.DataFrame(np.array(xyz), columns=["x", "y", "z"]).assign(score=1.0).to_csv(tmp_path / "picks.csv", index=False)
    return path, np.array(xyz, float)



def _tomoseg(*args):
    return subprocess.run([sys.executable, "-m", "tomoseg", *map(str, args)], capture_output=True, text=True)



@pytest.mark.slow
def test_cli_extract_classify_average_export(tmp_path):
    tomo, xyz = _planted_tomogram(tmp_path)
    r = _tomoseg("extract", tomo, tmp_path / "picks.csv", "-o", tmp_path / "sub", "--box", 24, "-q")
    assert r.returncode == 0, r.stderr
    stack, table, voxel = read_subtomograms(tmp_path / "sub" / "particles.star")
    assert stack.shape == (12, 24, 24, 24) and voxel == 10.0
    assert np.allclose(table[["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]].to_numpy(), xyz)

    r = _tomoseg("classify2d", tmp_path / "sub" / "particles.star", "-o", tmp_path / "cls", "--classes", 2,
                 "--iterations", 2, "--keep", 0, 1, "-q")
    assert r.returncode == 0, r.stderr
    classes = pd.read_csv(tmp_path / "cls" / "classes.csv")
    assert len(classes) == 12 and set(classes["keep"]) == {1}
    assert (tmp_path / "cls" / "classes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    kept, _, _ = read_subtomograms(tmp_path / "cls" / "kept.star")  # image paths point back to sub/
    assert kept.shape == stack.shape

    r = _tomoseg("average", tmp_path / "cls" / "kept.star", "-o", tmp_path / "avg", "--iterations", 2, "--device", "cpu",
                 "--global-iterations", 1, "--global-step", 40, "--selection", tmp_path / "cls" / "classes.csv", "-q")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "avg"
    for name in ("average.mrc", "half1.mrc", "half2.mrc", "fsc.csv", "fsc.png", "slices.png", "particles.star",
                 "summary.json"):
        assert (out / name).is_file(), name
    with mrcfile.open(out / "average.mrc") as mrc:
        assert mrc.data.shape == (24, 24, 24) and float(mrc.voxel_size.x) == pytest.approx(10.0)
    refined, _ = read_particles(out / "particles.star")
    assert len(refined) == 12 and np.median(np.linalg.norm(refined.xyz - xyz, axis=1)) < 2.0  # planted unshifted

    for ext in (".star", ".tbl", ".mod", ".json", ".csv"):
        r = _tomoseg("export", out / "particles.star", "-o", tmp_path / f"p{ext}", "--tomogram", tomo, "-q")
        assert r.returncode == 0, r.stderr
        back, _ = read_particles(tmp_path / f"p{ext}", info=TomogramInfo("tomo", 10.0, (40, 120, 150)))
        assert np.allclose(back.xyz, refined.xyz, atol=1e-3)



@pytest.mark.slow
def test_cli_particle_errors_are_one_line_and_leave_nothing(tmp_path):
    tomo, _ = _planted_tomogram(tmp_path, count=3)
    (tmp_path / "empty.csv").write_text("x,y,z\n")
    r = _tomoseg("extract", tomo, tmp_path / "empty.csv", "-o", tmp_path / "sub")
    assert r.returncode != 0 and "lists no particles" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "sub").exists()
    r = _tomoseg("extract", tomo, tmp_path / "picks.csv", "-o", tmp_path / "sub", "--box", 24, "-q")
    assert r.returncode == 0, r.stderr
    r = _tomoseg("average", tmp_path / "sub" / "particles.star", "-o", tmp_path / "avg")
    assert r.returncode != 0 and "at least 4 particles" in r.stderr and not (tmp_path / "avg").exists()
    r = _tomoseg("extract", tomo, tmp_path / "picks.csv", "-o", tmp_path / "sub", "--box", 24)
    assert r.returncode != 0 and "not empty" in r.stderr and "--overwrite" in r.stderr
    r = _tomoseg("extract", tomo, tmp_path / "picks.csv", "-o", tmp_path / "sub", "--box", 24, "--force")
    assert r.returncode != 0 and "--force" in r.stderr  # --force only ever accepts a mismatch
    r = _tomoseg("extract", tomo, tmp_path / "picks.csv", "-o", tmp_path / "sub", "--box", 20, "--overwrite", "-q")
    assert r.returncode == 0 and read_subtomograms(tmp_path / "sub" / "particles.star")[0].shape[1:] == (20, 20, 20)
    r = _tomoseg("export", tmp_path / "picks.csv", "-o", tmp_path / "p.xyz", "--tomogram", tomo)
    assert r.returncode != 0 and "p.xyz" in r.stderr
    # --overwrite never replaces a folder that holds the inputs
    r = _tomoseg("average", tmp_path / "sub" / "particles.star", "-o", tmp_path / "sub", "--overwrite")
    assert r.returncode != 0 and "holds the input" in r.stderr and (tmp_path / "sub" / "subtomograms.mrcs").exists()
    r = _tomoseg("pick", tomo, "-o", tmp_path / "p.csv", "--mode", "membrane", "--diameter", 100)
    assert r.returncode != 0 and "--diameter does not apply to --mode membrane" in r.stderr
    r = _tomoseg("pick", tomo, "-o", tmp_path / "p.csv", "--mode", "filament", "--no-split")
    assert r.returncode != 0 and "--split does not apply to --mode filament" in r.stderr
    with pytest.raises(ValueError, match="even edge"):
        refine(np.zeros((4, 9, 9, 9), np.float32), 10.0)



def test_binned_extraction_keeps_source_coordinates(tmp_path):
    tomo, xyz = _planted_tomogram(tmp_path, count=5)
    r = _tomoseg("extract", tomo, tmp_path / "picks.csv", "-o", tmp_path / "sub", "--box", 12, "--bin", 2, "-q")
    assert r.returncode == 0, r.stderr
    back, _ = read_particles(tmp_path / "sub" / "particles.star", info=TomogramInfo("tomo", 10.0, (40, 120, 150)))
    assert np.allclose(back.xyz, xyz)
    stack, _, voxel = read_subtomograms(tmp_path / "sub" / "particles.star")
    assert stack.shape == (5, 12, 12, 12) and voxel == 20.0



def test_picks_from_a_coarser_grid_are_placed_by_their_angstrom_coordinates(tmp_path):
    tomo, xyz = _planted_tomogram(tmp_path, count=5)
    # a tomoseg CSV written on a grid of 25 A voxels (e.g. `preprocess --resample 25`), same origin
    write_particles(tmp_path / "coarse.csv", Picks(xyz * 10 / 25, np.ones(5), np.ones(5), np.ones(5, int)),
                    TomogramInfo("coarse", 25.0, (16, 48, 60)))
    r = _tomoseg("extract", tomo, tmp_path / "coarse.csv", "-o", tmp_path / "sub", "--box", 12, "-q")
    assert r.returncode == 0 and "x_angst" in r.stderr, r.stderr  # a warning says what happened
    back, _ = read_particles(tmp_path / "sub" / "particles.star", info=TomogramInfo("tomo", 10.0, (40, 120, 150)))
    assert np.allclose(back.xyz, xyz)
    # the same CSV written on this tomogram's own grid is used as it is, silently
    write_particles(tmp_path / "same.csv", Picks(xyz, np.ones(5), np.ones(5), np.ones(5, int)),
                    TomogramInfo("tomo", 10.0, (40, 120, 150)))
    r = _tomoseg("extract", tomo, tmp_path / "same.csv", "-o", tmp_path / "sub2", "--box", 12, "-q")
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr



@dataclass(frozen=True)
class _PeakConfig:
    """A picking mode made up by the test below: one pick at the map's highest voxel."""

    threshold: float = 1.0
    edge: float = 0.0



def _pick_peak(scores, voxel_size, config):
    z, y, x = np.unravel_index(np.argmax(scores), scores.shape)
    return Picks(np.array([[x, y, z]], float), np.array([scores[z, y, x]]), np.array([scores[z, y, x]]), np.ones(1, int))



def test_a_picking_mode_is_one_registry_entry(tmp_path, monkeypatch, capsys):
    """Adding a mode to PICKING_MODES is all the CLI, the workflows and batch need (the dock lists the
    same registry: tests/gui/test_widget.py)."""
    from tomoseg.cli.main import main
    from tomoseg.steps.picking_modes import PICKING_MODES, PickingMode

    monkeypatch.setitem(PICKING_MODES, "peak", PickingMode("peak", __name__, "_PeakConfig", "_pick_peak", (),
                                                           "peaks", "the highest voxel"))
    scores = np.zeros((8, 16, 16), np.float32)
    scores[3, 4, 5] = 2.0
    write_volume(tmp_path / "s.mrc", scores, 10.0)
    assert main(["pick", str(tmp_path / "s.mrc"), "-o", str(tmp_path / "p.csv"), "--mode", "peak"]) == 0
    assert "1 peaks" in capsys.readouterr().out
    picks, _ = read_particles(tmp_path / "p.csv")
    assert picks.xyz.tolist() == [[5.0, 4.0, 3.0]]
    assert main(["pick", str(tmp_path / "s.mrc"), "-o", str(tmp_path / "q.csv"), "--mode", "peak",
                 "--diameter", "100"]) == 2
    assert "--diameter does not apply to --mode peak" in capsys.readouterr().err



def test_write_particles_keeps_angles_through_csv(tmp_path):
    picks = Picks(np.array([[1.0, 2, 3]]), np.ones(1), np.ones(1), np.ones(1, int), np.array([[10.0, 20, 30]]))
    write_particles(tmp_path / "a.csv", picks, TomogramInfo("t", 10.0, (4, 5, 6)))
    back, _ = read_particles(tmp_path / "a.csv")
    assert np.allclose(back.angles, picks.angles)
