"""Consensus and uncertainty across annotators' score maps (METHOD.md section 6)."""

import numpy as np
import pytest

from tomoseg.cli.main import main
from tomoseg.io.mrc import header_label, read_volume, write_volume
from tomoseg.steps.consensus import consensus_scores


def test_consensus_is_the_mean_spread_the_sd_and_disagreement_the_split_at_the_threshold():
    a = np.array([[[0.0, 1.0, 2.0, 1.5]]], np.float32)
    b = np.array([[[0.0, 1.0, 0.0, 0.5]]], np.float32)
    c = np.array([[[0.0, 1.0, 1.0, 0.2]]], np.float32)
    d = np.array([[[0.0, 1.0, 0.0, 1.2]]], np.float32)
    mean, spread, disagreement = consensus_scores([a, b, c, d])
    stack = np.stack([a, b, c, d])
    np.testing.assert_allclose(mean, stack.mean(0), rtol=1e-6)
    np.testing.assert_allclose(spread, stack.std(0), rtol=1e-5, atol=1e-7)
    # votes >= 1: 0/4 (unanimous no), 4/4 (unanimous yes), 2/4 (even split), 2/4
    np.testing.assert_allclose(disagreement[0, 0], [0.0, 0.0, 1.0, 1.0])
    _, _, three = consensus_scores([a, b, c])  # 1/3 vote yes on the third voxel
    assert three[0, 0, 2] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="at least two"):
        consensus_scores([a])
    with pytest.raises(ValueError, match="shape"):
        consensus_scores([a, a[:, :, :2]])


def test_consensus_command_writes_the_three_maps_on_the_grid(tmp_path, capsys):
    rng = np.random.default_rng(0)
    maps = [rng.gamma(2.0, 0.5, size=(20, 24, 28)).astype(np.float32) for _ in range(3)]
    for k, m in enumerate(maps):
        write_volume(tmp_path / f"ann{k}.mrc", m, 12.5, origin=(10.0, 20.0, 30.0),
                     labels=(header_label("feature", "ribosome"),))
    paths = [str(tmp_path / f"ann{k}.mrc") for k in range(3)]
    out = tmp_path / "c.mrc"
    assert main(["consensus", *paths, "-o", str(out), "--spread", str(tmp_path / "s.mrc"),
                 "--disagreement", str(tmp_path / "d.mrc"), "-q"]) == 0
    mean = read_volume(out)
    assert mean.voxel_size == pytest.approx(12.5) and mean.origin == (10.0, 20.0, 30.0)
    assert mean.label_value("feature") == "ribosome"
    np.testing.assert_allclose(np.asarray(mean.data), np.mean(maps, axis=0), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(read_volume(tmp_path / "s.mrc").data), np.std(maps, axis=0),
                               rtol=1e-4, atol=1e-6)
    assert read_volume(tmp_path / "s.mrc").label_value("feature") == "ribosome spread"
    votes = (np.stack(maps) >= 1).mean(0)
    np.testing.assert_allclose(np.asarray(read_volume(tmp_path / "d.mrc").data), 1 - np.abs(2 * votes - 1),
                               atol=1e-6)
    # a map on another grid: one line, nothing written
    write_volume(tmp_path / "other.mrc", maps[0][:, :, :20], 12.5)
    code = main(["consensus", paths[0], str(tmp_path / "other.mrc"), "-o", str(tmp_path / "x.mrc")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "other.mrc: shape" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x.mrc").exists()


def test_maps_of_differently_cropped_tomograms_are_refused(tmp_path):
    from tomoseg.errors import TomosegError
    from tomoseg.workflows import consensus_files, merge_files

    data = np.ones((4, 8, 8), np.float32)
    write_volume(tmp_path / "a.mrc", data, 10.0, origin=(0.0, 0.0, 0.0))
    write_volume(tmp_path / "b.mrc", data, 10.0, origin=(20.0, 0.0, 0.0))
    for run in (lambda: consensus_files([tmp_path / "a.mrc", tmp_path / "b.mrc"], tmp_path / "c.mrc"),
                lambda: merge_files([tmp_path / "a.mrc", tmp_path / "b.mrc"], tmp_path / "m.mrc")):
        with pytest.raises(TomosegError, match="b.mrc: origin"):
            run()
