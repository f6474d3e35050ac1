"""Real data: microtubules in cylindra's two real crops, trained on one, measured on the other.

The crops (``../shared/data/real/cylindra_{13,14}pf_MT.tif``, in-vitro microtubules, SIRT, 10.52 A/voxel,
bright density) have no voxel labels, only approximate centre lines (from cylindra's tests). The truth
here is the tube wall: voxels between ``--wall`` A from the centre line (the end segments extended
to the crop's edges). It is approximate, so the figures are a floor on what a network does, not a
precise score. Both crops are read as TIFF and preprocessed with ``invert`` (density dark, as in the
simulated tomograms); a network is trained on 10 positive + 100 negative tiles of the 13-pf crop
(``choose_boxes`` on the wall mask; negatives come from slices above and below the tube) and applied to
the 14-pf crop. Writes a picture (--png).

    python benchmarks/real_microtubules.py [--recipes fast default] [--png real_microtubules.png]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from shared_data import SHARED_DATA  # TOMOSEG_SHARED_DATA, else ../shared/data

from tomoseg.allocator import keep_freed_memory
from tomoseg.io.mrc import read_volume
from tomoseg.steps.preprocess import PreprocessConfig, preprocess
from tomoseg.steps.recipes import recipe
from tomoseg.steps.segment import score_volume
from tomoseg.steps.train import train
from tomoseg.steps.trainset import choose_boxes, make_trainset
from tomoseg.testing.metrics import dice

keep_freed_memory()  # as the CLI does at start-up (tomoseg.allocator): the figures keep their malloc settings

#: Approximate centre lines (nm; z, y, x), from ../shared/data/real/README.md.
CENTRE_LINES = {
    13: [(18.97, 190.0, 28.99), (18.97, 107.8, 51.48), (18.97, 35.2, 79.90)],
    14: [(21.97, 123.1, 32.98), (21.97, 83.3, 40.5), (21.97, 17.6, 64.96)],
}


def distance_to_line(shape: tuple[int, ...], voxel_size: float, points_nm) -> np.ndarray:
    """Distance (A) of every voxel to a polyline whose end segments continue past its ends."""
    zyx = np.stack(np.mgrid[tuple(slice(0, n) for n in shape)], -1).reshape(-1, 3) * voxel_size
    pts = np.asarray(points_nm, dtype=np.float64) * 10.0
    dist = np.full(len(zyx), np.inf)
    last = len(pts) - 2
    for i, (a, b) in enumerate(zip(pts[:-1], pts[1:])):
        ab = b - a
        t = np.clip(((zyx - a) @ ab) / (ab @ ab), -np.inf if i == 0 else 0.0, np.inf if i == last else 1.0)
        dist = np.minimum(dist, np.linalg.norm(zyx - (a + t[:, None] * ab), axis=1))
    return dist.reshape(shape)


def load(data: Path, pf: int, wall: tuple[float, float]):
    vol = read_volume(data / f"cylindra_{pf}pf_MT.tif")
    pre = preprocess(vol.data, vol.voxel_size, PreprocessConfig(invert=True))
    dist = distance_to_line(pre.shape, vol.voxel_size, CENTRE_LINES[pf])
    return pre, vol.voxel_size, (dist >= wall[0]) & (dist <= wall[1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(SHARED_DATA / "real"))
    parser.add_argument("--recipes", nargs="+", default=["fast", "default"])
    parser.add_argument("--wall", nargs=2, type=float, default=[75.0, 135.0], metavar=("INNER", "OUTER"),
                        help="the wall's distance from the centre line, A (default 75 135)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--png", help="write a picture of the 14-pf crop's central slice here")
    args = parser.parse_args(argv)
    data = Path(args.data)
    train_vol, voxel, train_wall = load(data, 13, tuple(args.wall))
    test_vol, _, test_wall = load(data, 14, tuple(args.wall))
    boxes = choose_boxes(train_wall.astype(np.uint8), 1, 10, 100, seed=args.seed)
    ts = make_trainset(train_vol, boxes, lambda z: train_wall[z], "microtubule", voxel)
    scores = {}
    for name in args.recipes:
        t0 = time.perf_counter()
        result = train(ts, recipe(name, seed=args.seed))
        seconds = time.perf_counter() - t0
        s = score_volume(result.net, result.amplitude, test_vol)
        scores[name] = s
        found = s >= 1.0
        print(json.dumps({
            "recipe": name, "train_seconds": round(seconds, 1),
            "dice": {t: round(dice(s >= t, test_wall), 3) for t in (0.5, 0.7, 1.0)},
            "precision_at_1": round(float(test_wall[found].mean()), 3) if found.any() else 0.0,
            "recall_at_1": round(float(found[test_wall].mean()), 3),
        }), flush=True)
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        z = int(round(np.argwhere(test_wall).mean(axis=0)[0]))
        fig, axes = plt.subplots(1, 1 + len(scores), figsize=(3 * (1 + len(scores)), 4.6))
        axes[0].imshow(test_vol[z], cmap="gray")
        axes[0].contour(test_wall[z], [0.5], colors="r", linewidths=0.6)
        axes[0].set_title(f"14-pf crop, z={z}\n(red: approximate wall)", fontsize=9)
        for ax, (name, s) in zip(axes[1:], scores.items()):
            ax.imshow(test_vol[z], cmap="gray")
            ax.imshow(np.ma.masked_less(s[z], 1.0), cmap="autumn", alpha=0.6, vmin=1, vmax=2)
            ax.set_title(f"{name}: score >= 1\n(trained on the 13-pf crop)", fontsize=9)
        for ax in axes:
            ax.set_axis_off()
        fig.tight_layout()
        fig.savefig(args.png, dpi=90)
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
