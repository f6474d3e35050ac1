"""Real microtubules with voxel masks: TARDIS-em's two patches, trained on one, measured on the other.

``../shared/data/real/tardis_mt_patches/`` holds two 96 x 96 x 96 patches of real tomograms with binary
microtubule masks (filled tubes): ``0_0_30_47_25`` (tubes cut across: discs on each slice) and
``3_0_25_54_25`` (tubes lying in the slice plane). LZW-compressed TIFFs: reading them needs
``imagecodecs`` (``pip install imagecodecs``). The voxel size is not recorded; the masks' discs (9-10
voxels for a 25 nm tube) suggest about 25 A, which is used (``--voxel-size``). Each patch is preprocessed
with tomoseg's defaults; 10 positive tiles (tiles holding a tube, ``boxes_for``) and up to 100 negative
tiles free of microtubule train one network per configuration, applied to the other patch: Dice at
threshold 1, at the calibrated threshold (``--calibrate``) and the best Dice over thresholds, both
directions, per seed. Configurations: ``paper`` and ``default`` recipes, and any
``default+context=K`` / ``+tta=N`` given.

    python benchmarks/real_tardis.py [--configs paper default default+context=1] [--seeds 0 1 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import tifffile

from shared_data import SHARED_DATA  # TOMOSEG_SHARED_DATA, else ../shared/data

from tomoseg.allocator import keep_freed_memory
from tomoseg.steps.calibrate import level_of
from tomoseg.steps.preprocess import PreprocessConfig, preprocess
from tomoseg.steps.recipes import recipe
from tomoseg.steps.segment import score_volume
from tomoseg.steps.train import train
from tomoseg.steps.trainset import TILE_SIZE, make_trainset
from tomoseg.types import Box

keep_freed_memory()  # as the CLI does at start-up (tomoseg.allocator): the figures keep their malloc settings

PATCHES = ("0_0_30_47_25", "3_0_25_54_25")
THRESHOLDS = np.round(np.arange(0.05, 3.001, 0.05), 2)


def boxes_for(mask: np.ndarray, seed: int, n_positive: int = 10, n_negative: int = 100, least: int = 50) -> list[Box]:
    """Tiles as a user would place them on a 96-pixel patch: ``n_positive`` tiles holding at least ``least``
    microtubule pixels (their centres need not lie on a tube: in ``0_0_30_47_25`` every tube lies within
    32 pixels of the edge, where no tile can be centred), spread over the slices, and up to ``n_negative``
    tiles free of microtubule (none where every tile holds a tube: the positive tiles' masks then carry
    all the background). Seeded."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = mask.shape
    half = TILE_SIZE // 2
    positives, negatives = [], []
    for z in rng.permutation(nz):
        for _ in range(4):
            y, x = int(rng.integers(half, ny - half + 1)), int(rng.integers(half, nx - half + 1))
            held = int(mask[z, y - half : y + half, x - half : x + half].sum())
            if held >= least and len(positives) < n_positive and not any(b.z == z for b in positives):
                positives.append(Box(x, y, int(z), True))
            elif held == 0 and len(negatives) < n_negative:
                negatives.append(Box(x, y, int(z), False))
    if len(positives) < n_positive:
        raise ValueError(f"only {len(positives)} tiles hold {least} microtubule pixels")
    return positives + negatives


def parse(config: str) -> tuple[str, int, int]:
    """``default+context=1+tta=2`` -> (recipe, context, tta)."""
    name, *extras = config.split("+")
    values = dict(e.split("=") for e in extras)
    return name, int(values.get("context", 0)), int(values.get("tta", 1))


def dice_curve(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    n_true = truth.sum()
    return np.array([2 * (truth & (scores >= t)).sum() / max(n_true + (scores >= t).sum(), 1) for t in THRESHOLDS])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(SHARED_DATA / "real" / "tardis_mt_patches"))
    parser.add_argument("--configs", nargs="+", default=["paper", "default", "default+context=1"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--voxel-size", type=float, default=25.0)
    parser.add_argument("--json", default=None, help="add the results to this file (kept runs are skipped)")
    args = parser.parse_args(argv)

    data = {}
    for name in PATCHES:
        raw = tifffile.imread(Path(args.data) / f"{name}.tif").astype(np.float32)
        mask = (tifffile.imread(Path(args.data) / f"{name}_mask.tif") > 0).astype(np.uint8)
        data[name] = (preprocess(raw, args.voxel_size, PreprocessConfig()), mask)
    path = Path(args.json) if args.json else None
    results = json.loads(path.read_text()) if path and path.exists() else []
    done = {(r["config"], r["train"], r["seed"]) for r in results}
    for config in args.configs:
        recipe_name, context, tta = parse(config)
        for seed in args.seeds:
            for train_on, test_on in (PATCHES, PATCHES[::-1]):
                if (config, train_on, seed) in done:
                    continue
                vol, mask = data[train_on]
                ts = make_trainset(vol, boxes_for(mask, seed), lambda z: mask[z] > 0, "microtubule", args.voxel_size,
                                   context=context)
                t0 = time.perf_counter()
                result = train(ts, recipe(recipe_name, seed=seed))
                seconds = time.perf_counter() - t0
                test_vol, test_mask = data[test_on]
                scores = score_volume(result.net, result.amplitude, test_vol, tta=tta)
                curve = dice_curve(scores, test_mask > 0)
                best = int(np.argmax(curve))
                level = level_of(scores)  # merge/pick --calibrate: threshold at level / the training tiles' level
                calibrated = (float(np.interp(level / result.level, THRESHOLDS, curve))
                              if level is not None and result.level else None)
                r = {"config": config, "train": train_on, "test": test_on, "seed": seed,
                     "n_negative": ts.n_negative, "dice_at_1": float(curve[THRESHOLDS == 1.0][0]),
                     "best_dice": float(curve[best]), "best_threshold": float(THRESHOLDS[best]),
                     "dice_calibrated": calibrated, "train_seconds": seconds}
                results.append(r)
                print(f"{config} seed {seed}: {train_on} -> {test_on} ({ts.n_negative} negatives): Dice at 1 "
                      f"{r['dice_at_1']:.3f}, best {r['best_dice']:.3f} at {r['best_threshold']:.2f}; {seconds:.0f} s",
                      flush=True)
                if path:
                    path.write_text(json.dumps(results, indent=1))
    print("\n| configuration | " + " | ".join(f"{a[:1]} -> {b[:1]}" for a, b in (PATCHES, PATCHES[::-1])) + " |")
    print("|---|---|---|")
    for config in args.configs:
        cells = []
        for train_on in PATCHES:
            got = [r for r in results if r["config"] == config and r["train"] == train_on]
            cells.append(f"{np.mean([r['dice_at_1'] for r in got]):.2f} (best {np.mean([r['best_dice'] for r in got]):.2f})"
                         if got else "")
        print(f"| {config} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
