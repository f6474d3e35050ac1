"""The README's main command, on a reduced scale so the suite stays fast."""

import numpy as np
import pytest

from tomoseg.io.mrc import read_volume
from tomoseg.workflows import demo


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
