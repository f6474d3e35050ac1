"""What the levers of issue #17 cost, side by side in one run: training steps and applying.

- Training: seconds per minibatch of 20 tiles (64 x 64) with the fast training path (``spectral_forward``
  and its backward pass, SGD step), for slab context 0 (the paper's network), 1 and 2, on random
  weights and inputs; the ratio to context 0 is what a full training costs more (every recipe takes
  the same number of steps).
- Applying: Mvoxel/s of the default engine on a preprocessed 80 x 256 x 256 tomogram for context 0 and
  1, and test-time augmentation 1, 2, 4 and 8 (context 0), each the best of ``--repeats`` runs.

    python benchmarks/transfer_cost.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from tomoseg.allocator import keep_freed_memory
from tomoseg.nn.network import NetworkConfig, SegNet, init_weights
from tomoseg.nn.spectral import spectral_forward
from tomoseg.steps.preprocess import preprocess
from tomoseg.steps.segment import score_volume
from tomoseg.steps.train import log_mse_loss
from tomoseg.testing import make_tomogram


def seconds_per_step(context: int, steps: int = 10) -> float:
    net = init_weights(SegNet(NetworkConfig(context=context)), 0)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(20, 2 * context + 1, 64, 64, generator=g) / 3, torch.rand(20, 1, 32, 32, generator=g)
    for i in range(steps + 1):
        if i == 1:
            t0 = time.perf_counter()
        loss = log_mse_loss(spectral_forward(net, x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / steps


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    keep_freed_memory()
    print(f"# {platform.machine()}, {torch.get_num_threads()} torch threads, {time.strftime('%Y-%m-%d %H:%M')}")
    steps = {k: min(seconds_per_step(k) for _ in range(args.repeats)) for k in (0, 1, 2)}
    print("\n| slab context | s per minibatch of 20 | vs context 0 |\n|---|---|---|")
    for k, s in steps.items():
        print(f"| {k} ({2 * k + 1} slices) | {s:.3f} | {s / steps[0]:.2f}x |")
    sim = make_tomogram((80, 256, 256), seed=0)
    vol = preprocess(sim.volume, sim.voxel_size)
    rows = []
    for context, tta in ((0, 1), (1, 1), (0, 2), (0, 4), (0, 8)):
        net = init_weights(SegNet(NetworkConfig(context=context)), 0)
        best = np.inf
        for _ in range(args.repeats if tta <= 2 else 1):
            t0 = time.perf_counter()
            score_volume(net, 1.0, vol, tta=tta)
            best = min(best, time.perf_counter() - t0)
        rows.append((context, tta, vol.size / best / 1e6))
    print("\n| slab context | tta | Mvoxel/s | vs plain |\n|---|---|---|---|")
    for context, tta, speed in rows:
        print(f"| {context} | {tta} | {speed:.2f} | {speed / rows[0][2]:.2f}x |")


if __name__ == "__main__":
    main()
