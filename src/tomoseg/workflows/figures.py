"""Pictures of results (PNG), drawn with matplotlib's Agg backend."""

from __future__ import annotations

import os

import numpy as np

from tomoseg.io.atomic import atomic_output

PALETTE = ["#f5c200", "#e8402a", "#2a9df4", "#55c667", "#b86bff", "#ff8fd0", "#00c2b8"]


def annotation_figure(
    path: str | os.PathLike,
    tomogram: np.ndarray,
    labels: np.ndarray,
    names: list[str],
    picks_xyz: np.ndarray | None = None,
    z_slices: list[int] | None = None,
    title: str = "",
    colours: list[str] | None = None,
) -> None:
    """XY slices of the tomogram, without and with the merged labels and the picks.

    ``tomogram``, ``labels``: (z, y, x); label k is ``names[k-1]``.
    ``picks_xyz``: (n, 3) voxels; picks within 3 slices of a shown slice are drawn.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    colours = colours or PALETTE
    nz = tomogram.shape[0]
    z_slices = z_slices or [nz // 3, nz // 2, 2 * nz // 3]
    cmap = ListedColormap([(0, 0, 0, 0)] + [colours[k % len(colours)] for k in range(len(names))])
    fig, axes = plt.subplots(2, len(z_slices), figsize=(4.2 * len(z_slices), 8.6), squeeze=False)
    for col, z in enumerate(z_slices):
        img = np.asarray(tomogram[z], dtype=np.float32)
        lo, hi = np.percentile(img, [1, 99])
        for row in range(2):
            ax = axes[row, col]
            ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0, col].set_title(f"slice z={z}")
        axes[1, col].imshow(np.asarray(labels[z]), cmap=cmap, vmin=0, vmax=len(names), alpha=0.55,
                            interpolation="nearest")
        if picks_xyz is not None and len(picks_xyz):
            near = np.abs(picks_xyz[:, 2] - z) <= 3
            axes[1, col].scatter(picks_xyz[near, 0], picks_xyz[near, 1], s=90, facecolors="none",
                                 edgecolors="cyan", linewidths=1.5)
    handles = [Patch(color=colours[k % len(colours)], label=n) for k, n in enumerate(names)]
    if picks_xyz is not None:
        handles.append(plt.Line2D([], [], marker="o", color="cyan", linestyle="", markerfacecolor="none",
                                  label="picks"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
