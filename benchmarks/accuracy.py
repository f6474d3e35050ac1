"""Accuracy on the simulated tomograms: train on tomo_s11, measure on tomo_s12.

For membrane (1), microtubule (2), actin (3) and ribosome (4): choose 10
positive and 100 negative 64x64 tiles from tomo_s11's labels (seeded, as
tomoseg.steps.trainset.choose_boxes does for the demo), train one network per
class with each recipe, apply to tomo_s12, and report Dice at threshold 1 (each
network alone, and after merging the four), plus ribosome picking precision and
recall (a pick is correct within 10 voxels of a true centre, one-to-one).

    python benchmarks/accuracy.py [--recipes default paper] [--data ../shared/data/sim] [--out docs/accuracy.md]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from shared_data import SHARED_DATA  # TOMOSEG_SHARED_DATA, else ../shared/data

from tomoseg.allocator import keep_freed_memory
from tomoseg.io.mrc import read_volume
from tomoseg.steps.merge import merge_scores
from tomoseg.steps.pick import PickConfig, pick_particles
from tomoseg.steps.preprocess import PreprocessConfig, preprocess
from tomoseg.steps.segment import score_volume
from tomoseg.steps.recipes import recipe
from tomoseg.steps.train import train
from tomoseg.steps.trainset import choose_boxes, make_trainset
from tomoseg.testing.metrics import dice, match_points

keep_freed_memory()  # as the CLI does at start-up (tomoseg.allocator): the figures keep their malloc settings

CLASSES = {1: "membrane", 2: "microtubule", 3: "actin", 4: "ribosome"}
MATCH_RADIUS = 10.0  # voxels


def match_picks(picks: np.ndarray, truth: np.ndarray, radius: float = MATCH_RADIUS) -> tuple[float, float, int]:
    """One-to-one matching within ``radius`` voxels: (precision, recall, true positives)."""
    return match_points(picks, truth, radius)


def load(data: Path, name: str, config: PreprocessConfig):
    tomo = read_volume(data / f"{name}_tomo.mrc", mmap=False)
    labels = read_volume(data / f"{name}_labels.mrc", mmap=False).data.view(np.uint8)
    return preprocess(tomo.data, tomo.voxel_size, config), labels, tomo.voxel_size


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(SHARED_DATA / "sim"))
    parser.add_argument("--recipes", nargs="+", default=["default", "paper"])
    parser.add_argument("--classes", nargs="+", type=int, default=list(CLASSES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="override recipe fields, e.g. positive_weight=3 (applies to every recipe)")
    parser.add_argument("--json", help="write raw results as JSON here")
    parser.add_argument("--markdown", help="write the results table (markdown) here")
    parser.add_argument("--save-scores", metavar="DIR",
                        help="also write each recipe's score maps on tomo_s12 here (RECIPE_CLASS.npy)")
    args = parser.parse_args(argv)

    data = Path(args.data)
    pre = PreprocessConfig()
    train_vol, train_labels, voxel = load(data, "tomo_s11", pre)
    test_vol, test_labels, _ = load(data, "tomo_s12", pre)
    truth_xyz = pd.read_csv(data / "tomo_s12_particles.csv").query("`class` == 'ribosome'")[["x", "y", "z"]].to_numpy()

    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value) if value not in ("sgd", "adam") else value
    results = {}
    for name in args.recipes:
        scores = {}
        res = {"dice_alone": {}, "dice_merged": {}, "train_seconds": {}}
        for value in args.classes:
            boxes = choose_boxes(train_labels, value, 10, 100, seed=args.seed + value)
            ts = make_trainset(train_vol, boxes, lambda z: train_labels[z] == value, CLASSES[value], voxel)
            t0 = time.perf_counter()
            result = train(ts, recipe(name, seed=args.seed, **overrides))
            res["train_seconds"][CLASSES[value]] = time.perf_counter() - t0
            scores[value] = score_volume(result.net, result.amplitude, test_vol)
            if args.save_scores:
                Path(args.save_scores).mkdir(parents=True, exist_ok=True)
                np.save(Path(args.save_scores) / f"{name}_{CLASSES[value]}.npy", scores[value])
            res["dice_alone"][CLASSES[value]] = dice(scores[value] >= 1.0, test_labels == value)
            print(name, CLASSES[value], f"{res['train_seconds'][CLASSES[value]]:.0f}s",
                  f"dice {res['dice_alone'][CLASSES[value]]:.3f}", flush=True)
        order = list(scores)
        merged = merge_scores([scores[v] for v in order], 1.0)
        for k, value in enumerate(order, start=1):
            res["dice_merged"][CLASSES[value]] = dice(merged == k, test_labels == value)
        if 4 in scores:
            picks = pick_particles(scores[4], voxel, PickConfig())
            p, r, tp = match_picks(picks.xyz, truth_xyz)
            res["ribosome_picks"] = {"n_picks": len(picks), "n_true": len(truth_xyz), "tp": tp,
                                     "precision": p, "recall": r}
            print(name, "ribosome picks", res["ribosome_picks"], flush=True)
        results[name] = res
    print(json.dumps(results, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    if args.markdown:
        Path(args.markdown).write_text(markdown_table(results))


def markdown_table(results: dict) -> str:
    """Per-class Dice for each recipe side by side, then ribosome picking."""
    names = list(results)
    head = "| class | " + " | ".join(f"Dice alone ({n}) | Dice merged ({n})" for n in names) + " |"
    rows = [head, "|---" * (1 + 2 * len(names)) + "|"]
    for cls in CLASSES.values():
        if cls not in results[names[0]]["dice_alone"]:
            continue
        cells = []
        for n in names:
            cells += [f"{results[n]['dice_alone'][cls]:.3f}", f"{results[n]['dice_merged'][cls]:.3f}"]
        rows.append(f"| {cls} | " + " | ".join(cells) + " |")
    rows += ["", "| recipe | ribosome picks | true | correct | precision | recall | training time per class (s) |",
             "|---|---|---|---|---|---|---|"]
    for n in names:
        p = results[n].get("ribosome_picks")
        t = results[n]["train_seconds"]
        times = ", ".join(f"{k} {v:.0f}" for k, v in t.items())
        if p:
            rows.append(f"| {n} | {p['n_picks']} | {p['n_true']} | {p['tp']} | {p['precision']:.3f} | "
                        f"{p['recall']:.3f} | {times} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    main()
