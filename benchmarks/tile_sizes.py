"""Layer-3/4 tile sizes of the FFT engine: time per tile and per slice, sizes interleaved.

    python benchmarks/tile_sizes.py [--sizes 160 180 200] [--slice 1024 2048] [--passes 6]

For each FFT size: ``_layers34`` on a group of 4 random tiles (ms per tile, ns per FFT
point; best of the passes), then ``overlap_save_forward`` on one clamped-noise slice of each
``--slice`` size (median and best seconds). A random network of the paper's shape: speed
does not depend on the weights.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from tomoseg.allocator import keep_freed_memory
from tomoseg.nn.network import SegNet, init_weights
from tomoseg.nn.overlap_save import PreparedNet, TilePlan, _layers34, overlap_save_forward

keep_freed_memory()  # as the CLI does at start-up (tomoseg.allocator): the figures keep their malloc settings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 160, 180, 200, 216, 256])
    ap.add_argument("--slice", type=int, nargs="+", default=[1024, 2048])
    ap.add_argument("--passes", type=int, default=6)
    args = ap.parse_args()
    net = init_weights(SegNet(), 0)
    preps = {n: PreparedNet(net, TilePlan(fft=n)) for n in args.sizes}
    per_tile = {n: [] for n in args.sizes}
    for _ in range(args.passes):
        for n in args.sizes:
            z = torch.randn(4, 20, n, n, dtype=torch.complex64)
            inside = [(slice(0, n), slice(0, n))] * 4
            _layers34(preps[n], z, inside)
            t0 = time.perf_counter()
            _layers34(preps[n], z, inside)
            per_tile[n].append((time.perf_counter() - t0) / 4)
    print("fft  output  ms/tile  ns/FFT point")
    for n in args.sizes:
        t = min(per_tile[n])
        print(f"{n:4d}  {n - 28:6d}  {t * 1e3:7.2f}  {t / n / n * 1e9:12.0f}")
    for size in args.slice:
        x = torch.randn(1, 1, size, size).clamp(-3, 3)
        times = {n: [] for n in args.sizes}
        for n in args.sizes:
            overlap_save_forward(preps[n], x)
        for _ in range(args.passes):
            for n in args.sizes:
                t0 = time.perf_counter()
                overlap_save_forward(preps[n], x)
                times[n].append(time.perf_counter() - t0)
        for n in args.sizes:
            tiles = -(-(size // 2) // (n - 28))
            med = statistics.median(times[n])
            print(f"slice {size}: fft {n}: {tiles} x {tiles} tiles, median {med:.3f} s (best {min(times[n]):.3f}), "
                  f"{size * size / med / 1e6:.2f} Mvox/s")


if __name__ == "__main__":
    main()
