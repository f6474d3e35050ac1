"""The figure of issue #17: one cross-condition tomogram, the same slices, two configurations' merged maps
and the truth.

Reads the maps that ``benchmarks/transfer.py --keep DIR`` saved for the four classes of one training
tomogram, seed and configuration, merges each configuration's four maps by argmax at its threshold
(threshold 1, or ``calibrate``: each map first divided by its ``--calibrate`` scale), and draws: the preprocessed test
tomogram, configuration A's merge, configuration B's merge, and the labels (membrane, microtubule,
actin, ribosome; other classes left out), on two XY slices, with each merge's Dice per class.

    python benchmarks/transfer_figure.py benchmarks/out/keep --train tomo_s41 --test tomo_s31 \\
        --a default:1 --b default:1:calibrate -o docs/images/transfer.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from shared_data import SHARED_DATA  # TOMOSEG_SHARED_DATA, else ../shared/data

from tomoseg.io.model_file import load_model  # noqa: E402
from tomoseg.io.mrc import read_volume  # noqa: E402
from tomoseg.steps.calibrate import level_of  # noqa: E402
from tomoseg.steps.merge import merge_scores  # noqa: E402
from tomoseg.steps.preprocess import PreprocessConfig, preprocess  # noqa: E402
from tomoseg.steps.train import tile_level  # noqa: E402
from tomoseg.steps.trainset import choose_boxes, make_trainset  # noqa: E402

CLASSES = ("membrane", "microtubule", "actin", "ribosome")
COLOURS = ["#00000000", "#ffcc00", "#00e5ff", "#ff4dd2", "#4dff4d"]


def merged(keep: Path, config: str, seed: str, train: str, test: str, rule: str, data: Path) -> np.ndarray:
    """The four classes' maps merged at threshold 1, each first divided by its ``--calibrate`` scale when
    ``rule`` is "calibrate" (the network's level on its training tiles, as train records it now)."""
    maps = [np.load(keep / f"{config}_spread_{train}_{c}_{seed}_on_{test}.npy").astype(np.float32) for c in CLASSES]
    if rule == "threshold 1":
        return merge_scores(maps, 1.0)
    tomo = read_volume(data / f"{train}_tomo.mrc", mmap=False)
    volume = preprocess(tomo.data, tomo.voxel_size, PreprocessConfig())
    labels = read_volume(data / f"{train}_labels.mrc", mmap=False).data.view(np.uint8)
    scaled = []
    for value, (c, m) in enumerate(zip(CLASSES, maps), start=1):
        model = load_model(keep / f"{config}_spread_{train}_{c}_{seed}.model")
        boxes = choose_boxes(labels, value, 10, 100, seed=int(seed) + value)  # transfer.py's spread tiles
        ts = make_trainset(volume, boxes, lambda z: labels[z] == value, c, tomo.voxel_size,
                           context=model.net.config.context)
        scaled.append(m / (level_of(m) / tile_level(model.net, model.amplitude, ts)))
    return merge_scores(scaled, 1.0)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("keep")
    parser.add_argument("--data", default=str(SHARED_DATA / "sim"))
    parser.add_argument("--train", default="tomo_s41")
    parser.add_argument("--test", default="tomo_s31")
    parser.add_argument("--a", default="default:1", help="CONFIG:SEED[:RULE] of the first merge")
    parser.add_argument("--b", default="default+context=1:0", help="CONFIG:SEED[:RULE] of the second merge")
    parser.add_argument("--slices", nargs=2, type=int, default=[30, 50])
    parser.add_argument("-o", "--output", default="docs/images/transfer.png")
    args = parser.parse_args(argv)
    keep = Path(args.keep)
    tomo = read_volume(Path(args.data) / f"{args.test}_tomo.mrc", mmap=False)
    pre = preprocess(tomo.data, tomo.voxel_size, PreprocessConfig())
    truth = read_volume(Path(args.data) / f"{args.test}_labels.mrc", mmap=False).data.view(np.uint8)
    truth = np.where(truth <= 4, truth, 0)
    columns = [("input", None, None)]
    for spec in (args.a, args.b):
        config, seed, *rule = spec.split(":")
        rule = rule[0] if rule else "threshold 1"
        labels = merged(keep, config, seed, args.train, args.test, rule, Path(args.data))
        dice = [2 * ((labels == k) & (truth == k)).sum() / max((labels == k).sum() + (truth == k).sum(), 1)
                for k in range(1, 5)]
        title = f"{config} (seed {seed}), {rule}\nDice " + ", ".join(f"{c[:4]} {d:.2f}" for c, d in zip(CLASSES, dice))
        columns.append((title, labels, None))
    columns.append(("truth (labels)", truth, None))
    cmap = ListedColormap(COLOURS)
    fig, axes = plt.subplots(len(args.slices), len(columns), figsize=(4.2 * len(columns), 4.4 * len(args.slices)))
    lo, hi = np.percentile(pre, [1, 99])
    for row, z in enumerate(args.slices):
        for col, (title, labels, _) in enumerate(columns):
            ax = axes[row, col]
            ax.imshow(pre[z], cmap="gray", vmin=lo, vmax=hi)
            if labels is not None:
                ax.imshow(labels[z], cmap=cmap, vmin=0, vmax=4, interpolation="nearest", alpha=0.55)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=9)
            if col == 0:
                ax.set_ylabel(f"z = {z}", fontsize=9)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in COLOURS[1:]]
    fig.legend(handles, CLASSES, loc="lower center", ncol=4, fontsize=9, frameon=False)
    fig.suptitle(f"trained on {args.train}, applied to {args.test} (other imaging conditions); "
                 f"{tomo.voxel_size:g} A per voxel, {pre.shape[2]} x {pre.shape[1]} pixels", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=80)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
