"""Test-time augmentation judged on kept networks: Dice with and without ``--tta N``, and its cost.

For every network that ``benchmarks/transfer.py --keep DIR`` saved (``STEM.model``), apply it to every
other simulated tomogram plainly and with each ``--tta`` value, side by side in one run, and record Dice
at threshold 1, the best Dice over thresholds, and the seconds each apply took. Results go to a JSON file
(runs there are skipped).

    python benchmarks/tta.py benchmarks/out/keep --tta 4 --configs default --results docs/tta.json
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np

from shared_data import SHARED_DATA  # TOMOSEG_SHARED_DATA, else ../shared/data

from tomoseg.allocator import keep_freed_memory
from tomoseg.io.model_file import load_model
from tomoseg.io.mrc import read_volume
from tomoseg.steps.preprocess import PreprocessConfig, preprocess
from tomoseg.steps.segment import score_volume

keep_freed_memory()  # as the CLI does at start-up (tomoseg.allocator): the figures keep their malloc settings

CLASSES = {"membrane": 1, "microtubule": 2, "actin": 3, "ribosome": 4}
CONDITION = {"tomo_s11": "a", "tomo_s12": "a", "tomo_s31": "c", "tomo_s41": "d"}
THRESHOLDS = np.round(np.arange(0.05, 3.001, 0.05), 2)


def curve(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    n = truth.sum()
    return np.array([2 * (truth & (scores >= t)).sum() / max(n + (scores >= t).sum(), 1) for t in THRESHOLDS])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("keep")
    parser.add_argument("--data", default=str(SHARED_DATA / "sim"))
    parser.add_argument("--configs", nargs="+", default=["default"])
    parser.add_argument("--tta", nargs="+", type=int, default=[4])
    parser.add_argument("--results", default="benchmarks/out/tta.json")
    args = parser.parse_args(argv)
    vols = {}
    for t in CONDITION:
        tomo = read_volume(Path(args.data) / f"{t}_tomo.mrc", mmap=False)
        labels = read_volume(Path(args.data) / f"{t}_labels.mrc", mmap=False).data.view(np.uint8)
        vols[t] = (preprocess(tomo.data, tomo.voxel_size, PreprocessConfig()), labels)
    path = Path(args.results)
    results = json.loads(path.read_text()) if path.exists() else []
    done = {(r["model"], r["test"]) for r in results}
    pattern = re.compile(r"(.+)_(spread|lazy)_(tomo_s\d+)_(\w+?)_(\d+)\.model$")
    for model_path in sorted(Path(args.keep).glob("*.model")):
        m = pattern.match(model_path.name)
        if not m or m.group(1) not in args.configs:
            continue
        config, variant, train_on, cls, seed = m.groups()
        model = load_model(model_path)
        for test_on, (vol, labels) in vols.items():
            if test_on == train_on or (model_path.name, test_on) in done:
                continue
            truth = labels == CLASSES[cls]
            row = {"model": model_path.name, "config": config, "train": train_on, "test": test_on, "class": cls,
                   "seed": int(seed), "same": CONDITION[test_on] == CONDITION[train_on]}
            for n in [1, *args.tta]:
                t0 = time.perf_counter()
                scores = score_volume(model.net, model.amplitude, vol, tta=n)
                seconds = time.perf_counter() - t0
                c = curve(scores, truth)
                row[f"tta{n}"] = {"dice_at_1": float(c[THRESHOLDS == 1.0][0]), "best_dice": float(c.max()),
                                  "best_threshold": float(THRESHOLDS[c.argmax()]), "seconds": seconds}
            results.append(row)
            print(f"{model_path.stem} -> {test_on}: " + ", ".join(
                f"tta {n}: {row[f'tta{n}']['dice_at_1']:.3f}/{row[f'tta{n}']['best_dice']:.3f} "
                f"({row[f'tta{n}']['seconds']:.1f} s)" for n in [1, *args.tta]), flush=True)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(results, indent=1))
    for n in args.tta:
        print(f"\n**tta {n} against none** (mean Dice at 1 / best; same conditions, across conditions)\n")
        print("| class | same, none | same, tta | across, none | across, tta | time ratio |\n|---|---|---|---|---|---|")
        for cls in CLASSES:
            rows = [r for r in results if r["class"] == cls and f"tta{n}" in r]
            if not rows:
                continue
            cell = lambda same, k: "{:.2f} / {:.2f}".format(*(np.mean([r[k][q] for r in rows if r["same"] == same])  # noqa: E731
                                                             for q in ("dice_at_1", "best_dice")))
            ratio = np.mean([r[f"tta{n}"]["seconds"] / r["tta1"]["seconds"] for r in rows])
            print(f"| {cls} | {cell(True, 'tta1')} | {cell(True, f'tta{n}')} | {cell(False, 'tta1')} | "
                  f"{cell(False, f'tta{n}')} | {ratio:.1f}x |")


if __name__ == "__main__":
    main()
