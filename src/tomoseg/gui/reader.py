"""napari reader: MRC and OME-Zarr tomograms (and tomoseg score and label maps) as layers.

The voxel size from the header becomes the layer scale (A), so measurements
in the viewer are in Angstrom; the data stays memory-mapped. A file that
records no voxel size opens in pixels (scale 1), with a warning. An OME-Zarr folder (``.zarr``) opens at
its full-resolution level, read chunk by chunk as napari shows slices.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from tomoseg.errors import TomosegError, VoxelSizeMissing
from tomoseg.io.mrc import read_volume
from tomoseg.workflows.convert import layer_metadata

EXTENSIONS = (".mrc", ".mrcs", ".rec", ".map", ".st", ".ali", ".zarr")


def get_reader(path):
    """napari's reader hook: a function that reads ``path``, or None if it is not ours."""
    if isinstance(path, list):
        if not path:
            return None
        path = path[0]
    if not str(path).lower().rstrip("/").endswith(EXTENSIONS):
        return None
    return read_layers


def read_layers(path) -> list[tuple]:
    """LayerData tuples for one MRC file: an image, or labels for an integer label map."""
    paths = path if isinstance(path, list) else [path]
    layers = []
    for p in paths:
        calibrated = True
        try:
            try:
                vol = read_volume(p)
            except VoxelSizeMissing:
                vol, calibrated = read_volume(p, voxel_size=1.0), False
                warnings.warn(f"{p}: records no voxel size; shown in pixels", stacklevel=2)
        except TomosegError as err:
            raise ValueError(str(err)) from None
        scale = (vol.voxel_size,) * 3
        meta = layer_metadata(p, vol, calibrated)
        name = Path(p).stem
        if vol.data.dtype.kind in "iu" and vol.label_value("label 1") is not None:
            layers.append((np.asarray(vol.data).view(np.uint8), {"name": name, "scale": scale, "metadata": meta},
                           "labels"))
        else:
            layers.append((vol.data, {"name": name, "scale": scale, "metadata": meta, "colormap": "gray"}, "image"))
    return layers
