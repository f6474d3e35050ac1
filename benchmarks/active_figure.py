"""The figures of issue #19: where the loop suggests clicking, and Dice against tiles per strategy.

1. ``--slice``: train the loop's starting network (5 positive + 20 negative tiles of one class on
   ``tomo_s11``, the default recipe, as ``benchmarks/active.py`` does), suggest a round of tiles with
   the ``mixed`` strategy, and draw the slices that hold the most suggestions: the tomogram, the
   network's scores, the class's true outline, the existing boxes (white: positive, grey: negative)
   and the suggested tiles (yellow, numbered, each with its reason in the legend).
2. ``--curves``: Dice at threshold 1 on ``tomo_s12`` against the number of tiles, per class and
   strategy, from ``benchmarks/active.py``'s results (mean over the seeds there), with the one-shot
   protocol (110 tiles) as a dashed line.

    python benchmarks/active_figure.py --results docs/active.json --curves docs/images/active_dice.png \\
        --slice docs/images/active_suggestions.png [--class 2 --data ../shared/data/sim]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from shared_data import SHARED_DATA  # TOMOSEG_SHARED_DATA, else ../shared/data

CLASSES = {1: "membrane", 2: "microtubule", 3: "actin", 4: "ribosome"}
STYLE = {"uncertain": "C0", "disagree": "C1", "false-positive": "C3", "mixed": "k", "random": "0.6"}


def curves(results: list[dict], out: Path, tune: str = "fine-tune-8") -> None:
    """Per class: mean Dice against tiles for each strategy retrained with ``tune`` (the adopted 8-epoch
    fine-tuning), over the seeds that ran it, on the default pair (annotate tomo_s11, measure tomo_s12)."""
    results = [r for r in results if (r.get("annotate", "tomo_s11"), r.get("measure", "tomo_s12"))
               == ("tomo_s11", "tomo_s12")]
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.6), sharey=False)
    for ax, name in zip(axes, CLASSES.values()):
        rows = [r for r in results if r["class"] == name]
        if not rows:
            ax.set_visible(False)
            continue
        for strategy, colour in STYLE.items():
            key = f"{strategy}@{tune}"
            have = [r for r in rows if key in r["strategies"]]
            if not have:
                continue
            rounds = [r["strategies"][key] for r in have]
            tiles = [have[0]["start"]["tiles"]] + [x["tiles"] for x in rounds[0]]
            dice = [np.mean([r["start"]["dice"] for r in have])] + [np.mean([h[k]["dice"] for h in rounds])
                                                                     for k in range(len(rounds[0]))]
            seeds = ", ".join(str(s) for s in sorted(r["seed"] for r in have))
            ax.plot(tiles, dice, "o-", color=colour, label=f"{strategy} (seeds {seeds})",
                    lw=2 if strategy == "uncertain" else 1.2, ms=4)
        shots = [r["one_shot"]["dice"] for r in rows if r.get("one_shot")]
        if shots:
            ax.axhline(np.mean(shots), ls="--", color="0.3", lw=1, label="one-shot, 110 tiles")
        ax.set_title(name)
        ax.set_xlabel("tiles labelled")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    axes[0].set_ylabel("Dice at threshold 1 on tomo_s12")
    fig.suptitle("The annotation loop: start 5 + 20 tiles, then 3 rounds of 5 suggested tiles, fine-tuned (8 epochs) "
                 "after each; means over seeds")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def suggestion_slices(data: Path, value: int, out: Path, seed: int = 0) -> None:
    from tomoseg.io.mrc import read_volume
    from tomoseg.nn.model import Model
    from tomoseg.steps.preprocess import PreprocessConfig, preprocess
    from tomoseg.steps.recipes import recipe
    from tomoseg.steps.segment import score_volume
    from tomoseg.steps.suggest import SuggestConfig
    from tomoseg.steps.train import train
    from tomoseg.steps.trainset import choose_boxes, make_trainset
    from tomoseg.workflows.suggest import suggest_from_models

    tomo = read_volume(data / "tomo_s11_tomo.mrc", mmap=False)
    labels = read_volume(data / "tomo_s11_labels.mrc", mmap=False).data.view(np.uint8)
    vol = preprocess(tomo.data, tomo.voxel_size, PreprocessConfig())
    name = CLASSES[value]
    boxes = choose_boxes(labels, value, 5, 20, seed=seed + value)
    result = train(make_trainset(vol, boxes, lambda z: labels[z] == value, name, tomo.voxel_size),
                   recipe("default", seed=seed))
    model = Model(result.net, result.amplitude, name, tomo.voxel_size)
    found = suggest_from_models(model, vol, boxes, SuggestConfig(n=8, strategy="mixed", seed=seed + 1))
    zs = [z for z, _ in sorted(((z, sum(s.z == z for s in found)) for z in {s.z for s in found}),
                               key=lambda t: -t[1])[:2]]
    scores = score_volume(result.net, result.amplitude, vol[min(zs):max(zs) + 1])
    fig, axes = plt.subplots(1, len(zs), figsize=(6.5 * len(zs), 7.2))
    axes = np.atleast_1d(axes)
    for ax, z in zip(axes, sorted(zs)):
        ax.imshow(vol[z], cmap="gray")
        ax.imshow(np.ma.masked_less(scores[z - min(zs)], 0.5), cmap="autumn", alpha=0.45, vmin=0.5, vmax=2)
        ax.contour(labels[z] == value, levels=[0.5], colors="#00e5ff", linewidths=0.8)
        for b in boxes:
            if abs(b.z - z) <= 2:
                ax.add_patch(Rectangle((b.x - 32, b.y - 32), 64, 64, fill=False, lw=1.2,
                                       ec="white" if b.positive else "0.55"))
        for k, s in enumerate(found, start=1):
            if s.z == z:
                ax.add_patch(Rectangle((s.x - 32, s.y - 32), 64, 64, fill=False, lw=2, ec="yellow", ls="--"))
                ax.text(s.x - 30, s.y - 34, str(k), color="yellow", fontsize=11, weight="bold")
        ax.set_title(f"tomo_s11 slice {z}: {name} network after 25 tiles (orange: score >= 0.5; cyan: truth)",
                     fontsize=9)
        ax.axis("off")
    legend = "\n".join(f"{k}: z={s.z}  {s.reason}" for k, s in enumerate(found, start=1) if s.z in zs)
    fig.text(0.01, 0.01, legend, fontsize=8, family="monospace", va="bottom")
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(out, dpi=100)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", type=Path, default=Path("docs/active.json"))
    p.add_argument("--curves", type=Path)
    p.add_argument("--slice", type=Path)
    p.add_argument("--class", dest="value", type=int, default=2)
    p.add_argument("--data", type=Path, default=SHARED_DATA / "sim")
    args = p.parse_args()
    if args.curves:
        curves(json.loads(args.results.read_text()), args.curves)
    if args.slice:
        suggestion_slices(args.data, args.value, args.slice)


if __name__ == "__main__":
    main()
