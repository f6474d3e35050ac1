"""napari writer: an image or labels layer saved as OME-Zarr (``.zarr``), MRC or TIFF, in Angstrom.

File > Save Selected Layer(s)... with a ``.zarr`` or ``.mrc`` name. The layer's scale is the voxel
size (isotropic, A, as the tomoseg reader and the dock set it); the origin is the one its file
recorded (``metadata["origin"]``, x y z, A) moved by the layer's translation; tomoseg's header
labels (a score map's feature, a merged map's legend) travel in ``metadata["labels"]``. Written slab
by slab (:func:`tomoseg.workflows.convert.save_volume`), atomically; OME-Zarr with a pyramid.
"""

from __future__ import annotations

import numpy as np

from tomoseg.errors import TomosegError


def layer_geometry(meta: dict) -> tuple[float, tuple[float, float, float], tuple[str, ...]]:
    """Voxel size (A), origin (x, y, z, A) and header labels of a layer from its attributes, or a
    ValueError in words: a layer without a known voxel size is not written with a made-up one."""
    metadata = meta.get("metadata") or {}
    if "voxel_size" in metadata and metadata["voxel_size"] is None:
        raise ValueError("the layer's file recorded no voxel size (it is shown in pixels): open it with one "
                         "(tomoseg convert --voxel-size, or a project) before saving it in Angstrom")
    scale = np.asarray(meta.get("scale", (1.0, 1.0, 1.0)), dtype=float)
    if scale.shape != (3,) or not np.allclose(scale, scale[0], rtol=1e-4) or scale[0] <= 0:
        raise ValueError(f"the layer's scale {tuple(scale)} is not one positive voxel size in 3D (z, y, x)")
    translate = np.asarray(meta.get("translate", (0.0, 0.0, 0.0)), dtype=float)
    origin = np.asarray(metadata.get("origin", (0.0, 0.0, 0.0)), dtype=float) + translate[::-1]
    labels = tuple(str(text) for text in metadata.get("labels", ()))
    return float(scale[0]), (float(origin[0]), float(origin[1]), float(origin[2])), labels


def write_volume_layer(path: str, data, meta: dict) -> list[str]:
    """napari's single-layer writer hook: writes ``data`` to ``path``; returns the written path."""
    from tomoseg.workflows.convert import save_volume

    if meta.get("multiscale"):
        data = data[0]
    if meta.get("rgb"):
        raise ValueError(f"{path}: an RGB layer is not a volume")
    voxel_size, origin, labels = layer_geometry(meta)
    try:
        save_volume(path, data, voxel_size, origin, labels, overwrite=True)  # napari's dialog asked already
    except TomosegError as err:
        raise ValueError(str(err)) from None
    return [str(path)]
