"""Consensus across annotators on the simulated tomograms (METHOD.md section 6).

Three "annotators" choose their own 10 positive and 100 negative tiles for one class on tomo_s11
(`choose_boxes` with seeds 0, 1, 2: the tiles differ, as different people's would) and each trains a
network; the three score maps on tomo_s12 give a consensus (mean), a spread and a disagreement map
(`tomoseg.steps.consensus`). Reported: Dice at threshold 1 of each annotator's map and of the
consensus, and the error rate (map >= 1 against the label) of the consensus in voxels where the
annotators agree and where they do not.

    python benchmarks/consensus.py [--classes 1 4] [--recipe fast] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import CLASSES, load  # noqa: E402
from shared_data import SHARED_DATA  # noqa: E402 - TOMOSEG_SHARED_DATA, else ../shared/data

from tomoseg.allocator import keep_freed_memory  # noqa: E402
from tomoseg.steps.consensus import consensus_scores  # noqa: E402
from tomoseg.steps.preprocess import PreprocessConfig  # noqa: E402
from tomoseg.steps.recipes import recipe  # noqa: E402
from tomoseg.steps.segment import score_volume  # noqa: E402
from tomoseg.steps.train import train  # noqa: E402
from tomoseg.steps.trainset import choose_boxes, make_trainset  # noqa: E402
from tomoseg.testing.metrics import dice  # noqa: E402

keep_freed_memory()  # as the CLI does at start-up (tomoseg.allocator): the figures keep their malloc settings


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(SHARED_DATA / "sim"))
    parser.add_argument("--classes", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--annotators", type=int, default=3)
    parser.add_argument("--recipe", default="fast")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    data = Path(args.data)
    train_vol, train_labels, voxel = load(data, "tomo_s11", PreprocessConfig())
    test_vol, test_labels, _ = load(data, "tomo_s12", PreprocessConfig())
    results = {}
    for value in args.classes:
        name, truth = CLASSES[value], test_labels == value
        maps, dices = [], []
        for seed in range(args.annotators):
            boxes = choose_boxes(train_labels, value, 10, 100, seed=seed + value)
            ts = make_trainset(train_vol, boxes, lambda z: train_labels[z] == value, name, voxel)
            t0 = time.perf_counter()
            result = train(ts, recipe(args.recipe, seed=seed))
            maps.append(score_volume(result.net, result.amplitude, test_vol))
            dices.append(dice(maps[-1] >= 1, truth))
            print(name, f"annotator {seed}: Dice {dices[-1]:.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)
        mean, spread, disagreement = consensus_scores(maps)
        wrong = (mean >= 1) != truth
        agree = disagreement == 0
        res = {"dice_annotators": dices, "dice_consensus": dice(mean >= 1, truth),
               "disputed_fraction": float((~agree).mean()),
               "error_rate_agreed": float(wrong[agree].mean()), "error_rate_disputed": float(wrong[~agree].mean()),
               "errors_in_disputed": float(wrong[~agree].sum() / max(1, wrong.sum())),
               "mean_spread_on_feature": float(spread[truth].mean()), "mean_spread_off": float(spread[~truth].mean())}
        print(name, json.dumps(res), flush=True)
        results[name] = res
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
