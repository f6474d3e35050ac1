"""Slab context (2.5D): tiles of 2K + 1 slices, networks with 2K + 1 input channels, applied exactly."""

from dataclasses import replace

import numpy as np
import pytest

from tomoseg.io.model_file import load_model
from tomoseg.io.mrc import read_volume, write_volume
from tomoseg.io.trainset_file import load_trainset, save_trainset
from tomoseg.nn.engines import DirectEngine
from tomoseg.ops.context import context_indices, with_context
from tomoseg.steps.preprocess import PreprocessConfig
from tomoseg.steps.recipes import recipe
from tomoseg.steps.segment import score_slices, score_volume, slices_with_context
from tomoseg.steps.train import train
from tomoseg.steps.trainset import choose_boxes, combine_trainsets, make_trainset


def test_context_indices_replicate_the_edge_slices():
    np.testing.assert_array_equal(context_indices(0, 3, 5, 1), [[0, 0, 1], [0, 1, 2], [1, 2, 3]])
    np.testing.assert_array_equal(context_indices(4, 5, 5, 2), [[2, 3, 4, 4, 4]])
    volume = np.arange(5, dtype=np.float32)[:, None, None] * np.ones((1, 2, 3), np.float32)
    stack = with_context(volume[2:], 3, 5, 1, first=2, nz=5)
    assert stack.shape == (2, 3, 2, 3)
    np.testing.assert_array_equal(stack[:, :, 0, 0], [[2, 3, 4], [3, 4, 4]])
    with pytest.raises(ValueError, match="outside the slab"):
        with_context(volume[3:], 3, 5, 1, first=3, nz=5)


@pytest.fixture(scope="module")
def context_set(small_tomo, small_pre):
    boxes = choose_boxes(small_tomo.labels, 3, n_positive=8, n_negative=40, seed=1)
    labels = small_tomo.labels
    return make_trainset(small_pre, boxes, lambda z: labels[z] == 3, "particle", small_tomo.voxel_size,
                         PreprocessConfig().to_dict(), context=1)


def test_context_tiles_hold_the_neighbouring_slices(context_set, small_pre):
    assert context_set.tiles.shape[1:] == (3, 64, 64) and context_set.context == 1
    nz = small_pre.shape[0]
    for tile, (x, y, z) in zip(context_set.tiles[:5], context_set.boxes[:5]):
        for j, zz in enumerate(np.clip([z - 1, z, z + 1], 0, nz - 1)):
            np.testing.assert_array_equal(tile[j], small_pre[zz, y - 32 : y + 32, x - 32 : x + 32])


def test_context_sets_survive_a_file_and_refuse_to_mix_with_plain_ones(context_set, particle_trainset, tmp_path):
    save_trainset(tmp_path / "c.set", context_set)
    back = load_trainset(tmp_path / "c.set")
    np.testing.assert_array_equal(back.tiles, context_set.tiles)
    assert back.context == 1
    plain = replace(particle_trainset, preprocessing=context_set.preprocessing)
    with pytest.raises(ValueError, match="slab context 0, set 1 1"):
        combine_trainsets([context_set, plain])


@pytest.fixture(scope="module")
def context_model(context_set):
    return train(context_set, recipe("default", epochs=6, negative_copies=3, seed=0))


@pytest.mark.slow
def test_a_context_network_is_trained_applied_exactly_and_finds_the_particles(context_model, small_tomo, small_pre):
    net = context_model.net
    assert net.config.context == 1 and net.conv1.weight.shape[1] == 3
    reference = score_slices(net, context_model.amplitude, slices_with_context(small_pre, 0, len(small_pre), 1),
                             DirectEngine())
    streamed = score_volume(net, context_model.amplitude, small_pre, slices_per_batch=5)  # FFT engine, slabs of 5
    assert float(np.abs(streamed - reference).max()) <= 1e-4 * float(np.abs(reference).max())
    truth = small_tomo.labels == 3
    assert streamed[truth].mean() > 3 * streamed[~truth].mean()


@pytest.mark.slow
def test_context_through_the_files_and_the_command_line(small_tomo, small_pre, tmp_path, capsys):
    from tomoseg.cli.main import main
    from tomoseg.io.boxes import write_boxes

    pre = PreprocessConfig()
    write_volume(tmp_path / "pre.mrc", small_pre, 10.0, labels=(f"tomoseg preprocess: {pre.describe()}",))
    write_volume(tmp_path / "labels.mrc", small_tomo.labels.astype(np.int8), 10.0)
    write_boxes(tmp_path / "boxes.csv", choose_boxes(small_tomo.labels, 3, n_positive=6, n_negative=20, seed=2))
    assert main(["trainset", str(tmp_path / "pre.mrc"), "--boxes", str(tmp_path / "boxes.csv"), "--labels",
                 str(tmp_path / "labels.mrc"), "--value", "3", "--context", "2", "-o", str(tmp_path / "c.set")]) == 0
    assert load_trainset(tmp_path / "c.set").tiles.shape[1] == 5
    assert main(["train", str(tmp_path / "c.set"), "--epochs", "2", "--copies", "2", "-o", str(tmp_path / "c.model")]) == 0
    model = load_model(tmp_path / "c.model")
    assert model.net.config.context == 2 and model.net.config.to_dict()["context"] == 2
    assert main(["apply", str(tmp_path / "c.model"), str(tmp_path / "pre.mrc"), "--slices", "7",
                 "-o", str(tmp_path / "c.mrc")]) == 0
    whole = score_volume(model.net, model.amplitude, small_pre)
    np.testing.assert_allclose(np.asarray(read_volume(tmp_path / "c.mrc").data), whole, rtol=1e-5, atol=1e-6)
    capsys.readouterr()
    assert main(["trainset", str(tmp_path / "pre.mrc"), "--boxes", str(tmp_path / "boxes.csv"), "--labels",
                 str(tmp_path / "labels.mrc"), "--value", "3", "--context", "9", "-o", str(tmp_path / "d.set")]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--context must be an integer 0 to 8" in err
    assert not (tmp_path / "d.set").exists()
