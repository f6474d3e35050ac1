"""Picking speed: connected components, their peaks, and the whole blob picker.

On a smoothed-noise score map (seeded; the size of the simulated tomograms by
default), times ``ndimage.label``, :func:`find_components` and
:func:`pick_particles` with and without splitting touching particles. Best of
``--repeat`` runs each.

    python benchmarks/picking.py [--shape 80 256 256] [--repeat 3]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
from scipy import ndimage

from tomoseg.allocator import keep_freed_memory
from tomoseg.steps.pick import PickConfig, find_components, pick_particles

keep_freed_memory()  # as the CLI does at start-up (tomoseg.allocator): the figures keep their malloc settings


def best_of(repeat: int, work) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        work()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", nargs=3, type=int, default=[80, 256, 256], metavar=("Z", "Y", "X"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    scores = ndimage.gaussian_filter(rng.standard_normal(args.shape).astype(np.float32), 2) * 8
    n = ndimage.label(scores >= 1.0)[1]
    print(f"machine: {platform.machine()}; map {' x '.join(map(str, args.shape))}, {n} components at threshold 1")
    cases = {
        "ndimage.label": lambda: ndimage.label(scores >= 1.0),
        "find_components": lambda: find_components(scores, 1.0),
        "pick_particles (split)": lambda: pick_particles(scores, 10.0, PickConfig()),
        "pick_particles (--no-split)": lambda: pick_particles(scores, 10.0, PickConfig(split=False)),
    }
    for name, work in cases.items():
        print(f"{name:30s} {best_of(args.repeat, work):7.3f} s")


if __name__ == "__main__":
    main()
