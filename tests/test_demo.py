"""The README's main command, on a reduced scale so the suite stays fast."""

import math

import numpy as np
import pytest

from tomoseg.errors import OutputExists
from tomoseg.io.mrc import read_volume
from tomoseg.testing import make_tomogram
from tomoseg.workflows import demo
from tomoseg.workflows.figures import annotation_figure, nice_length, sphere_sections


@pytest.mark.slow
def test_demo_writes_every_output_and_a_picture(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "DEMO_SHAPE", (32, 128, 128))
    monkeypatch.setattr(demo, "DEMO_TRAINING", {"epochs": 4, "negative_copies": 1})
    summary = demo.run_demo(tmp_path / "out", seed=2)
    out = tmp_path / "out"
    for name in ["tomogram.mrc", "preprocessed.mrc", "membrane.model", "particle.model", "membrane_scores.mrc",
                 "particle_scores.mrc", "merged_labels.mrc", "particles.csv", "demo.png", "membrane_boxes.csv"]:
        assert (out / name).stat().st_size > 0, name
    assert (out / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    merged = read_volume(out / "merged_labels.mrc")
    assert set(np.unique(merged.data)) <= {0, 1, 2} and (merged.data == 1).any() and (merged.data == 2).any()
    assert "outputs in" in summary and "demo.png" in summary
    with pytest.raises(OutputExists, match="not empty"):  # the demo follows every command's rule: --overwrite
        demo.run_demo(out, seed=2)


def test_picks_are_drawn_as_sphere_sections_on_nearby_slices():
    picks = np.array([[5.0, 6.0, 10.0], [50.0, 60.0, 30.0]])  # x, y, z
    for z, radius in [(10, 4.0), (13, math.sqrt(16 - 9)), (7, math.sqrt(16 - 9))]:
        index, radii = sphere_sections(picks, 2, z, diameter=8.0)
        assert index.tolist() == [0] and radii == pytest.approx([radius])
    assert len(sphere_sections(picks, 2, 15, diameter=8.0)[0]) == 0
    assert len(sphere_sections(picks, 2, 13.9, diameter=8.0)[0]) == 0  # radius 0.9 < the 1-voxel minimum
    index, radii = sphere_sections(picks, 1, 62, diameter=8.0)  # an XZ slice at y = 62
    assert index.tolist() == [1] and radii == pytest.approx([math.sqrt(12)])
    assert [nice_length(t) for t in (40, 9.9, 0.3, 1000)] == [20, 5, 0.2, 1000]


def test_annotation_figure_is_a_modest_png(tmp_path):
    sim = make_tomogram((24, 64, 64), voxel_size=20.0, seed=1, n_particles=6)
    merged = np.where(sim.labels == 1, 1, np.where(sim.labels == 3, 2, 0)).astype(np.int8)
    annotation_figure(tmp_path / "f.png", sim.volume, merged, ["membrane", "particle"], sim.particles[1:],
                      voxel_size=20.0, truth=sim.labels, truth_names=sim.classes, truth_xyz=sim.particles,
                      particle_diameter=220.0, dice={"membrane": 1.0, "particle": 1.0},
                      pick_counts=(len(sim.particles) - 1, len(sim.particles) - 1, len(sim.particles)))
    from PIL import Image

    with Image.open(tmp_path / "f.png") as image:
        assert image.format == "PNG" and 800 <= image.width <= 1800 and image.height <= 1800
    assert (tmp_path / "f.png").stat().st_size < 1_000_000
    assert list(tmp_path.iterdir()) == [tmp_path / "f.png"]  # no temporary file left behind
