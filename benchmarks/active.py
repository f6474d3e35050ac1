"""Where to click next: the annotation loop with a simulated annotator (issue #19).

For each class (membrane 1, microtubule 2, actin 3, ribosome 4) and seed: annotate ``tomo_s11``,
measure on ``tomo_s12`` (same imaging conditions, another scene); or, with ``--annotate`` and
``--measure``, another pair, e.g. annotate ``tomo_s31`` and measure on ``tomo_s31`` itself (what a user
does: annotate the tomogram to segment; the labelled tiles are about 3 % of its voxels).

- start: 5 positive + 20 negative tiles chosen as today (``choose_boxes``), trained with the
  default recipe;
- then 3 rounds per strategy: suggest 5 tiles on ``tomo_s11`` (:mod:`tomoseg.steps.suggest`, through
  the same :func:`~tomoseg.workflows.suggest.suggest_from_models` as ``tomoseg suggest``), label them
  from the ground truth (a tile holding any voxel of the class is positive, its mask from the labels;
  else negative), fine-tune the network (``train --init``: the ``fine-tune`` recipe) on all tiles so far;
- beside it, the one-shot protocol: 10 positive + 100 negative random tiles, full training.

Reported: Dice at threshold 1 on ``tomo_s12`` after the start and each round, per strategy, the tile
counts, and the wall time of each round (suggest + fine-tune) and of each fine-tune alone.

    python benchmarks/active.py [--data ../shared/data/sim] [--classes 1 2 3 4] [--seeds 0 1 2] \\
        [--strategies uncertain disagree false-positive mixed random] [--results docs/active.json] [--report] \\
        [--annotate tomo_s11 --measure tomo_s12] [--no-one-shot]

Results go to the JSON after every (class, seed), so an interrupted run continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from shared_data import SHARED_DATA  # TOMOSEG_SHARED_DATA, else ../shared/data

from tomoseg.allocator import keep_freed_memory
from tomoseg.nn.model import Model
from tomoseg.steps.preprocess import PreprocessConfig, preprocess
from tomoseg.steps.recipes import recipe
from tomoseg.steps.segment import score_volume
from tomoseg.steps.suggest import STRATEGIES, SuggestConfig
from tomoseg.steps.train import train
from tomoseg.steps.trainset import choose_boxes, make_trainset
from tomoseg.types import Box
from tomoseg.workflows.suggest import suggest_from_models

CLASSES = {1: "membrane", 2: "microtubule", 3: "actin", 4: "ribosome"}
TUNES = {
    "fine-tune": ("fine-tune", {}, True),               # the recipe train --init uses
    "fine-tune-8": ("fine-tune", {"epochs": 8}, True),   # twice the epochs
    "fine-tune-lr01": ("fine-tune", {"learning_rate": 0.01}, True),  # the default's learning rate
    "scratch": ("default", {}, False),                  # no fine-tuning: a full training from scratch each round
}
"""How a round retrains (``--tunes``): recipe, overrides, whether it starts from the last network."""
ROUNDS, PER_ROUND, START = 3, 5, (5, 20)


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    inter = np.count_nonzero(pred & truth)
    return 2 * inter / max(1, np.count_nonzero(pred) + np.count_nonzero(truth))


def load(data: Path, name: str):
    from tomoseg.io.mrc import read_volume

    tomo = read_volume(data / f"{name}_tomo.mrc", mmap=False)
    labels = read_volume(data / f"{name}_labels.mrc", mmap=False).data.view(np.uint8)
    return preprocess(tomo.data, tomo.voxel_size, PreprocessConfig()), labels, tomo.voxel_size


def answer(labels: np.ndarray, value: int, s, tile: int = 64) -> Box:
    """The simulated annotator: positive when the tile holds any voxel of the class."""
    h = tile // 2
    return Box(s.x, s.y, s.z, bool((labels[s.z, s.y - h:s.y + h, s.x - h:s.x + h] == value).any()))


PAIR = ("tomo_s11", "tomo_s12")
"""The tomograms annotated and measured unless ``--annotate``/``--measure`` say otherwise."""


def pair_of(r: dict) -> tuple[str, str]:
    return r.get("annotate", PAIR[0]), r.get("measure", PAIR[1])


def one_shot_of(transfer: Path, name: str, seed: int, pair=PAIR) -> dict | None:
    """The one-shot protocol's result from benchmarks/transfer.py (the same tiles, recipe and seed:
    default, spread, trained on the annotated tomogram, measured on the other), if it was run."""
    if not transfer.exists():
        return None
    for r in json.loads(transfer.read_text()):
        if (r["recipe"], r["variant"], r["train"], r["class"], r["seed"]) == ("default", "spread", pair[0], name, seed) \
                and pair[1] in r["tests"]:
            return {"dice": r["tests"][pair[1]]["dice_at_1"], "tiles": 110, "train_seconds": r["train_seconds"],
                    "from": str(transfer)}
    return None


def run_class_seed(train_data, test_data, value: int, seed: int, strategies, transfer: Path,
                   tunes=("fine-tune",), pair=PAIR, one_shot: bool = True) -> dict:
    vol, labels, voxel = train_data
    test_vol, test_labels, _ = test_data
    truth = test_labels == value
    name = CLASSES[value]

    def trainset(boxes):
        return make_trainset(vol, boxes, lambda z: labels[z] == value, name, voxel)

    def measure(result) -> float:
        return dice(score_volume(result.net, result.amplitude, test_vol) >= 1.0, truth)

    out = {"class": name, "seed": seed, "annotate": pair[0], "measure": pair[1]}
    out["one_shot"] = one_shot_of(transfer, name, seed, pair)
    if out["one_shot"] is None and one_shot:
        t0 = time.perf_counter()
        one_shot = train(trainset(choose_boxes(labels, value, 10, 100, seed=seed + value)), recipe("default", seed=seed))
        out["one_shot"] = {"dice": measure(one_shot), "tiles": 110, "train_seconds": time.perf_counter() - t0}

    start_boxes = choose_boxes(labels, value, *START, seed=seed + value)
    t0 = time.perf_counter()
    start = train(trainset(start_boxes), recipe("default", seed=seed))
    out["start"] = {"dice": measure(start), "tiles": len(start_boxes), "train_seconds": time.perf_counter() - t0}
    said = f"{out['one_shot']['dice']:.3f}" if out["one_shot"] else "not run"
    print(f"{name}/{seed}: one-shot {said}, start {out['start']['dice']:.3f}", flush=True)

    out["strategies"] = {}
    for strategy, tune in [(s, t) for t in tunes for s in strategies]:
        recipe_name, overrides, from_last = TUNES[tune]
        boxes, current, rounds = list(start_boxes), start, []
        for r in range(1, ROUNDS + 1):
            t0 = time.perf_counter()
            model = Model(current.net, current.amplitude, name, voxel)
            found = suggest_from_models(model, vol, boxes, SuggestConfig(n=PER_ROUND, strategy=strategy, seed=seed + r))
            new = [answer(labels, value, s) for s in found]
            boxes += new
            t1 = time.perf_counter()
            current = train(trainset(boxes), recipe(recipe_name, seed=seed + r, **overrides),
                            init=current.net if from_last else None)
            t2 = time.perf_counter()
            rounds.append({"round": r, "tiles": len(boxes), "new_positive": sum(b.positive for b in new),
                           "new": len(new), "dice": measure(current), "suggest_seconds": t1 - t0,
                           "fine_tune_seconds": t2 - t1,
                           "reasons": sorted({s.reason.split(":")[0] for s in found})})
        key = strategy if tune == "fine-tune" else f"{strategy}@{tune}"
        out["strategies"][key] = rounds
        print(f"{name}/{seed}/{key}: " + " ".join(f"{x['dice']:.3f}" for x in rounds)
              + f" ({rounds[-1]['tiles']} tiles, fine-tune {np.mean([x['fine_tune_seconds'] for x in rounds]):.0f} s)",
              flush=True)
    return out


def timing(train_data, value: int = 1, seed: int = 0) -> dict:
    """The issue's cost targets, measured alone: one fine-tune round on a set of ~150 tiles (15 positive +
    135 negative), and one suggestion round (mixed: the network under 4 symmetries on 48 slices)."""
    vol, labels, voxel = train_data
    name = CLASSES[value]

    def trainset(boxes):
        return make_trainset(vol, boxes, lambda z: labels[z] == value, name, voxel)

    start = train(trainset(choose_boxes(labels, value, *START, seed=seed + value)), recipe("default", seed=seed))
    big = trainset(choose_boxes(labels, value, 15, 135, seed=seed + value + 100))
    t0 = time.perf_counter()
    train(big, recipe("fine-tune", seed=seed), init=start.net)
    fine_tune = time.perf_counter() - t0
    t0 = time.perf_counter()
    suggest_from_models(Model(start.net, start.amplitude, name, voxel), vol, [],
                        SuggestConfig(n=PER_ROUND, strategy="mixed", seed=seed))
    return {"class": name, "tiles": len(big.tiles), "fine_tune_seconds": fine_tune,
            "suggest_seconds": time.perf_counter() - t0}


def report(results: list[dict]) -> str:
    """One row per class, retraining rule and strategy: mean Dice after each round (over the seeds that
    ran it), the difference to random tiles with the same retraining after round 3, the one-shot protocol."""
    keys = sorted({k for r in results for k in r["strategies"]},
                  key=lambda k: (k.partition("@")[2], STRATEGIES.index(k.partition("@")[0])))
    lines = []
    for pair in sorted({pair_of(r) for r in results}, key=lambda p: p != PAIR):
        lines += _pair_table([r for r in results if pair_of(r) == pair], keys, pair) + [""]
    return "\n".join(lines + _timings(results, keys))


def _pair_table(results: list[dict], keys: list[str], pair) -> list[str]:
    lines = [f"annotate {pair[0]}, measure on {pair[1]}:", "",
             "| class | retraining | strategy | seeds | start (25 tiles) | round 1 (30) | round 2 (35) | round 3 (40) "
             "| round 3 - random | one-shot (110) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name in CLASSES.values():
        rows = [r for r in results if r["class"] == name]
        for key in keys:
            have = [r for r in rows if key in r["strategies"]]
            if not have:
                continue
            strategy, _, tune = key.partition("@")
            dice = [np.mean([r["strategies"][key][k]["dice"] for r in have]) for k in range(ROUNDS)]
            rand = "random" + (f"@{tune}" if tune else "")
            both = [r for r in have if rand in r["strategies"]]
            diff = (np.mean([r["strategies"][key][-1]["dice"] - r["strategies"][rand][-1]["dice"] for r in both])
                    if both and strategy != "random" else None)
            lines.append(f"| {name} | {tune or 'fine-tune, 4 epochs'} | {strategy} | "
                         f"{', '.join(str(s) for s in sorted(r['seed'] for r in have))} | {np.mean([r['start']['dice'] for r in have]):.3f} | "
                         + " | ".join(f"{d:.3f}" for d in dice)
                         + f" | {'' if diff is None else f'{diff:+.3f}'} | {_one_shot_cell(have)} |")
    return lines


def _one_shot_cell(rows: list[dict]) -> str:
    got = [r["one_shot"]["dice"] for r in rows if r.get("one_shot")]
    return f"{np.mean(got):.3f}" if got else "-"


def _timings(results: list[dict], keys: list[str]) -> list[str]:
    lines = []
    for tune in sorted({k.partition("@")[2] for k in keys}):
        times = [x["fine_tune_seconds"] for r in results for k, rounds in r["strategies"].items()
                 if k.partition("@")[2] == tune for x in rounds]
        loops = [sum(x["fine_tune_seconds"] + x["suggest_seconds"] for x in rounds)
                 for r in results for k, rounds in r["strategies"].items() if k.partition("@")[2] == tune]
        lines.append("")
        lines.append(f"{tune or 'fine-tune, 4 epochs'}: retraining per round median {np.median(times):.1f} s "
                     f"(max {np.max(times):.1f}); 3-round loop (suggest + retrain) median {np.median(loops):.0f} s "
                     f"(max {np.max(loops):.0f}), {len(times)} rounds")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=SHARED_DATA / "sim")
    p.add_argument("--classes", type=int, nargs="+", default=[1, 2, 3, 4])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--strategies", nargs="+", default=["uncertain", "disagree", "false-positive", "mixed", "random"],
                   choices=list(STRATEGIES))
    p.add_argument("--results", type=Path, default=Path("docs/active.json"))
    p.add_argument("--tunes", nargs="+", default=["fine-tune"], choices=list(TUNES),
                   help="how each round retrains (the others are recorded as STRATEGY@TUNE)")
    p.add_argument("--transfer", type=Path, default=Path("docs/transfer.json"),
                   help="one-shot results of benchmarks/transfer.py to reuse (the same protocol); else trained here")
    p.add_argument("--annotate", default=PAIR[0], help="the tomogram annotated (default: tomo_s11)")
    p.add_argument("--measure", default=PAIR[1], help="the tomogram measured (default: tomo_s12; may be the annotated one)")
    p.add_argument("--no-one-shot", action="store_true",
                   help="no one-shot training where benchmarks/transfer.py has none for the pair")
    p.add_argument("--report", action="store_true")
    p.add_argument("--timing", action="store_true", help="only time a fine-tune on ~150 tiles and a suggestion round")
    args = p.parse_args()
    results = json.loads(args.results.read_text()) if args.results.exists() else []
    if args.report:
        print(report(results))
        return
    keep_freed_memory()
    if args.timing:
        print(json.dumps(timing(load(args.data, "tomo_s11"))), flush=True)
        return
    print(f"# {platform.machine()}, {time.strftime('%Y-%m-%d %H:%M')}; {len(results)} runs already in {args.results}",
          flush=True)
    pair = (args.annotate, args.measure)
    train_data = load(args.data, args.annotate)
    test_data = train_data if args.measure == args.annotate else load(args.data, args.measure)
    for value in args.classes:
        for seed in args.seeds:
            done = [r for r in results if r["class"] == CLASSES[value] and r["seed"] == seed and pair_of(r) == pair]
            keys = [s if t == "fine-tune" else f"{s}@{t}" for t in args.tunes for s in args.strategies]
            if done and all(k in done[0]["strategies"] for k in keys):
                continue
            new = run_class_seed(train_data, test_data, value, seed, args.strategies, args.transfer, args.tunes,
                                 pair, one_shot=not args.no_one_shot)
            if done:  # keep what ran before, add the new strategies
                done[0]["strategies"].update(new["strategies"])
                new = done[0]
            results = [r for r in results if r not in done]
            results.append(new)
            results[-1]["machine"] = f"{platform.machine()} {time.strftime('%Y-%m-%d')}"
            args.results.parent.mkdir(parents=True, exist_ok=True)
            args.results.write_text(json.dumps(results, indent=1))
    print(report(results))


if __name__ == "__main__":
    main()
