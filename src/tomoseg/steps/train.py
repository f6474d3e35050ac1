"""Training one feature's network (METHOD.md sections 2 and 4).

The recipes (:class:`~tomoseg.steps.recipes.TrainConfig`, ``RECIPES``, ``recipe``) live in
:mod:`tomoseg.steps.recipes`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from tomoseg.errors import InvalidValue, TomosegError
from tomoseg.nn.network import INPUT_SCALE, NetworkConfig, SegNet, init_weights
from tomoseg.nn.spectral import spectral_forward
from tomoseg.ops.augment import imaging_jitter
from tomoseg.ops.tiles import flip_pairs, reduce_masks, rotate_pairs
from tomoseg.progress import Progress, report
from tomoseg.steps.calibrate import level_from_histogram, score_histogram
from tomoseg.steps.recipes import RECIPES, TrainConfig
from tomoseg.types import TrainingSet

if TYPE_CHECKING:
    from tomoseg.nn.model import Model

__all__ = [
    "TrainResult", "augmented_samples", "copies_per_tile", "l1_penalty", "learning_rate_factor", "log_mse_loss",
    "network_amplitude", "train",
]


@dataclass(frozen=True)
class TrainResult:
    """A trained network and what training recorded.

    amplitude: mean network output, clamp(y, 0, 1), over the positive label pixels of the
    training tiles; applied scores are divided by it. losses: mean loss per
    epoch. examples: a few (tile, label, output) triplets, float32 (K, ...). level: Otsu level
    of the scores on all training tiles (:mod:`tomoseg.steps.calibrate`; None if nearly nothing scores).
    """

    net: SegNet
    amplitude: float
    losses: list[float]
    examples: dict[str, np.ndarray]
    level: float | None = None


def log_mse_loss(
    output: torch.Tensor, label: torch.Tensor, positive_weight: float = 1.0, clip_negatives: bool = True
) -> torch.Tensor:
    """The paper's loss: ``ln(mean((label - min(1, output))^2))`` over the batch.

    With ``positive_weight`` w != 1 each squared residual is weighted by
    ``1 + (w - 1) * label``. With ``clip_negatives=False`` the output is
    ``min(1, y) + (1 - label) * max(0, y - 1)``: clipped on the feature,
    not on the background.
    """
    clipped = torch.clamp(output, max=1.0)
    if not clip_negatives:
        clipped = clipped + (1.0 - label) * torch.relu(output - 1.0)
    squared = (label - clipped) ** 2
    if positive_weight != 1.0:
        squared = squared * (1.0 + (positive_weight - 1.0) * label)
    return torch.log(torch.mean(squared).clamp_min(1e-12))


def l1_penalty(net: SegNet) -> torch.Tensor:
    """Sum of absolute kernel values (biases excluded)."""
    return sum(w.abs().sum() for w in net.kernels())


def copies_per_tile(n_positive: int, n_negative: int, negative_copies: int) -> tuple[int, int]:
    """(positive copies, negative copies) so that both classes are about equal."""
    if n_negative == 0:
        return negative_copies, 0
    return max(1, negative_copies * n_negative // n_positive), negative_copies


def augmented_samples(
    trainset: TrainingSet, config: TrainConfig, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotated (and optionally mirrored, and imaged otherwise: ``config.imaging_jitter``) copies of every
    tile with its mask.

    Returns inputs (M, 2K + 1, S, S) scaled by 1/3 (K: the set's slab context) and labels (M, 1, S/2, S/2)
    (masks reduced 2 x 2 by block mean).
    """
    pos_copies, neg_copies = copies_per_tile(
        trainset.n_positive, trainset.n_negative, config.negative_copies
    )
    repeats = np.where(trainset.positive, pos_copies, neg_copies)
    index = np.repeat(np.arange(len(repeats)), repeats)
    tiles = torch.from_numpy(trainset.inputs(index) * INPUT_SCALE)
    masks = torch.from_numpy(trainset.masks[index]).unsqueeze(1)
    tiles, masks = rotate_pairs(tiles, masks, rng.uniform(0.0, 360.0, size=len(index)))
    if config.flips:
        tiles, masks = flip_pairs(tiles, masks, rng.random(len(index)) < 0.5)
    if config.imaging_jitter > 0:
        tiles = imaging_jitter(tiles, config.imaging_jitter, rng, unit=INPUT_SCALE)
    return tiles.contiguous(), reduce_masks(masks).contiguous()


