"""Shared fixtures: small generated tomograms and one quickly trained model."""

from __future__ import annotations

import pytest
import torch

from tomoseg.steps.preprocess import PreprocessConfig, preprocess
from tomoseg.steps.recipes import recipe
from tomoseg.steps.train import train
from tomoseg.steps.trainset import choose_boxes, make_trainset
from tomoseg.testing import make_tomogram

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def small_tomo():
    """A (32, 128, 128) synthetic tomogram at 10 A with labels (seed 3)."""
    return make_tomogram((32, 128, 128), voxel_size=10.0, seed=3, n_particles=14, snr=1.0)


@pytest.fixture(scope="session")
def small_pre(small_tomo):
    return preprocess(small_tomo.volume, small_tomo.voxel_size, PreprocessConfig())


@pytest.fixture(scope="session")
def particle_trainset(small_tomo, small_pre):
    boxes = choose_boxes(small_tomo.labels, 3, n_positive=8, n_negative=40, seed=1)
    labels = small_tomo.labels
    return make_trainset(small_pre, boxes, lambda z: labels[z] == 3, "particle", small_tomo.voxel_size)


@pytest.fixture(scope="session")
def particle_model(particle_trainset):
    """A network trained briefly on the particle training set (a few seconds)."""
    return train(particle_trainset, recipe("default", epochs=8, negative_copies=3, seed=0))
