"""Model files: weights in safetensors, config and provenance in JSON metadata.

Never unpickles anything: a model file can come from anyone.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from tomoseg.errors import TomosegError
from tomoseg.io import safetensors_file
from tomoseg.nn.model import FORMAT_VERSION, Model
from tomoseg.nn.network import NetworkConfig, SegNet


def save_model(path: str | os.PathLike, model: Model) -> None:
    """Write ``model`` to ``path`` (exactly that path, atomically)."""
    arrays = {f"net.{k}": v.detach().cpu().numpy() for k, v in model.net.state_dict().items()}
    arrays.update({f"examples.{k}": v for k, v in model.examples.items()})
    meta = {
        "kind": "model",
        "format_version": FORMAT_VERSION,
        "name": model.name,
        "colour": model.colour,
        "network": model.net.config.to_dict(),
        "amplitude": model.amplitude,
        "voxel_size": model.voxel_size,
        "preprocessing": model.preprocessing,
        "training": model.training,
    }
    if model.level is not None:
        meta["level"] = model.level
    safetensors_file.save(path, arrays, meta)


def load_model(path: str | os.PathLike) -> Model:
    """Read a model written by :func:`save_model`; checks the weights' shapes."""
    arrays, meta = safetensors_file.load(path, "model")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise TomosegError(f"{path}: written by a newer tomoseg (format {meta['format_version']})")
    try:
        net = SegNet(NetworkConfig.from_dict(meta["network"]))
        state = {k[4:]: torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith("net.")}
        net.load_state_dict(state, strict=True)
        amplitude = float(meta["amplitude"])
        voxel_size = float(meta["voxel_size"])
    except (KeyError, ValueError, TypeError, RuntimeError) as err:
        raise TomosegError(f"{path}: incomplete or inconsistent model ({str(err).splitlines()[0]})") from None
    net.eval()
    return Model(
        net=net,
        amplitude=amplitude,
        name=str(meta.get("name", "feature")),
        voxel_size=voxel_size,
        preprocessing=meta.get("preprocessing"),
        training=meta.get("training", {}),
        examples={k[9:]: v for k, v in arrays.items() if k.startswith("examples.")},
        colour=meta.get("colour"),
        level=None if meta.get("level") is None else float(meta["level"]),
    )
