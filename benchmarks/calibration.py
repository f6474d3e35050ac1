"""Calibration rules judged on kept maps: where should the threshold lie on a tomogram the network never saw?

A network's scores are divided by its amplitude on the training positives, so threshold 1 means "as
strong as an average training positive" on the training tomogram. On a tomogram imaged otherwise the
whole map can sit higher or lower (docs/accuracy.md). Each rule below picks a threshold per map from
the map itself (and, for some, the same network's map on its training tomogram, which a user has);
its Dice is compared with threshold 1 and with the best threshold (an oracle). Reads the networks' maps
that ``benchmarks/transfer.py --keep DIR`` saved (float16 ``STEM_on_TOMO.npy``) and the labels.

    python benchmarks/calibration.py benchmarks/out/keep [--data ../shared/data/sim] [--configs default]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from skimage.filters import threshold_otsu

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shared_data import SHARED_DATA  # TOMOSEG_SHARED_DATA, else ../shared/data
from transfer import CONDITION, conditions, lazy_boxes  # the lazy annotator's tiles, as transfer.py chose them

from tomoseg.allocator import keep_freed_memory
from tomoseg.io.model_file import load_model
from tomoseg.io.mrc import read_volume
from tomoseg.steps.calibrate import level_of
from tomoseg.steps.preprocess import PreprocessConfig, preprocess
from tomoseg.steps.train import tile_level
from tomoseg.steps.trainset import TILE_SIZE, choose_boxes, make_trainset

keep_freed_memory()  # as the CLI does at start-up (tomoseg.allocator): the figures keep their malloc settings

CLASSES = {"membrane": 1, "microtubule": 2, "actin": 3, "ribosome": 4}
THRESHOLDS = np.round(np.arange(0.05, 3.001, 0.05), 2)
CALIBRATE = "--calibrate (level of the network on its training tiles)"


def dice_at(scores: np.ndarray, truth: np.ndarray, t: float) -> float:
    above = scores >= t
    return float(2 * (above & truth).sum() / max(above.sum() + truth.sum(), 1))


def otsu(scores: np.ndarray) -> float:
    """Otsu's threshold of the scores above 0.05 (the ReLU leaves most voxels at 0)."""
    values = scores[scores > 0.05]
    return float(threshold_otsu(values)) if len(values) > 100 else 1.0


def tile_scores(train_map: np.ndarray, boxes) -> np.ndarray:
    """The training tomogram's map cut at the training tiles (what ``train`` can see: its tiles)."""
    h = TILE_SIZE // 2
    return np.stack([train_map[b.z, b.y - h : b.y + h, b.x - h : b.x + h] for b in boxes])