def learning_rate_factor(step: int, steps_per_epoch: int, config: TrainConfig) -> float:
    """Learning rate at minibatch ``step`` (from 0) relative to ``config.learning_rate``:
    ``lr_decay ** epoch``, times a linear ramp over the first ``warmup`` epochs."""
    factor = config.lr_decay ** (step // steps_per_epoch)
    ramp = config.warmup * steps_per_epoch
    if ramp > 0:
        factor *= min(1.0, (step + 1) / ramp)
    return factor


def _optimizer(net: SegNet, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    return torch.optim.SGD(net.parameters(), lr=config.learning_rate, momentum=config.momentum)


@torch.no_grad()
def network_amplitude(net: SegNet, trainset: TrainingSet) -> float:
    """Mean network output over the positive label pixels of the training tiles.

    The output is taken as in training, ``min(1, y)``, and as in applying,
    ``max(0, y)``: ``clamp(y, 0, 1)``. Positive label pixels are those of the
    2 x 2-reduced masks that hold any of the feature (> 0). Applied scores are
    divided by this, so a voxel scoring 1 looks like an average training positive.
    """
    pos = trainset.positive
    tiles = torch.from_numpy(trainset.inputs(pos) * INPUT_SCALE)
    labels = reduce_masks(torch.from_numpy(trainset.masks[pos]).unsqueeze(1))
    output = spectral_forward(net, tiles).clamp(0.0, 1.0)
    return float(output[labels > 0].mean())


def train(
    trainset: TrainingSet,
    config: TrainConfig = RECIPES["default"],
    network: NetworkConfig = NetworkConfig(),
    progress: Progress | None = None,
    device: torch.device | str = "cpu",
    on_epoch: Callable[[int, float], None] | None = None,
    init: SegNet | None = None,
) -> TrainResult:
    """Train one network on a training set. Seeded: same inputs, same weights
    (on the same machine and device). The returned network is on the CPU.

    ``init``: start from this network's weights (fine-tuning; left unchanged) instead of the
    seeded initialisation; it must have the shape ``network`` and the set's context give.

    Reports progress once per minibatch; the progress callback may raise
    :class:`~tomoseg.errors.Cancelled` to stop. ``on_epoch(epoch, mean_loss)``
    is called after each epoch (a live loss curve).
    """
    if trainset.n_positive == 0:
        raise TomosegError(f"training set {trainset.name!r} has no positive tile")
    if trainset.tile_size % network.pool:
        raise TomosegError(f"tile size {trainset.tile_size} is not divisible by {network.pool}")
    network = replace(network, context=trainset.context)  # the set's tiles decide the network's input
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    if init is None:
        net = init_weights(SegNet(network), config.seed).to(device)
    elif init.config != network:
        raise InvalidValue(f"`init` is a network of another shape ({init.config}) than this training "
                           f"makes ({network}): fine-tune only a network of the same layers and context")
    else:
        net = copy.deepcopy(init).train().to(device)
    optimizer = _optimizer(net, config)
    inputs, labels = augmented_samples(trainset, config, rng)
    n_batches = -(-len(inputs) // config.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(step, n_batches, config)
    )
    epochs = config.epochs if not config.max_steps else max(1, min(config.epochs, config.max_steps // n_batches))
    total = epochs * n_batches
    losses: list[float] = []
    for epoch in range(epochs):
        if config.resample and epoch > 0:
            inputs, labels = augmented_samples(trainset, config, rng)
        inputs, labels = inputs.to(device), labels.to(device)
        order = torch.from_numpy(rng.permutation(len(inputs)))
        epoch_loss = 0.0
        for b in range(n_batches):
            idx = order[b * config.batch_size : (b + 1) * config.batch_size]
            output = spectral_forward(net, inputs[idx])
            loss = log_mse_loss(output, labels[idx], config.positive_weight, config.clip_negatives)
            objective = loss + config.l1 * l1_penalty(net) if config.l1 > 0 else loss
            optimizer.zero_grad(set_to_none=True)
            objective.backward()
            if config.clip_norm > 0:
                torch.nn.utils.clip_grad_norm_(net.parameters(), config.clip_norm)
            optimizer.step()
            scheduler.step()
            epoch_loss += float(loss.detach()) * len(idx)
            report(progress, epoch * n_batches + b + 1, total, f"epoch {epoch + 1}/{epochs}")
        losses.append(epoch_loss / len(inputs))
        if on_epoch is not None:
            on_epoch(epoch + 1, losses[-1])

    net = net.cpu().eval()
    amplitude = network_amplitude(net, trainset)
    if not amplitude > 0:
        raise TomosegError(
            f"training of {trainset.name!r} failed: the network's output is zero on every "
            "positive pixel (try more epochs, another seed, or check the masks)"
        )
    return TrainResult(net=net, amplitude=amplitude, losses=losses, examples=_examples(net, trainset),
                       level=tile_level(net, amplitude, trainset))


def check_init(init: Model, trainset: TrainingSet, tolerance: float = 0.01, name: str | None = None) -> None:
    """Refuse (ValueError) to fine-tune ``init`` on ``trainset`` unless it is the same feature on the
    same scale: feature name, slab context, voxel size (within ``tolerance``, relative) and
    preprocessing (band-pass, clamp, contrast; unknown only with unknown), as :func:`combine_trainsets`
    asks of sets that train one network. ``name``: the feature the new network is for, when not the set's."""
    from tomoseg.steps.preprocess import PreprocessConfig

    feature = name or trainset.name
    if init.name != feature:
        raise InvalidValue(f"the network is of feature {init.name!r}, the training set of {feature!r}: "
                           "fine-tune a network of the same feature")
    if init.net.config.context != trainset.context:
        raise InvalidValue(f"the network takes slab context {init.net.config.context}, the training set has "
                           f"{trainset.context}")
    if abs(init.voxel_size - trainset.voxel_size) > tolerance * trainset.voxel_size:
        raise InvalidValue(f"the network was trained at {init.voxel_size:g} A per voxel, the training set is at "
                           f"{trainset.voxel_size:g} A")
    a = None if init.preprocessing is None else PreprocessConfig.from_dict(init.preprocessing)
    b = None if trainset.preprocessing is None else PreprocessConfig.from_dict(trainset.preprocessing)
    if (a is None) != (b is None) or (a is not None and (not a.same_filters(b) or a.invert != b.invert)):
        raise InvalidValue(f"the network was trained on a tomogram preprocessed otherwise ({a.describe() if a else 'unknown'}) "
                           f"than the training set's ({b.describe() if b else 'unknown'})")


@torch.no_grad()
def tile_level(net: SegNet, amplitude: float, trainset: TrainingSet, batch: int = 64) -> float | None:
    """The level (:func:`tomoseg.steps.calibrate.level_of`) of the network's applied scores,
    ``max(0, y) / amplitude``, over every training tile (positives and negatives, at the output grid)."""
    counts = 0
    for start in range(0, len(trainset.tiles), batch):
        x = torch.from_numpy(trainset.inputs(slice(start, start + batch)) * INPUT_SCALE)
        counts = counts + score_histogram(spectral_forward(net, x).relu_().div_(amplitude).numpy())
    return level_from_histogram(counts)


@torch.no_grad()
def _examples(net: SegNet, trainset: TrainingSet, count: int = 4) -> dict[str, np.ndarray]:
    """A few positive (tile, label, output) triplets for a visual check."""
    index = np.flatnonzero(trainset.positive)[:count]
    tiles = torch.from_numpy(trainset.inputs(index) * INPUT_SCALE)
    labels = reduce_masks(torch.from_numpy(trainset.masks[index]).unsqueeze(1))
    output = spectral_forward(net, tiles).clamp(max=1.0)
    return {
        "tiles": trainset.middle(index).astype(np.float32),
        "labels": labels[:, 0].numpy().astype(np.float32),
        "outputs": output[:, 0].numpy().astype(np.float32),
    }
