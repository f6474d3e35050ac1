"""Pictures of an average: central slices and the FSC curve (PNG, matplotlib Agg)."""

from __future__ import annotations

import os

import numpy as np

from tomoseg.io.atomic import atomic_output


def slices_figure(path: str | os.PathLike, volumes: list[np.ndarray], names: list[str], title: str = "") -> None:
    """Central XY, XZ and YZ slices of each (z, y, x) cube, one row per volume."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(volumes), 3, figsize=(7.5, 2.6 * len(volumes)), squeeze=False)
    for row, (vol, name) in enumerate(zip(volumes, names)):
        c = np.array(vol.shape) // 2
        views = [("XY", vol[c[0]]), ("XZ", vol[:, c[1], :]), ("YZ", vol[:, :, c[2]])]
        lo, hi = np.percentile(vol, [1, 99.5])
        for col, (label, img) in enumerate(views):
            ax = axes[row, col]
            ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, origin="lower")
            ax.set_title(f"{name}: {label}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def fsc_figure(path: str | os.PathLike, curve: np.ndarray, box: int, voxel_size: float, resolution: float,
               title: str = "") -> None:
    """The FSC against spatial frequency (1/A), with the 0.143 line and the resolution."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    freq = np.arange(len(curve)) / (box * voxel_size)
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.plot(freq[1:], curve[1:], "o-", ms=3, color="#2a9df4", label="half 1 vs half 2")
    ax.axhline(0.143, color="#e8402a", lw=1, ls="--", label="0.143")
    ax.axvline(1 / resolution, color="grey", lw=1, ls=":", label=f"{resolution:.1f} A")
    ax.set_xlabel("spatial frequency (1/A)")
    ax.set_ylabel("FSC")
    ax.set_ylim(-0.2, 1.05)
    ax.legend(fontsize=8)
    ax.set_title(title or f"FSC: {resolution:.1f} A at 0.143", fontsize=10)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