def rules(train_map: np.ndarray, test_map: np.ndarray, tiles: np.ndarray | None = None,
          model_level: float | None = None) -> dict[str, float]:
    q = lambda m, p: float(np.quantile(m, p))
    ratio = lambda floor: (level_of(test_map, floor) or 1.0) / (level_of(tiles, floor) or 1.0)
    extra = {} if tiles is None else {
        "Otsu ratio, training tiles": otsu(test_map) / max(otsu(tiles), 1e-6),
        "level ratio, map crops at the tiles, floor 0.05": ratio(0.05),
        "level ratio, map crops at the tiles, floor 0": ratio(0.0),
    }
    if model_level is not None:  # exactly what merge/pick --calibrate do
        extra[CALIBRATE] = scale = (level_of(test_map) or 1.0) / model_level
        extra[CALIBRATE + ", only lowering"] = min(scale, 1.0)  # guarded variants, to judge a default
        extra[CALIBRATE + ", only beyond 1.5x"] = scale if not 1 / 1.5 < scale < 1.5 else 1.0
    if tiles is not None:
        extra["quantile 0.999 ratio, training tiles"] = q(test_map, 0.999) / max(q(tiles, 0.999), 1e-6)
    return extra | {
        "threshold 1": 1.0,
        "quantile 0.99 ratio": q(test_map, 0.99) / max(q(train_map, 0.99), 1e-6),
        "quantile 0.999 ratio": q(test_map, 0.999) / max(q(train_map, 0.999), 1e-6),
        "Otsu": otsu(test_map),
        "Otsu ratio": otsu(test_map) / max(otsu(train_map), 1e-6),
        "mean above 0.05 ratio": float(test_map[test_map > 0.05].mean()) / max(float(train_map[train_map > 0.05].mean()), 1e-6),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("keep")
    parser.add_argument("--data", default=str(SHARED_DATA / "sim"))
    parser.add_argument("--configs", nargs="+", default=["default"])
    parser.add_argument("--detail", action="store_true", help="also print each map's Dice")
    parser.add_argument("--seeds", nargs="+", type=int, help="only these seeds (default: every kept one)")
    parser.add_argument("--variants", nargs="+", default=["spread", "lazy"], help="tile choices (transfer.py)")
    args = parser.parse_args(argv)
    labels = {t: read_volume(Path(args.data) / f"{t}_labels.mrc", mmap=False).data.view(np.uint8) for t in CONDITION}
    volumes = {}
    for t in CONDITION:
        tomo = read_volume(Path(args.data) / f"{t}_tomo.mrc", mmap=False)
        volumes[t] = preprocess(tomo.data, tomo.voxel_size, PreprocessConfig())
    pattern = re.compile(r"(.+)_(spread|lazy)_(tomo_s\d+(?:\+tomo_s\d+)*)_(\w+?)_(\d+)\.model$")
    table: dict = defaultdict(list)  # (config, rule, class, same/cross) -> Dice
    for model in sorted(Path(args.keep).glob("*.model")):
        m = pattern.match(model.name)
        if not m or m.group(1) not in args.configs:
            continue
        config, variant, train_on, cls, _ = m.groups()
        value, seed = CLASSES[cls], int(m.group(5))
        if variant not in args.variants or (args.seeds and seed not in args.seeds):
            continue
        config = config if variant == "spread" else f"{config}, lazy tiles"
        stem = model.name[: -len(".model")]
        names = train_on.split("+")  # several tomograms (transfer.py --train A+B): the first one's map
        trained = conditions(train_on)  # the imaging conditions it saw
        train_on = names[0]
        config = config if len(names) == 1 else f"{config}, from {'+'.join(n[5:] for n in names)}"
        train_map = np.load(model.parent / f"{stem}_on_{train_on}.npy").astype(np.float32)
        boxes = (None if len(names) > 1 else choose_boxes(labels[train_on], value, 10, 100, seed=seed + value)
                 if variant == "spread" else lazy_boxes(labels[train_on], value, seed=seed + value))
        tiles = None if boxes is None else tile_scores(train_map, boxes)  # the tiles as transfer.py chose them
        model_level = load_model(model).level  # recorded by train() (kept networks since session 21)
        if boxes is not None and model_level is None:  # the level train() records now, for networks kept before
            net = load_model(model).net
            ts = make_trainset(volumes[train_on], boxes, lambda z: labels[train_on][z] == value, cls, 10.0,
                               context=net.config.context)
            model_level = tile_level(net, load_model(model).amplitude, ts)
        for test_on in CONDITION:
            if test_on in names or not (model.parent / f"{stem}_on_{test_on}.npy").exists():
                continue
            test_map = np.load(model.parent / f"{stem}_on_{test_on}.npy").astype(np.float32)
            truth = labels[test_on] == CLASSES[cls]
            kind = "same" if CONDITION[test_on] in trained else "cross"
            for rule, t in rules(train_map, test_map, tiles, model_level).items():
                table[(config, rule, cls, kind)].append(dice_at(test_map, truth, t))
            best = max(dice_at(test_map, truth, t) for t in THRESHOLDS)
            if args.detail:
                got = rules(train_map, test_map, tiles, model_level)
                print(f"{stem} -> {test_on}: threshold 1 {dice_at(test_map, truth, 1.0):.2f}, --calibrate "
                      + (f"{dice_at(test_map, truth, got[CALIBRATE]):.2f} (at {got[CALIBRATE]:.2f})"
                         if CALIBRATE in got else "-") + f", best {best:.2f}", flush=True)
            table[(config, "best threshold (oracle)", cls, kind)].append(best)
    for config in sorted({k[0] for k in table}):
        names = sorted({k[1] for k in table if k[0] == config}, key=lambda r: (r != "threshold 1", "oracle" in r, r))
        print(f"\n**{config}**: mean Dice, same conditions / across conditions (worst across), networks counted\n")
        print("| rule | " + " | ".join(CLASSES) + " |")
        print("|---" * (len(CLASSES) + 1) + "|")
        for rule in names:
            cells = []
            for cls in CLASSES:
                same, cross = table.get((config, rule, cls, "same"), []), table.get((config, rule, cls, "cross"), [])
                cells.append(f"{np.mean(same) if same else float('nan'):.2f} / {np.mean(cross) if cross else float('nan'):.2f}"
                             f" ({min(cross) if cross else float('nan'):.2f}) n={len(same)}+{len(cross)}")
            print(f"| {rule} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
