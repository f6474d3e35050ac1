"""Picking along filaments and on membranes (steps/continuous)."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest

from tomoseg.io.particles import read_particles
from tomoseg.ops.rotations import (
    z_axes,
)
from tomoseg.steps.continuous import (
    FilamentConfig,
    MembraneConfig,
    pick_filaments,
    pick_membranes,
)


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



def test_pick_modes_write_every_format(tmp_path):
    """tomoseg pick --mode filament / membrane: points with orientations in the format the extension names."""
    from tomoseg.cli.main import main

    tube, shell, _, _ = _tube_and_shell()
    for name, vol in (("tube", tube), ("shell", shell)):
        with mrcfile.new(tmp_path / f"{name}.mrc") as mrc:
            mrc.set_data(vol)
            mrc.voxel_size = 10.0
    assert main(["pick", str(tmp_path / "tube.mrc"), "-o", str(tmp_path / "f.star"), "--mode", "filament",
                 "--diameter", "120", "--min-length", "200", "-q"]) == 0
    picks, meta = read_particles(tmp_path / "f.star")
    assert len(picks) >= 8 and meta["format"] == "relion5"
    assert main(["pick", str(tmp_path / "shell.mrc"), "-o", str(tmp_path / "m.tbl"), "--mode", "membrane",
                 "--spacing", "60", "--min-area", "1e4", "-q"]) == 0
    assert len(read_particles(tmp_path / "m.tbl")[0]) > 30
