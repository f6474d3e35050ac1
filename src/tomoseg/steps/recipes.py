"""Training recipes: how to train one feature's network (METHOD.md section 4).

A :class:`TrainConfig` is a recipe. ``RECIPES["paper"]`` is the paper exactly
(SGD, batch 20, 20 epochs, lr 0.01 x0.9 per epoch, L1 1e-5, fixed rotated
copies: each negative 10 times, positives balanced); ``"reference"`` is later
EMAN2 (Adam 1e-4, no L1); ``"default"`` is tomoseg's own, chosen by measurement
(docs/accuracy.md); ``"fine-tune"`` continues an existing network on an enlarged set
(``train --init``: 8 epochs, at most 300 minibatches, at half the learning rate); ``"fast"`` trains in about a minute on 2 CPU cores (600 instead of
2,000 steps, with momentum and gradient clipping), at the cost of a lower Dice at threshold 1
on compact particles such as ribosomes (docs/accuracy-history.md, "A one-minute recipe").

No torch here, so the CLI and the napari dock can list the recipes without loading it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Literal

from tomoseg.errors import InvalidValue


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Every CLI flag of ``tomoseg train`` maps to one field.

    optimizer: "sgd" (with ``momentum``; the paper: none) or "adam". learning_rate: of the first
    epoch, multiplied by lr_decay after each epoch. l1: L1 decay on the kernels
    (not the biases). negative_copies: rotated copies of each negative tile;
    positives get ``negative_copies * n_neg // n_pos`` copies (about as many
    positive as negative samples). resample: draw new random rotations every
    epoch instead of fixing the copies once. flips: also mirror at random.
    warmup: epochs of linear learning-rate ramp. clip_norm: gradients with a larger
    norm (all parameters together) are scaled down to it before each step; 0: off.
    imaging_jitter: strength of the augmentation that imitates other imaging conditions (contrast,
    blur or sharpening, noise, offset per sample; :mod:`tomoseg.ops.augment`); 0: off (the paper
    only rotates). max_steps: fewer epochs where the set is large, so that at most about this many
    minibatches run (whole epochs, at least one); 0: all ``epochs`` (a cost bound for fine-tuning).
    """

    recipe: str = "custom"
    optimizer: Literal["sgd", "adam"] = "sgd"
    learning_rate: float = 0.01
    momentum: float = 0.0
    lr_decay: float = 0.9
    epochs: int = 20
    batch_size: int = 20
    l1: float = 1e-5
    negative_copies: int = 10
    resample: bool = False
    flips: bool = False
    positive_weight: float = 1.0
    clip_negatives: bool = True
    warmup: float = 0.0
    clip_norm: float = 0.0
    imaging_jitter: float = 0.0
    max_steps: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.optimizer not in ("sgd", "adam"):
            raise InvalidValue(f"`optimizer` must be 'sgd' or 'adam', got {self.optimizer!r}")
        for name in ("epochs", "batch_size", "negative_copies"):
            if getattr(self, name) < 1:
                raise InvalidValue(f"`{name}` must be >= 1, got {getattr(self, name)}")
        if self.clip_norm < 0:
            raise InvalidValue(f"`clip_norm` must be >= 0, got {self.clip_norm}")
        if self.imaging_jitter < 0:
            raise InvalidValue(f"`imaging_jitter` must be >= 0, got {self.imaging_jitter}")
        if self.max_steps < 0:
            raise InvalidValue(f"`max_steps` must be >= 0, got {self.max_steps}")
        if self.warmup < 0:
            raise InvalidValue(f"`warmup` must be >= 0, got {self.warmup}")
        if not self.learning_rate > 0:
            raise InvalidValue(f"`learning_rate` must be > 0, got {self.learning_rate}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


_DEFAULT = TrainConfig(recipe="default", resample=True, flips=True, positive_weight=3.0)

FINE_TUNE_EPOCHS = 8
"""Epochs of the ``fine-tune`` recipe (``train --init``): the default recipe at half its learning rate
for 8 epochs from the existing network's weights, at most :data:`FINE_TUNE_STEPS` minibatches (measured
against 4 epochs and against training afresh: docs/accuracy.md, "Where to click next")."""

FINE_TUNE_STEPS = 300
"""The fine-tune recipe's bound on minibatches: 8 epochs of a set of up to ~40 tiles (the loop's sets),
fewer epochs on larger sets, so that a round costs at most about 30 s on 2 cores."""

#: The named recipes, the default first (the CLI and the napari dock list them in this order).
RECIPES: dict[str, TrainConfig] = {
    "default": _DEFAULT,
    "fast": replace(
        _DEFAULT,
        recipe="fast",
        epochs=6,
        momentum=0.9,
        learning_rate=0.005,
        lr_decay=0.75,
        warmup=1.0,
        clip_norm=5.0,
    ),
    "fine-tune": replace(_DEFAULT, recipe="fine-tune", epochs=FINE_TUNE_EPOCHS, learning_rate=0.005,
                         max_steps=FINE_TUNE_STEPS),
    "paper": TrainConfig(recipe="paper"),
    "reference": TrainConfig(recipe="reference", optimizer="adam", learning_rate=1e-4, lr_decay=1.0, l1=0.0),
}


def recipe(name: str, **overrides: object) -> TrainConfig:
    """A named recipe with some fields replaced (``None`` values are ignored)."""
    if name not in RECIPES:
        raise InvalidValue(f"unknown `recipe` {name!r}; choose one of {', '.join(RECIPES)}")
    return replace(RECIPES[name], **{k: v for k, v in overrides.items() if v is not None})
