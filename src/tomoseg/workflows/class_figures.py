"""Pictures of 2D classification results (PNG), drawn with matplotlib's Agg backend."""

from __future__ import annotations

import math
import os

import numpy as np

from tomoseg.io.atomic import atomic_output


def class_montage(
    path: str | os.PathLike,
    averages: np.ndarray,
    counts: np.ndarray,
    title: str = "",
) -> None:
    """A grid of class averages in grey, each labelled "class k: n particles".

    ``averages``: (k, b, b) images (y, x); ``counts``: (k,) class sizes. Each
    average gets its own grey scale (1st to 99th percentile).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    averages = np.asarray(averages, dtype=np.float32)
    counts = np.asarray(counts).reshape(-1)
    if averages.ndim != 3:
        raise ValueError(f"averages must be (k, b, b), got shape {averages.shape}")
    if len(counts) != len(averages):
        raise ValueError(f"{len(averages)} averages but {len(counts)} counts")
    k = len(averages)
    cols = max(1, math.ceil(math.sqrt(k)))
    rows = max(1, math.ceil(k / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.6 * rows + (0.4 if title else 0)), squeeze=False)
    for index, ax in enumerate(axes.ravel()):
        ax.set_xticks([])
        ax.set_yticks([])
        if index >= k:
            ax.axis("off")
            continue
        image = averages[index]
        lo, hi = np.percentile(image, [1, 99])
        if hi <= lo:
            hi = lo + 1.0
        ax.imshow(image, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        n = int(counts[index])
        ax.set_title(f"class {index}: {n} particle{'s' if n != 1 else ''}", fontsize=9)
    if k == 0:
        axes[0, 0].text(0.5, 0.5, "no classes", ha="center", va="center", transform=axes[0, 0].transAxes)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
