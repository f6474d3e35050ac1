"""Subtomogram averaging and map alignment (steps/average, tomoseg align-map)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tomoseg.io.mrc import write_volume
from tomoseg.ops.rotations import (
    angles_of,
    angular_distance,
    rotate_volumes,
    rotation,
)
from tomoseg.steps.average import AverageConfig, align_maps, fourier_shift, refine
from tomoseg.testing.particles import asymmetric_template, planted_subtomograms


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
