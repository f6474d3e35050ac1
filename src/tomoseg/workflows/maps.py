"""What a volume given as a score map really is: a score map, a label map, or a tomogram.

Score maps (``apply``) are float32 with a ``tomoseg feature`` header label; label maps
(``merge``) are integers with ``tomoseg label K`` labels; preprocessed tomograms carry
``tomoseg preprocess``. Commands that expect a score map (pick, merge, consensus)
refuse the others rather than give a silently wrong result: a label map's labels
would all count as one feature, a tomogram's densities as scores.
"""

from __future__ import annotations

import os

import numpy as np

from tomoseg.errors import TomosegError
from tomoseg.io.mrc import Volume

Path_ = str | os.PathLike


def label_legend(vol: Volume) -> str:
    """``1=membrane, 2=ribosome`` from a label map's header (empty if it records none)."""
    found = []
    for k in range(1, 10):
        name = vol.label_value(f"label {k}")
        if name is not None:
            found.append(f"{k}={name}")
    return ", ".join(found)


def is_label_map(vol: Volume) -> bool:
    return vol.data.dtype.kind in "iu"


def require_score_map(path: Path_, vol: Volume, hint: str = "") -> None:
    """Raise TomosegError naming ``path`` if ``vol`` is a label map, a preprocessed tomogram or a
    consensus's spread or disagreement map rather than a score map. ``hint`` ends the message
    of a label map (e.g. how to pick one of its labels)."""
    if is_label_map(vol):
        legend = label_legend(vol)
        raise TomosegError(f"{path}: is a label map (integer values{': ' + legend if legend else ''}), not a "
                           f"score map{'; ' + hint if hint else ''}")
    kind = (vol.label_value("consensus") or "").split(" ")[0]
    if kind in ("spread", "disagreement"):
        raise TomosegError(f"{path}: is a consensus {kind} map, not a score map")
    if vol.label_value("preprocess") is not None and vol.label_value("feature") is None:
        raise TomosegError(f"{path}: is a preprocessed tomogram, not a score map (apply a model to it first)")


def label_scores(path: Path_, vol: Volume, label: int) -> np.ndarray:
    """A label map's voxels of ``label`` as a float32 score map to pick from: each voxel's distance
    (voxels) from the label's edge, so every voxel of the label scores >= 1 (threshold 1 keeps them
    all), 0 outside, and each piece peaks at its centre (where a blob pick goes, and from where
    touching pieces are split). Memory: a float64 distance map of the whole volume."""
    from scipy import ndimage

    if not is_label_map(vol):
        raise TomosegError(f"{path}: is not a label map (float values); a label is chosen only in a label map")
    data = np.asarray(vol.data)
    if data.dtype == np.int8:  # MRC mode 0 label maps: read as unsigned bytes
        data = data.view(np.uint8)
    mask = data == label
    if not mask.any():
        legend = label_legend(vol)
        raise TomosegError(f"{path}: has no voxel of label {label}" + (f" (its labels: {legend})" if legend else ""))
    return ndimage.distance_transform_edt(mask).astype(np.float32)
