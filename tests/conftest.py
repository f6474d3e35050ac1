"""Shared fixtures: small generated tomograms and one quickly trained model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tomoseg.steps.preprocess import PreprocessConfig, preprocess
from tomoseg.steps.recipes import recipe
from tomoseg.steps.train import train
from tomoseg.steps.trainset import choose_boxes, make_trainset
from tomoseg.testing import make_tomogram

torch.set_num_threads(2)

SHARED_DATA = Path(os.environ.get("TOMOSEG_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
"""The project's shared data (real crops, simulations): ``TOMOSEG_SHARED_DATA``, else ``../shared/data``
beside the checkout. Tests that need it skip, saying where to put it, when it is not there."""


@pytest.fixture(scope="session")
def shared_data():
    """``shared_data("real/x.mrc")``: the path of a file of the shared data, or skip the test saying where
    the data should be."""

    def find(relative: str) -> Path:
        path = SHARED_DATA / relative
        if not path.exists():
            pytest.skip(f"shared data {relative} not found under {SHARED_DATA}: put the project's shared/data "
                        "there (beside the checkout) or set TOMOSEG_SHARED_DATA=/path/to/shared/data")
        return path

    return find


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


@pytest.fixture
def write_ngff05():
    """Writes NGFF 0.5 stores with ngff-zarr (skips without it): ``write_ngff05(path, data, voxel_size, ...)``."""
    pytest.importorskip("ngff_zarr")
    return _write_ngff05


def _write_ngff05(path, data, voxel_size, translation_zyx=(0.0, 0.0, 0.0), levels=1, chunks=16):
    """An NGFF 0.5 (zarr v3) image written by ngff-zarr, as other tools write them."""
    nz = pytest.importorskip("ngff_zarr")
    image = nz.to_ngff_image(data, dims=["z", "y", "x"], scale=dict.fromkeys("zyx", voxel_size),
                             translation=dict(zip("zyx", translation_zyx)),
                             axes_units=dict.fromkeys("zyx", "angstrom"))
    multiscales = nz.to_multiscales(image, scale_factors=[2**k for k in range(1, levels)], chunks=chunks,
                                    method=nz.Methods.ITKWASM_BIN_SHRINK)
    nz.to_ngff_zarr(str(path), multiscales, version="0.5")
    assert (path / "zarr.json").exists() and not (path / ".zattrs").exists()  # zarr v3 indeed
    return path
