"""Transfer: train on one simulated tomogram, measure on every other (issue #17, "Measure first").

For each training tomogram (``--train``: tomo_s11, tomo_s31, tomo_s41 by default: three imaging
conditions), class (membrane 1, microtubule 2, actin 3, ribosome 4), tile choice (``--variants``),
seed and recipe: choose 10 positive + 100 negative 64 x 64 tiles from the training tomogram's labels,
train one network, apply it to every other tomogram (tomo_s12 shares tomo_s11's conditions), and
record Dice at threshold 1 and the best Dice over thresholds with its threshold (detection against
calibration), and the training time. Tile choices:

- ``spread``: positives on random voxels of the class spread over the volume (``choose_boxes``, as
  today's accuracy figures);
- ``lazy``: a "lazy annotator" who put every positive tile on the 3 largest connected pieces of the class.

``--train tomo_s11+tomo_s41`` trains one network on two tomograms (``train SET SET``, through
``combine_trainsets``) with the same annotation effort: 5 positive + 50 negative spread tiles on each.
It is measured on the tomograms it did not see; "same conditions" are then those of either.

Each result also keeps the whole Dice curve over thresholds and high quantiles of every map (the
training tomogram's too), so a calibration rule that moves the threshold per tomogram can be judged
from the file without training again: ``quantile_rule`` below rescales a map so that its 99.9th
percentile matches the training tomogram's map.

Results go to a JSON file after every run, so an interrupted run continues where it stopped (runs
already there are skipped): run it in pieces. ``--report`` prints the markdown tables of what is there.

    python benchmarks/transfer.py [--train tomo_s11 tomo_s31 tomo_s41] [--classes 1 2 3 4] \\
        [--variants spread lazy] [--seeds 0 1 2] [--recipes default paper] [--results FILE] [--report]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from shared_data import SHARED_DATA  # TOMOSEG_SHARED_DATA, else ../shared/data

from tomoseg.allocator import keep_freed_memory
from tomoseg.io.model_file import save_model
from tomoseg.io.mrc import read_volume
from tomoseg.nn.model import Model
from tomoseg.steps.preprocess import PreprocessConfig, preprocess
from tomoseg.steps.recipes import recipe
from tomoseg.steps.segment import score_volume
from tomoseg.steps.train import train
from tomoseg.steps.trainset import choose_boxes, combine_trainsets, make_trainset
from tomoseg.types import Box

keep_freed_memory()  # as the CLI does at start-up (tomoseg.allocator): the figures keep their malloc settings

CLASSES = {1: "membrane", 2: "microtubule", 3: "actin", 4: "ribosome"}
TOMOGRAMS = ("tomo_s11", "tomo_s12", "tomo_s31", "tomo_s41")
THRESHOLDS = np.round(np.arange(0.05, 3.001, 0.05), 2)
LAZY_PIECES = 3
QUANTILES = (0.9, 0.99, 0.995, 0.999)


def quantiles(scores: np.ndarray) -> dict:
    return {str(q): float(v) for q, v in zip(QUANTILES, np.quantile(scores, QUANTILES))}


def quantile_rule(run: dict, test: str, q: str = "0.999") -> float:
    """Dice at the threshold that puts the test map's ``q`` quantile where the training map's is
    (threshold 1 scaled by their ratio), read off the stored Dice curve."""
    t = run["tests"][test]
    threshold = t["quantiles"][q] / max(run["train_quantiles"][q], 1e-9)
    return float(np.interp(threshold, THRESHOLDS, t["curve"]))


def dice_curve(scores: np.ndarray, truth: np.ndarray, thresholds: np.ndarray = THRESHOLDS) -> np.ndarray:
    """Dice of ``scores >= t`` against ``truth`` for every threshold t, from two histograms."""
    edges = np.concatenate([[-np.inf], thresholds, [np.inf]])
    inside = np.histogram(scores[truth], bins=edges)[0]
    outside = np.histogram(scores[~truth], bins=edges)[0]
    # voxels >= thresholds[k]: the bins from k + 1 on
    tp = np.cumsum(inside[::-1])[::-1][1:]
    fp = np.cumsum(outside[::-1])[::-1][1:]
    n_true = int(truth.sum())
    return 2 * tp / np.maximum(2 * tp + fp + (n_true - tp), 1)


def lazy_boxes(labels: np.ndarray, value: int, seed: int, pieces: int = LAZY_PIECES) -> list[Box]:
    """10 positive tiles on the ``pieces`` largest connected pieces of the class only, 100 negatives
    as usual (``choose_boxes``)."""
    mask = labels == value
    regions, _ = ndimage.label(mask)
    sizes = np.bincount(regions.ravel())[1:]
    keep = np.argsort(-sizes)[:pieces] + 1
    narrowed = np.where(np.isin(regions, keep), labels, 0).astype(labels.dtype)
    positives = [b for b in choose_boxes(narrowed, value, 10, 1, seed=seed) if b.positive]
    negatives = [b for b in choose_boxes(labels, value, 1, 100, seed=seed) if not b.positive]
    return positives + negatives


def load(data: Path, names, config: PreprocessConfig) -> dict:
    out = {}
    for name in names:
        tomo = read_volume(data / f"{name}_tomo.mrc", mmap=False)
        labels = read_volume(data / f"{name}_labels.mrc", mmap=False).data.view(np.uint8)
        out[name] = (preprocess(tomo.data, tomo.voxel_size, config), labels, tomo.voxel_size)
    return out


def run_label(recipe_name: str, overrides: dict | None = None, context: int = 0, tta: int = 1) -> str:
    """The name a configuration goes by in the results: ``default``, ``default+imaging_jitter=1+context=1``..."""
    extra = sorted((overrides or {}).items()) + ([("context", context)] if context else []) + (
        [("tta", tta)] if tta > 1 else [])
    return recipe_name + "".join(f"+{k}={v}" for k, v in extra)


def run_one(volumes: dict, train_on: str, value: int, variant: str, seed: int, recipe_name: str,
            overrides: dict | None = None, keep: Path | None = None, context: int = 0, tta: int = 1) -> dict:
    names = train_on.split("+")
    if len(names) > 1 and variant != "spread":
        raise SystemExit(f"--train {train_on}: several tomograms per network are measured with spread tiles only")
    sets = []
    for name in names:  # several tomograms: the same 110 tiles in all, split evenly (as much annotation)
        vol, labels, voxel = volumes[name]
        boxes = (choose_boxes(labels, value, 10 // len(names), 100 // len(names), seed=seed + value)
                 if variant == "spread" else lazy_boxes(labels, value, seed=seed + value))
        sets.append(make_trainset(vol, boxes, lambda z, labels=labels: labels[z] == value, CLASSES[value], voxel,
                                  context=context))
    ts = combine_trainsets(sets)
    t0 = time.perf_counter()
    result = train(ts, recipe(recipe_name, seed=seed, **(overrides or {})))
    seconds = time.perf_counter() - t0
    label = run_label(recipe_name, overrides, context, tta)
    stem = f"{label}_{variant}_{train_on}_{CLASSES[value]}_{seed}"
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        save_model(keep / f"{stem}.model", Model(result.net, result.amplitude, CLASSES[value], voxel,
                                                 PreprocessConfig().to_dict(), level=result.level))
    tests, train_quantiles = {}, None
    for name, (test_vol, test_labels, _) in volumes.items():
        t0 = time.perf_counter()
        scores = score_volume(result.net, result.amplitude, test_vol, tta=tta)
        apply_seconds = time.perf_counter() - t0
        if keep is not None:
            np.save(keep / f"{stem}_on_{name}.npy", scores.astype(np.float16))
        if name in names:
            if name == names[0]:
                train_quantiles = quantiles(scores)
            continue
        curve = dice_curve(scores, test_labels == value)
        best = int(np.argmax(curve))
        at_one = float(curve[np.flatnonzero(THRESHOLDS == 1.0)[0]])
        tests[name] = {"dice_at_1": at_one, "best_dice": float(curve[best]), "best_threshold": float(THRESHOLDS[best]),
                       "voxels_at_1": int((scores >= 1).sum()), "true_voxels": int((test_labels == value).sum()),
                       "curve": [round(float(c), 4) for c in curve], "quantiles": quantiles(scores),
                       "apply_seconds": apply_seconds}
    return {"train": train_on, "class": CLASSES[value], "variant": variant, "seed": seed, "recipe": label,
            "train_seconds": seconds, "amplitude": float(result.amplitude), "train_quantiles": train_quantiles,
            "tests": tests}


def group(r: dict) -> tuple[str, str]:
    """(configuration, tile choice) a result is reported under; networks trained on several tomograms
    apart from those trained on one."""
    return r["recipe"] + (", two tomograms per network" if "+" in r["train"] else ""), r["variant"]


def key(r: dict) -> str:
    return f"{r['recipe']}/{r['variant']}/{r['train']}/{r['class']}/{r['seed']}"


def report(results: list[dict]) -> str:
    """Per recipe and tile choice, two tables (rows = class, columns = train -> test, cells = means over
    seeds): Dice at threshold 1; the best Dice over thresholds and where it lies. Then the mean training
    time per seed (calibration rules: ``benchmarks/calibration.py``; :func:`quantile_rule` was the first)."""
    lines = []
    groups = sorted({group(r) for r in results})
    metrics = [
        ("Dice at threshold 1", lambda r, b: f"{r['tests'][b]['dice_at_1']:.2f}", None),
        ("best Dice over thresholds (at threshold)", lambda r, b: r["tests"][b]["best_dice"],
         lambda r, b: r["tests"][b]["best_threshold"]),
    ]
    for recipe_name, variant in groups:
        rows = [r for r in results if group(r) == (recipe_name, variant)]
        pairs = sorted({(r["train"], t) for r in rows for t in r["tests"]})
        seeds = sorted({r["seed"] for r in rows})
        for title, value, where in metrics:
            lines += [f"**{recipe_name}, {variant} tiles: {title}** (seeds {', '.join(map(str, seeds))})", "",
                      "| class | " + " | ".join(f"{a.replace('tomo_', '')} -> {b[5:]}" for a, b in pairs) + " |",
                      "|---" * (len(pairs) + 1) + "|"]
            for cls in CLASSES.values():
                mine = [r for r in rows if r["class"] == cls]
                if not mine:
                    continue
                cells = []
                for a, b in pairs:
                    got = [r for r in mine if r["train"] == a and b in r["tests"]]
                    if not got:
                        cells.append("")
                        continue
                    cell = f"{np.mean([float(value(r, b)) for r in got]):.2f}"
                    if where is not None:
                        cell += f" ({np.mean([where(r, b) for r in got]):.2f})"
                    cells.append(cell)
                lines.append(f"| {cls} | " + " | ".join(cells) + " |")
            lines.append("")
        for seed in seeds:
            mine = [r for r in rows if r["seed"] == seed]
            secs = np.mean([r["train_seconds"] for r in mine])
            applied = [t["apply_seconds"] for r in mine for t in r["tests"].values() if "apply_seconds" in t]
            timing = f"; applying: {np.mean(applied):.1f} s per 80 x 256 x 256 tomogram" if applied else ""
            lines.append(f"Seed {seed}: training {secs:.0f} s per network on average ({len(mine)} networks){timing}.")
        lines.append("")
    return "\n".join(lines)


CONDITION = {"tomo_s11": "a", "tomo_s12": "a", "tomo_s31": "c", "tomo_s41": "d"}


def conditions(train_on: str) -> set[str]:
    """The imaging conditions a network was trained on (``tomo_s11+tomo_s41``: two)."""
    return {CONDITION[name] for name in train_on.split("+")}


def summary_table(results: list[dict], train: list[str] | None = None, seeds: list[int] | None = None) -> str:
    """One row per configuration (recipe, tile choice): per class, Dice at threshold 1 same conditions
    (tomo_s11 -> tomo_s12) / across conditions (every pair between different conditions), the worst
    single map across in brackets; then the same for the best threshold. Means over the networks there
    (``train``: only these training tomograms; ``seeds``: only these seeds)."""
    lines = ["| configuration | networks | " + " | ".join(CLASSES.values()) + " |", "|---" * (len(CLASSES) + 2) + "|"]
    groups = sorted({group(r) for r in results})
    for metric, name in (("dice_at_1", "threshold 1"), ("best_dice", "best threshold")):
        for recipe_name, variant in groups:
            rows = [r for r in results if group(r) == (recipe_name, variant)
                    and (train is None or set(r["train"].split("+")) <= set(train)) and (seeds is None or r["seed"] in seeds)]
            if not rows:
                continue
            cells = []
            for cls in CLASSES.values():
                same = [r["tests"][t][metric] for r in rows if r["class"] == cls for t in r["tests"]
                        if CONDITION[t] in conditions(r["train"])]
                cross = [r["tests"][t][metric] for r in rows if r["class"] == cls for t in r["tests"]
                         if CONDITION[t] not in conditions(r["train"])]
                text = f"{np.mean(same):.2f}" if same else "-"
                text += f" / {np.mean(cross):.2f} ({min(cross):.2f})" if cross else " / -"
                cells.append(text)
            used = sorted({r["seed"] for r in rows})
            lines.append(f"| {recipe_name}, {variant} tiles, {name} | {len(rows)} (seeds {', '.join(map(str, used))}) | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(SHARED_DATA / "sim"))
    parser.add_argument("--train", nargs="+", default=["tomo_s11", "tomo_s31", "tomo_s41"])
    parser.add_argument("--classes", nargs="+", type=int, default=list(CLASSES))
    parser.add_argument("--variants", nargs="+", default=["spread", "lazy"], choices=["spread", "lazy"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--recipes", nargs="+", default=["default", "paper"])
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="recipe fields to change, e.g. imaging_jitter=1 (the results name them: default+imaging_jitter=1)")
    parser.add_argument("--context", type=int, default=0, help="slab context K of the training tiles (trainset --context)")
    parser.add_argument("--tta", type=int, default=1, help="test-time augmentation when applying (apply --tta)")
    parser.add_argument("--results", default="benchmarks/out/transfer.json")
    parser.add_argument("--keep", default=None, metavar="DIR",
                        help="also save each network (.model) and its maps on every tomogram (float16 .npy) in DIR, "
                             "to study calibration rules or test-time augmentation without training again")
    parser.add_argument("--report", action="store_true", help="print the tables of the results so far and stop")
    parser.add_argument("--summary", action="store_true",
                        help="print one row per configuration (same / across conditions, worst map) and stop; "
                             "with --train and --seeds, only those networks")
    args = parser.parse_args(argv)

    path = Path(args.results)
    results = json.loads(path.read_text()) if path.exists() else []
    if args.report:
        print(report(results))
        return
    if args.summary:
        print(summary_table(results, args.train, args.seeds))
        return
    done = {key(r) for r in results}
    print(f"# {platform.machine()}, {time.strftime('%Y-%m-%d %H:%M')}; {len(done)} runs already in {path}", flush=True)
    overrides = {k: json.loads(v) for k, _, v in (item.partition("=") for item in args.set)}
    volumes = load(Path(args.data), TOMOGRAMS, PreprocessConfig())
    path.parent.mkdir(parents=True, exist_ok=True)
    for recipe_name in args.recipes:
        for seed in args.seeds:
            for variant in args.variants:
                for train_on in args.train:
                    for value in args.classes:
                        label = run_label(recipe_name, overrides, args.context, args.tta)
                        k = f"{label}/{variant}/{train_on}/{CLASSES[value]}/{seed}"
                        if k in done:
                            continue
                        r = run_one(volumes, train_on, value, variant, seed, recipe_name, overrides,
                                    Path(args.keep) if args.keep else None, args.context, args.tta)
                        results.append(r)
                        tmp = path.with_suffix(".tmp")
                        tmp.write_text(json.dumps(results, indent=1))
                        tmp.replace(path)
                        summary = ", ".join(f"{t[5:]} {v['dice_at_1']:.2f}/{v['best_dice']:.2f}"
                                            for t, v in r["tests"].items())
                        print(f"{k}: {r['train_seconds']:.0f} s; Dice at 1 / best: {summary}", flush=True)
    print(report(results))


if __name__ == "__main__":
    main()
