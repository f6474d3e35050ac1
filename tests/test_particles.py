"""From picks to a structure: orientations, wedge/FSC, continuous picking, extraction, averaging, CLI."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import mrcfile
import numpy as np
import pandas as pd
import pytest
import torch

from tomoseg.io.mrc import write_volume
from tomoseg.io.particles import read_particles, write_particles
from tomoseg.io.subtomograms import read_subtomograms
from tomoseg.ops.rotations import (
    angles_from_vectors,
    angles_of,
    angular_distance,
    orientation_grid,
    rotate_volumes,
    rotation,
    z_axes,
)
from tomoseg.ops.shells import fsc, resolution_at, wedge_mask
from tomoseg.steps.average import AverageConfig, align_maps, fourier_shift, refine
from tomoseg.steps.continuous import FilamentConfig, MembraneConfig, pick_filaments, pick_membranes
from tomoseg.steps.extract import ExtractConfig, extract_subtomograms
from tomoseg.testing.particles import asymmetric_template, planted_subtomograms
from tomoseg.types import Picks, TomogramInfo


def test_orientation_convention_points_z_along_vectors_and_turns_volumes():
    v = np.array([[1.0, 0, 0], [0, 1, 1], [0.3, -0.2, -0.9]])
    a = angles_from_vectors(v, rot=[10, 20, 30])
    assert np.allclose(z_axes(a), v / np.linalg.norm(v, axis=1)[:, None], atol=1e-9)
    assert np.allclose(angular_distance(a, angles_of(rotation(a))), 0, atol=1e-6)
    # a point on +z of the reference lands on the vector's direction in the turned volume
    vol = torch.zeros(17, 17, 17)
    vol[8 + 5, 8, 8] = 1.0  # z = +5
    out = rotate_volumes(vol, angles_from_vectors([[0, 1, 0]]))[0].numpy()
    assert np.unravel_index(out.argmax(), out.shape) == (8, 8 + 5, 8)  # now at y = +5


def test_orientation_grid_covers_rotations_at_about_the_step():
    grid = orientation_grid(30.0)
    probes = angles_of(__import__("scipy.spatial.transform", fromlist=["R"]).Rotation.random(200, random_state=1))
    nearest = np.array([angular_distance(grid, np.repeat(p[None], len(grid), 0)).min() for p in probes])
    assert nearest.max() < 30.0


def test_wedge_fsc_and_resolution():
    w = wedge_mask(32, (-60, 60))
    assert 0.6 < w.mean() < 0.72  # 120 of 180 degrees measured
    assert w[0, 0, 5] == 1 and w[5, 0, 0] == 0  # kx axis measured, kz axis missing
    rng = np.random.default_rng(0)
    a = rng.standard_normal((32, 32, 32))
    assert np.allclose(fsc(a, a)[1:], 1.0)
    assert abs(fsc(a, rng.standard_normal((32, 32, 32)))[1:]).mean() < 0.1
    curve = np.array([1.0, 0.9, 0.5, 0.2, 0.1, 0.0])  # crosses 0.143 between shells 3 and 4
    res = resolution_at(curve, 10, 10.0)
    assert 10 * 10 / 4 < res < 10 * 10 / 3


def test_extract_cuts_centred_cubes_bins_inverts_and_fills_edges():
    vol = np.arange(20 * 30 * 40, dtype=np.float32).reshape(20, 30, 40)
    cubes, inside = extract_subtomograms(vol, np.array([[20, 15, 10]]), ExtractConfig(box=6, normalise=False))
    assert np.array_equal(cubes[0], vol[7:13, 12:18, 17:23]) and inside[0] == 1
    binned, _ = extract_subtomograms(vol, np.array([[20, 15, 10]]), ExtractConfig(box=4, bin=2, normalise=False,
                                                                                 invert=True))
    assert binned.shape == (1, 4, 4, 4)
    assert np.isclose(-binned[0, 2, 2, 2], vol[10:12, 15:17, 20:22].mean(), atol=1e-3)
    edge, inside = extract_subtomograms(vol, np.array([[0, 0, 0]]), ExtractConfig(box=8))
    assert inside[0] == pytest.approx(4**3 / 8**3) and np.isfinite(edge).all()
    assert edge[0].mean() == pytest.approx(0, abs=1e-5) and edge[0].std() == pytest.approx(1, abs=1e-4)


def _tube_and_shell():
    z, y, x = np.mgrid[:40, :64, :64]
    c = np.array([32, 32, 20.0])
    p = np.stack([x, y, z], -1) - c
    d = np.array([1, 1, 0.3]) / np.linalg.norm([1, 1, 0.3])
    dist = np.linalg.norm(p - (p @ d)[..., None] * d, axis=-1)
    tube = ((dist >= 4) & (dist <= 6)).astype(np.float32) * 2  # a hollow tube wall
    shell = (np.abs(np.linalg.norm(p, axis=-1) - 15) <= 1.5).astype(np.float32) * 2
    return tube, shell, c, d


def test_filament_points_lie_on_the_axis_spaced_and_oriented():
    tube, _, c, d = _tube_and_shell()
    picks = pick_filaments(tube, 10.0, FilamentConfig(diameter=120, spacing=80, min_length=200))
    assert len(picks) >= 8
    rel = picks.xyz - c
    off_axis = np.linalg.norm(rel - (rel @ d)[:, None] * d, axis=1)
    assert np.median(off_axis) < 1.5
    along = np.sort(rel @ d)
    assert np.median(np.diff(along)) == pytest.approx(8.0, abs=1.5)
    assert np.median(np.abs(z_axes(picks.angles) @ d)) > 0.98


def test_membrane_points_are_spaced_with_outward_normals():
    _, shell, c, _ = _tube_and_shell()
    picks = pick_membranes(shell, 10.0, MembraneConfig(spacing=60, min_area=1e4))
    assert len(picks) > 30
    radial = (picks.xyz - c) / np.linalg.norm(picks.xyz - c, axis=1)[:, None]
    assert np.median(np.einsum("ij,ij->i", z_axes(picks.angles), radial)) > 0.95
    gaps = np.array([np.sort(np.linalg.norm(picks.xyz - p, axis=1))[1] for p in picks.xyz])
    assert gaps.min() >= 6.0 - 1e-9


def _corr(a, b):
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def _to_template(average, template, voxel=10.0):
    """The average turned and moved onto the template (the reference-free frame is arbitrary)."""
    from tomoseg.ops.shells import soft_sphere

    n = template.shape[0]
    mask = torch.from_numpy(soft_sphere(n, 0.4 * n, 2.0))
    t = align_maps(template, average, voxel, 30.0, mask, True, 5.0, 0)
    return fourier_shift(rotate_volumes(torch.from_numpy(average), t.angles), t.shifts).numpy()[0]


def test_refinement_from_a_reference_recovers_planted_orientations():
    template = asymmetric_template(32)
    stack, angles, shifts = planted_subtomograms(template, 20, noise=1.0, seed=1)
    config = AverageConfig(iterations=4, global_iterations=2)
    result = refine(stack, 10.0, config, reference=template)
    error = angular_distance(result.alignment.angles, angles)
    assert np.median(error) < 10.0  # a few degrees at ~35 A on a 32^3 box
    assert np.mean(error < 20) >= 0.75  # a pseudo-symmetric flip may catch a few
    good = error < 20
    assert np.median(np.linalg.norm(result.alignment.shifts[good] - shifts[good], axis=1)) < 1.0
    assert _corr(result.average, template) > _corr(stack.mean(axis=0), template) + 0.1
    assert result.resolution < 60.0


def test_reference_free_average_beats_the_unaligned_one_and_is_seeded():
    template = asymmetric_template(24)
    stack, _, _ = planted_subtomograms(template, 16, noise=0.5, seed=2)
    config = AverageConfig(iterations=3, global_iterations=2, global_step=30.0)
    result = refine(stack, 10.0, config)
    aligned = _to_template(result.average, template)
    assert _corr(aligned, template) > _corr(stack.mean(axis=0), template)
    assert len(result.history) == 3 and np.isfinite(result.fsc).all()
    again = refine(stack, 10.0, config)
    assert np.array_equal(again.alignment.angles, result.alignment.angles)


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


def test_pick_modes_write_every_format(tmp_path):
    tube, shell, _, _ = _tube_and_shell()
    for name, vol in (("tube", tube), ("shell", shell)):
        with mrcfile.new(tmp_path / f"{name}.mrc") as mrc:
            mrc.set_data(vol)
            mrc.voxel_size = 10.0
    r = _tomoseg("pick", tmp_path / "tube.mrc", "-o", tmp_path / "f.star", "--mode", "filament", "--diameter", 120,
                 "--min-length", 200, "-q")
    assert r.returncode == 0, r.stderr
    picks, meta = read_particles(tmp_path / "f.star")
    assert len(picks) >= 8 and meta["format"] == "relion5"
    r = _tomoseg("pick", tmp_path / "shell.mrc", "-o", tmp_path / "m.tbl", "--mode", "membrane", "--spacing", 60,
                 "--min-area", 1e4, "-q")
    assert r.returncode == 0, r.stderr
    assert len(read_particles(tmp_path / "m.tbl")[0]) > 30


def test_write_particles_keeps_angles_through_csv(tmp_path):
    picks = Picks(np.array([[1.0, 2, 3]]), np.ones(1), np.ones(1), np.ones(1, int), np.array([[10.0, 20, 30]]))
    write_particles(tmp_path / "a.csv", picks, TomogramInfo("t", 10.0, (4, 5, 6)))
    back, _ = read_particles(tmp_path / "a.csv")
    assert np.allclose(back.angles, picks.angles)


def test_refinement_from_given_angles_searches_locally():
    from scipy.spatial.transform import Rotation

    template = asymmetric_template(32)
    stack, angles, _ = planted_subtomograms(template, 12, noise=0.5, seed=4)
    nudged = angles_of(rotation(angles) * Rotation.from_rotvec(np.radians(np.full((12, 3), 5.0))))
    config = AverageConfig(iterations=2, global_iterations=0)
    result = refine(stack, 10.0, config, start_angles=nudged, device="cpu")
    assert all(h["search"] == "local" for h in result.history)
    assert np.median(angular_distance(result.alignment.angles, angles)) < np.median(angular_distance(nudged, angles))


def test_align_map_puts_a_turned_and_moved_map_back_on_its_reference(tmp_path, capsys):
    """tomoseg align-map: a map turned by known angles and shifted comes back onto the reference."""
    from tomoseg.cli.main import main
    from tomoseg.io.mrc import read_volume
    from tomoseg.steps.average import Alignment, move_map

    n = 32
    z, y, x = np.mgrid[:n, :n, :n].astype(np.float32)
    ref = np.zeros((n, n, n), np.float32)
    for (cx, cy, cz), r in (((16, 16, 16), 5.0), ((22, 15, 17), 3.0), ((14, 22, 13), 2.0)):  # no symmetry
        ref += np.exp(-((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) / (2 * r**2))
    turned = move_map(ref, Alignment(np.array([[40.0, 30.0, -60.0]]), np.array([[2.0, -1.5, 1.0]]), np.zeros(1)))
    write_volume(tmp_path / "ref.mrc", ref, 10.0)
    write_volume(tmp_path / "map.mrc", turned, 10.0, origin=(5.0, 6.0, 7.0))
    assert main(["align-map", str(tmp_path / "map.mrc"), str(tmp_path / "ref.mrc"), "-o", str(tmp_path / "on.mrc"),
                 "--resolution", "25"]) == 0
    out = capsys.readouterr().out
    back = read_volume(tmp_path / "on.mrc")
    assert back.origin == (5.0, 6.0, 7.0) and back.voxel_size == pytest.approx(10.0)
    assert _corr(back.data, ref) > 0.97 > _corr(turned, ref), out
    write_volume(tmp_path / "small.mrc", ref[:16, :16, :16], 10.0)
    assert main(["align-map", str(tmp_path / "map.mrc"), str(tmp_path / "small.mrc"), "-o", str(tmp_path / "x.mrc")]) == 2
    err = capsys.readouterr().err
    assert "small.mrc: box 16x16x16 differs" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.mrc").exists()
