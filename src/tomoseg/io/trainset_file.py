"""Training-set files: tiles, masks and boxes in safetensors, provenance in JSON."""

from __future__ import annotations

import os

import numpy as np

from tomoseg.errors import TomosegError
from tomoseg.io import safetensors_file
from tomoseg.types import TrainingSet

FORMAT_VERSION = 1


def save_trainset(path: str | os.PathLike, trainset: TrainingSet) -> None:
    """Write a training set to ``path`` (exactly that path, atomically)."""
    arrays = {
        "tiles": trainset.tiles.astype(np.float32),
        "masks": trainset.masks.astype(np.uint8),
        "positive": trainset.positive.astype(np.uint8),
        "boxes": trainset.boxes.astype(np.int64),
    }
    meta = {
        "kind": "trainset",
        "format_version": FORMAT_VERSION,
        "name": trainset.name,
        "voxel_size": trainset.voxel_size,
        "preprocessing": trainset.preprocessing,
        "source": trainset.source,
    }
    safetensors_file.save(path, arrays, meta)


def load_trainset(path: str | os.PathLike) -> TrainingSet:
    """Read a training set written by :func:`save_trainset`."""
    arrays, meta = safetensors_file.load(path, "trainset")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise TomosegError(f"{path}: written by a newer tomoseg (format {meta['format_version']})")
    try:
        return TrainingSet(
            tiles=arrays["tiles"].astype(np.float32),
            masks=arrays["masks"].astype(np.float32),
            positive=arrays["positive"].astype(bool),
            boxes=arrays["boxes"].astype(np.int64),
            name=str(meta["name"]),
            voxel_size=float(meta["voxel_size"]),
            preprocessing=meta.get("preprocessing"),
            source=str(meta.get("source", "")),
        )
    except (KeyError, ValueError) as err:
        raise TomosegError(f"{path}: incomplete training set ({err})") from None
