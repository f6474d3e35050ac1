"""What a volume given as a score map really is: a score map, a label map, or a tomogram.

Score maps (``apply``) are float32 with a ``tomoseg feature`` header label; label maps
(``merge``) are integers with ``tomoseg label K`` labels; preprocessed tomograms carry
``tomoseg preprocess``. Commands that expect a score map (pick, merge, consensus)
refuse the others rather than give a silently wrong result: a label map's labels
would all count as one feature, a tomogram's densities as scores.
"""

from __future__ import annotations

import numpy as np

from tomoseg.errors import TomosegError, about
from tomoseg.io.mrc import Volume, read_volume
from tomoseg.io.pages import read_slab
from tomoseg.steps.calibrate import calibration_scale, level_from_histogram, score_histogram
from tomoseg.types import Path_


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


def calibration_scale_of(path: Path_, vol: Volume | None = None, slices_per_batch: int = 16) -> tuple[float, str]:
    """What the score map at ``path`` is divided by to be on its network's training scale
    (:mod:`tomoseg.steps.calibrate`): its level (streamed over slabs) over the network's level on its
    training tiles, which ``apply`` wrote in the header. Returns (scale, one line saying so). Raises
    TomosegError naming the file when the header records no level (a model trained before levels
    were recorded: train it again) or the map has nothing to calibrate on."""
    vol = read_volume(path) if vol is None else vol
    require_score_map(path, vol)
    recorded = vol.label_value("level")
    if recorded is None:
        raise TomosegError(f"{path}: records no training level to calibrate with (made by a model trained "
                           "before tomoseg recorded it: train the model again, then apply it)")
    try:
        reference = float(recorded)
    except ValueError:
        raise TomosegError(f"{path}: its header's training level {recorded!r} is not a number") from None
    counts = 0
    for z0 in range(0, vol.data.shape[0], slices_per_batch):
        counts = counts + score_histogram(read_slab(vol.data, z0, min(vol.data.shape[0], z0 + slices_per_batch)))
    level = level_from_histogram(counts)
    with about(path):
        scale = calibration_scale(level, reference)
    return scale, (f"{path}: calibrated: scores divided by {scale:.3g} (level {level:.3g} here, "
                   f"{reference:.3g} on the training tiles)")
