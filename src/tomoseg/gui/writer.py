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


def layer_geometry(path: str, meta: dict) -> tuple[float, tuple[float, float, float], tuple[str, ...]]:
    """Voxel size (A), origin (x, y, z, A) and header labels of a layer from its attributes, or a
    ValueError naming ``path``: a layer without a known voxel size is not written with a made-up one
    (a file that recorded none; a layer at scale 1 that no tomoseg reader or dock made)."""
    metadata = meta.get("metadata") or {}
    scale = np.asarray(meta.get("scale", (1.0, 1.0, 1.0)), dtype=float)
    unknown = metadata.get("voxel_size", "none given") is None or ("voxel_size" not in metadata and np.all(scale == 1))
    if unknown:
        raise ValueError(f"{path}: the layer has no voxel size (shown in pixels): give it one (the layer's scale "
                         f"in A, or tomoseg convert --voxel-size) before saving it in Angstrom")
    if scale.shape != (3,) or not np.allclose(scale, scale[0], rtol=1e-4) or not scale[0] > 0:
        raise ValueError(f"{path}: the layer's scale ({', '.join(f'{v:g}' for v in scale)}) is not one positive "
                         f"voxel size in 3D (z, y, x)")
    for transform in ("rotate", "shear", "affine"):
        value = meta.get(transform)
        if value is not None and not _identity(transform, value):
            raise ValueError(f"{path}: the layer is {transform}d; a volume file keeps only a voxel size and an origin")
    translate = np.asarray(meta.get("translate", (0.0, 0.0, 0.0)), dtype=float)
    origin = np.asarray(metadata.get("origin", (0.0, 0.0, 0.0)), dtype=float) + translate[::-1]
    labels = tuple(str(text) for text in metadata.get("labels", ()))
    return float(scale[0]), (float(origin[0]), float(origin[1]), float(origin[2])), labels


def _identity(transform: str, value) -> bool:
    value = np.asarray(value, dtype=float)
    if transform == "shear":
        return bool(np.allclose(value, 0))
    return bool(np.allclose(value, np.eye(value.shape[0]))) if value.ndim == 2 else False


def write_volume_layer(path: str, data, meta: dict) -> list[str]:
    """napari's single-layer writer hook: writes ``data`` to ``path``; returns the written path."""
    from tomoseg.workflows.convert import save_volume

    if meta.get("multiscale"):
        data = data[0]
    if meta.get("rgb"):
        raise ValueError(f"{path}: an RGB layer is not a volume")
    voxel_size, origin, labels = layer_geometry(path, meta)
    source = (meta.get("metadata") or {}).get("path")
    try:  # napari's dialog asked about replacing already; never the layer's own file
        save_volume(path, data, voxel_size, origin, labels, overwrite=True, inputs=(source,) if source else ())
    except TomosegError as err:
        raise ValueError(str(err)) from None
    return [str(path)]
