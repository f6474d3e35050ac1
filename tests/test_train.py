from dataclasses import replace

import numpy as np
import pytest
import torch

from tomoseg.errors import Cancelled, TomosegError
from tomoseg.nn.network import SegNet, init_weights
from tomoseg.steps.recipes import RECIPES, recipe
from tomoseg.steps.segment import score_volume
from tomoseg.steps.train import augmented_samples, copies_per_tile, l1_penalty, log_mse_loss, train
from tomoseg.types import TrainingSet


def test_loss_equals_the_formula():
    g = torch.Generator().manual_seed(0)
    out = torch.randn(4, 1, 8, 8, generator=g) * 2
    lab = torch.rand(4, 1, 8, 8, generator=g)
    expected = np.log(np.mean((lab.numpy() - np.minimum(1.0, out.numpy())) ** 2))
    assert float(log_mse_loss(out, lab)) == pytest.approx(expected, rel=1e-6)
    w = 1 + 5 * lab.numpy()  # positive_weight 6: label-1 pixels weigh 6, soft labels in between
    weighted = np.log(np.mean(w * (lab.numpy() - np.minimum(1.0, out.numpy())) ** 2))
    assert float(log_mse_loss(out, lab, positive_weight=6.0)) == pytest.approx(weighted, rel=1e-6)
    # outputs above 1 cost nothing on a label of 1
    assert float(log_mse_loss(torch.full((1, 1, 2, 2), 5.0), torch.ones(1, 1, 2, 2))) < -20


def test_l1_covers_kernels_not_biases():
    net = init_weights(SegNet(), 0)
    with torch.no_grad():
        net.conv3.bias.fill_(100.0)
    expected = sum(float(c.weight.detach().abs().sum()) for c in (net.conv1, net.conv3, net.conv4))
    assert float(l1_penalty(net)) == pytest.approx(expected, rel=1e-5)


def test_paper_recipe_is_the_paper():
    p = RECIPES["paper"]
    assert (p.optimizer, p.learning_rate, p.lr_decay, p.epochs, p.batch_size, p.l1) == ("sgd", 0.01, 0.9, 20, 20, 1e-5)
    assert (p.negative_copies, p.resample, p.flips) == (10, False, False)
    r = RECIPES["reference"]
    assert (r.optimizer, r.learning_rate, r.l1) == ("adam", 1e-4, 0.0)
    assert recipe("paper", epochs=3, seed=None).epochs == 3
    with pytest.raises(ValueError):
        recipe("nope")


def test_positives_are_copied_to_balance_the_negatives():
    assert copies_per_tile(10, 100, 10) == (100, 10)
    assert copies_per_tile(7, 100, 10) == (142, 10)
    assert copies_per_tile(200, 10, 2) == (1, 2)


def _toy_set(n_pos=2, n_neg=3):
    rng = np.random.default_rng(0)
    tiles = rng.normal(size=(n_pos + n_neg, 64, 64)).astype(np.float32)
    masks = np.zeros_like(tiles)
    masks[:n_pos, 20:40, 24:30] = 1
    return TrainingSet(tiles, masks, np.arange(n_pos + n_neg) < n_pos, np.zeros((n_pos + n_neg, 3), int),
                       "toy", 10.0)


def test_augmented_samples_have_the_expected_count_scale_and_label_size():
    ts = _toy_set()
    x, y = augmented_samples(ts, recipe("paper"), np.random.default_rng(0))
    assert x.shape == (2 * 15 + 3 * 10, 1, 64, 64) and y.shape == (60, 1, 32, 32)
    assert float(x.abs().max()) <= float(np.abs(ts.tiles).max()) / 3 + 1e-5  # inputs scaled by 1/3
    assert float(y[:30].sum()) > 0 and float(y[30:].sum()) == 0.0  # negatives stay empty
    assert 0.0 <= float(y.min()) and float(y.max()) <= 1.0


