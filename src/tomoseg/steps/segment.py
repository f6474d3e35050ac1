"""Applying trained networks to whole slices (METHOD.md section 5)."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from tomoseg.errors import InvalidValue
from tomoseg.nn.engines import Engine, OverlapSaveEngine
from tomoseg.nn.network import INPUT_SCALE, SegNet
from tomoseg.ops import dihedral
from tomoseg.ops.context import with_context
from tomoseg.progress import Progress, report


def prepare_slices(slices: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """Preprocessed (z, y, x) slices, or (z, 2K + 1, y, x) slices with their context
    (:func:`slices_with_context`), as the network's input (z, 1 or 2K + 1, y', x').

    Scaled by 1/3; odd sizes are zero-padded by one pixel (the network's own
    boundary). Raises ValueError if the slices hold NaN or infinity.
    """
    if not np.isfinite(slices).all():
        raise InvalidValue("the slices contain NaN or infinite values")
    ny, nx = slices.shape[-2:]
    array = np.asarray(slices, dtype=np.float32)
    x = torch.as_tensor(array if array.flags.writeable else array.copy(), device=device)
    x = (x.unsqueeze(1) if x.ndim == 3 else x) * INPUT_SCALE
    return F.pad(x, (0, nx % 2, 0, ny % 2)) if (nx % 2 or ny % 2) else x


def check_tta(tta: int) -> None:
    """``tta`` must be 1 to 8 (:mod:`tomoseg.ops.dihedral`); else ValueError naming it."""
    if not (isinstance(tta, int) and 1 <= tta <= dihedral.COUNT):
        raise InvalidValue(f"`tta` must be 1 to {dihedral.COUNT} (rotations by 90 degrees and flips), got {tta}")


@torch.no_grad()
def score_prepared(
    net: SegNet, amplitude: float, x: torch.Tensor, shape: tuple[int, int], engine: Engine, tta: int = 1
) -> np.ndarray:
    """Scores of prepared slices ``x``: ReLU, divided by ``amplitude``, upsampled x2
    (bilinear) and cropped to ``shape`` (y, x). Returns float32 (z, y, x).

    ``tta``: the mean over the first ``tta`` of the 8 symmetries of the slice grid
    (:mod:`tomoseg.ops.dihedral`), each undone after scoring; 1 is the plain map. ``x`` has even
    sizes (:func:`prepare_slices`), so the network's 2 x 2 pooling grid maps onto itself under
    every symmetry and each term is the same network on a turned slice, exactly.
    """
    check_tta(tta)
    y = torch.relu_(engine(net, x))
    for i in range(1, tta):
        y += _turned(net, x, i, engine)
    return _full_size(y.div_(amplitude * tta), shape)


def _turned(net: SegNet, x: torch.Tensor, i: int, engine: Engine) -> torch.Tensor:
    """The network's ReLU'd output on symmetry ``i`` of the slices, turned back."""
    return dihedral.undo(torch.relu_(engine(net, dihedral.transform(x, i).contiguous())), i)


def _full_size(y: torch.Tensor, shape: tuple[int, int]) -> np.ndarray:
    """Network outputs (z, 1, y/2, x/2) upsampled x2 (bilinear), cropped to ``shape``: float32 (z, y, x)."""
    y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
    return np.ascontiguousarray(y[:, 0, : shape[0], : shape[1]].cpu().numpy(), dtype=np.float32)


def score_symmetries(net: SegNet, amplitude: float, slices: np.ndarray, count: int, engine: Engine | None = None,
                     device: torch.device | str = "cpu") -> np.ndarray:
    """The scores of :func:`score_slices` under each of the first ``count`` symmetries of the slice
    grid separately (each turned back): float32 (count, z, y, x); their mean is ``tta=count``.
    Where they differ the network is unsure (:mod:`tomoseg.steps.suggest`, "disagree")."""
    check_tta(count)
    engine = engine or OverlapSaveEngine()
    net = net.to(device).eval()
    x = _checked_input(net, slices, device)
    maps = [_full_size(torch.relu_(engine(net, x)).div_(amplitude), slices.shape[-2:])]
    for i in range(1, count):
        maps.append(_full_size(_turned(net, x, i, engine).div_(amplitude), slices.shape[-2:]))
    return np.stack(maps)


def _checked_input(net: SegNet, slices: np.ndarray, device: torch.device | str) -> torch.Tensor:
    x = prepare_slices(slices, device)
    if x.shape[1] != net.config.inputs:
        raise InvalidValue(f"the network takes {net.config.inputs} slice(s) per output slice (slab context "
                         f"{net.config.context}), got {x.shape[1]}")
    return x


def score_slices(
    net: SegNet,
    amplitude: float,
    slices: np.ndarray,
    engine: Engine | None = None,
    device: torch.device | str = "cpu",
    tta: int = 1,
) -> np.ndarray:
    """Normalised score of every pixel of a stack of slices.

    ``slices``: preprocessed (z, y, x) array, or (z, 2K + 1, y, x) with each slice's context for a
    network with slab context K (:func:`slices_with_context`). Each slice is scaled by 1/3, run
    through the network, ReLU'd, divided by ``amplitude`` (so on-feature pixels
    score about 1) and upsampled x2 (bilinear) back to (y, x).
    Returns float32 (z, y, x).
    """
    net = net.to(device).eval()
    x = _checked_input(net, slices, device)
    return score_prepared(net, amplitude, x, slices.shape[-2:], engine or OverlapSaveEngine(), tta)


def slices_with_context(volume: np.ndarray, z0: int, z1: int, context: int) -> np.ndarray:
    """Slices ``z0 .. z1 - 1`` of a (z, y, x) volume as a network with slab context ``context`` takes
    them: (z, y, x) for 0, else (z, 2 context + 1, y, x) with the nearest slice standing in beyond
    the volume (:mod:`tomoseg.ops.context`). Reads only the slices needed (``volume`` may be any
    array that slices along z: a memory map, :class:`tomoseg.io.pages.Paged`)."""
    if context == 0:
        return np.asarray(volume[z0:z1])
    lo, hi = max(0, z0 - context), min(volume.shape[0], z1 + context)
    return with_context(np.asarray(volume[lo:hi]), z0, z1, context, first=lo, nz=volume.shape[0])


SLAB_VOXELS = 1 << 24
"""Voxels read and scored at a time by default (16 M: one 4096 x 4096 slice, 16 of 1024 x 1024)."""


def slab_slices(shape: tuple[int, ...], voxels: int = SLAB_VOXELS) -> int:
    """Slices per slab for a (z, y, x) volume: about ``voxels`` voxels, 1 to 16 slices."""
    return int(min(16, max(1, voxels // (shape[1] * shape[2]))))


def score_slabs(
    models: Sequence[tuple[SegNet, float]],
    volume: np.ndarray,
    engine: Engine | None = None,
    device: torch.device | str = "cpu",
    slices_per_batch: int | None = None,
    skip: Collection[int] = (),
    progress: Progress | None = None,
    tta: int = 1,
) -> Iterator[tuple[int, list[np.ndarray]]]:
    """Score a (z, y, x) volume slab by slab with several (network, amplitude) pairs.

    Each slab is read once (``volume[lo:hi]``: any array that slices along z; the workflows pass a
    memory map wrapped in :class:`tomoseg.io.pages.Paged`, which releases the pages of each slab
    it has copied, so memory does not grow with the volume) and scored by every model. Yields
    ``(z0, [scores of each model])``; slabs starting at a z0 in ``skip`` are neither read nor scored.
    ``slices_per_batch``: slab thickness (default :func:`slab_slices`). ``tta``: test-time
    augmentation, see :func:`score_prepared`. Reports progress per slab (cancellable).
    Raises ValueError naming the slices if they hold NaN or infinity.
    """
    check_tta(tta)
    engine = engine or OverlapSaveEngine()
    nets = [(net.to(device).eval(), amp) for net, amp in models]
    contexts = sorted({net.config.context for net, _ in nets})
    slices_per_batch = slices_per_batch or slab_slices(volume.shape, SLAB_VOXELS // (2 * contexts[-1] + 1))
    nz = volume.shape[0]
    for z0 in range(0, nz, slices_per_batch):
        z1 = min(nz, z0 + slices_per_batch)
        if z0 not in skip:
            # one read of the slab and its context, then each network's input from it
            lo, hi = max(0, z0 - contexts[-1]), min(nz, z1 + contexts[-1])
            slab = np.asarray(volume[lo:hi])
            inputs = {}
            try:
                for k in contexts:
                    inputs[k] = prepare_slices(with_context(slab, z0, z1, k, first=lo, nz=nz) if k
                                               else slab[z0 - lo : z1 - lo], device)
            except ValueError as err:
                raise InvalidValue(f"slices {z0}-{z1 - 1}: {err}") from None
            yield z0, [score_prepared(net, amp, inputs[net.config.context], slab.shape[1:], engine, tta)
                       for net, amp in nets]
        report(progress, z1, nz, "slices")


def score_volume(
    net: SegNet,
    amplitude: float,
    volume: np.ndarray,
    engine: Engine | None = None,
    device: torch.device | str = "cpu",
    slices_per_batch: int | None = None,
    progress: Progress | None = None,
    out: np.ndarray | None = None,
    tta: int = 1,
) -> np.ndarray:
    """Score a whole (z, y, x) volume with one network; see :func:`score_slabs`.

    ``out`` (float32, same shape) receives the scores; a new array is made if it is None.
    """
    out = np.empty(volume.shape, dtype=np.float32) if out is None else out
    for z0, (scores,) in score_slabs([(net, amplitude)], volume, engine, device, slices_per_batch, (), progress, tta):
        out[z0 : z0 + scores.shape[0]] = scores
    return out