def test_short_training_separates_the_feature_from_background(particle_model, small_tomo, small_pre):
    scores = score_volume(particle_model.net, particle_model.amplitude, small_pre)
    on = scores[small_tomo.labels == 3]
    off = scores[small_tomo.labels == 0]
    assert particle_model.amplitude > 0
    assert particle_model.losses[-1] < particle_model.losses[0]
    assert np.median(on) > 3 * np.median(off) + 0.1
    # most of the particle voxels score above the median background by a wide margin
    assert np.mean(on > np.percentile(off, 95)) > 0.5


def test_training_is_reproducible(particle_trainset):
    cfg = recipe("default", epochs=1, negative_copies=1, seed=7)
    a, b = train(particle_trainset, cfg), train(particle_trainset, cfg)
    torch.testing.assert_close(a.net.conv3.weight, b.net.conv3.weight, rtol=0, atol=0)
    assert a.amplitude == b.amplitude and a.losses == b.losses


def test_training_can_be_cancelled(particle_trainset):
    def cancel(done, total, message=""):
        if done >= 2:
            raise Cancelled()

    with pytest.raises(Cancelled):
        train(particle_trainset, recipe("default", epochs=1), progress=cancel)


def test_training_without_positives_is_refused():
    ts = _toy_set(0, 3)
    with pytest.raises(TomosegError, match="no positive"):
        train(ts, recipe("default", epochs=1))


def _distance_from_start(result, seed: int) -> float:
    start = init_weights(SegNet(), seed)
    return float(torch.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(result.net.parameters(), start.parameters()))))


def test_clip_norm_bounds_every_step(particle_trainset):
    # plain SGD: each step moves the weights by lr * |clipped gradient| <= lr * clip_norm
    cfg = recipe("paper", epochs=1, negative_copies=1, seed=3, clip_norm=1e-3)
    pos, neg = copies_per_tile(particle_trainset.n_positive, particle_trainset.n_negative, 1)
    n = pos * particle_trainset.n_positive + neg * particle_trainset.n_negative
    bound = -(-n // cfg.batch_size) * cfg.learning_rate * cfg.clip_norm
    assert _distance_from_start(train(particle_trainset, cfg), 3) <= bound * 1.001
    unclipped = train(particle_trainset, replace(cfg, clip_norm=0.0))
    assert _distance_from_start(unclipped, 3) > 10 * bound
    with pytest.raises(ValueError, match="clip_norm"):
        replace(cfg, clip_norm=-1.0)


def test_fast_recipe_is_the_default_with_a_short_schedule():
    d, f = RECIPES["default"], RECIPES["fast"]
    assert (f.resample, f.flips, f.positive_weight, f.negative_copies) == (d.resample, d.flips, d.positive_weight,
                                                                          d.negative_copies)
    # the schedule measured in docs/accuracy-history.md ("A one-minute recipe")
    assert (f.optimizer, f.epochs, f.learning_rate, f.lr_decay, f.momentum, f.warmup, f.clip_norm) == (
        "sgd", 6, 0.005, 0.75, 0.9, 1.0, 5.0)


def test_the_command_line_trains_with_the_recipe_named_and_records_it(particle_trainset, tmp_path):
    """--recipe picks the recipe (the dock lists the same RECIPES: tests/gui); its name and every
    setting, with the flags that changed one, are recorded in the model."""
    from tomoseg.cli.main import main
    from tomoseg.io.model_file import load_model
    from tomoseg.io.trainset_file import save_trainset

    save_trainset(tmp_path / "p.set", particle_trainset)
    assert main(["train", str(tmp_path / "p.set"), "-o", str(tmp_path / "p.model"), "--recipe", "paper",
                 "--epochs", "1", "--copies", "1", "-q"]) == 0
    recorded = load_model(tmp_path / "p.model").training["config"]
    assert recorded == {**RECIPES["paper"].to_dict(), "epochs": 1, "negative_copies": 1}


@pytest.mark.slow
def test_several_training_sets_train_one_network_and_the_model_records_each(particle_trainset, tmp_path):
    from tomoseg.io.model_file import load_model
    from tomoseg.io.trainset_file import save_trainset
    from tomoseg.steps.preprocess import PreprocessConfig
    from tomoseg.workflows import train_file

    first = replace(particle_trainset, preprocessing=PreprocessConfig().to_dict(), source="tomo_a.mrc")
    half = slice(0, len(first.tiles) // 2)
    second = replace(first, tiles=first.tiles[half], masks=first.masks[half], positive=first.positive[half],
                     boxes=first.boxes[half], source="tomo_b.mrc")
    save_trainset(tmp_path / "a.set", first)
    save_trainset(tmp_path / "b.set", second)
    model = train_file([tmp_path / "a.set", tmp_path / "b.set"], tmp_path / "m.model",
                       recipe("default", epochs=1, negative_copies=1))
    record = load_model(tmp_path / "m.model").training["trainset"]
    assert record["path"] == [str(tmp_path / "a.set"), str(tmp_path / "b.set")]
    assert record["source"] == "tomo_a.mrc; tomo_b.mrc"
    assert record["n_positive"] == first.n_positive + second.n_positive
    assert [s["n_negative"] for s in record["sets"]] == [first.n_negative, second.n_negative]
    assert model.name == first.name

    # one set alone: the record is as it always was
    train_file(tmp_path / "a.set", tmp_path / "one.model", recipe("default", epochs=1, negative_copies=1))
    assert load_model(tmp_path / "one.model").training["trainset"]["path"] == str(tmp_path / "a.set")


@pytest.mark.parametrize("change, message", [
    ({"name": "membrane"}, "feature 'membrane'"),
    ({"voxel_size": 14.0}, "14 A per voxel"),
    ({"preprocessing": {"lowpass": 40.0, "highpass": 4000.0, "clamp": 3.0}}, "preprocessed otherwise"),
])
def test_training_sets_that_cannot_train_one_network_are_refused_in_one_line(particle_trainset, tmp_path, change,
                                                                             message, capsys):
    from tomoseg.cli.main import main
    from tomoseg.io.trainset_file import save_trainset
    from tomoseg.steps.preprocess import PreprocessConfig

    first = replace(particle_trainset, preprocessing=PreprocessConfig().to_dict())
    save_trainset(tmp_path / "a.set", first)
    save_trainset(tmp_path / "b.set", replace(first, **change))
    assert main(["train", str(tmp_path / "a.set"), str(tmp_path / "b.set"), "-o", str(tmp_path / "m.model")]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "training set 2" in err and "a.set" in err
    assert not (tmp_path / "m.model").exists()


def test_max_steps_bounds_the_epochs_and_fine_tuning_starts_from_the_given_network(particle_trainset):
    """The fine-tune recipe's cost bound: whole epochs, at most about max_steps minibatches; init=
    starts from a network's weights and leaves that network unchanged."""
    from tomoseg.errors import InvalidValue
    from tomoseg.nn.network import NetworkConfig

    config = recipe("default", epochs=5, negative_copies=1, seed=0)
    n_batches = -(-len(augmented_samples(particle_trainset, config, np.random.default_rng(0))[0]) // config.batch_size)
    assert len(train(particle_trainset, replace(config, max_steps=2 * n_batches + 1)).losses) == 2
    assert len(train(particle_trainset, replace(config, max_steps=1)).losses) == 1  # at least one epoch
    start = train(particle_trainset, replace(config, epochs=1))
    before = [p.detach().clone() for p in start.net.parameters()]
    tuned = train(particle_trainset, replace(config, epochs=1, learning_rate=1e-9), init=start.net)
    for a, b, c in zip(before, start.net.parameters(), tuned.net.parameters()):
        assert torch.equal(a, b)  # the network it started from is untouched
        assert torch.allclose(a, c, atol=1e-5)  # a vanishing learning rate keeps its weights: it started there
    with pytest.raises(InvalidValue, match="`init` is a network of another shape"):
        train(particle_trainset, config, init=init_weights(SegNet(NetworkConfig(channels=8)), 0))
