"""Training speed: conv2d vs FFT convolutions, paper recipe vs default recipe.

Measures seconds per minibatch of 20 (64 x 64 tiles) with torch's conv2d, with
tomoseg's autograd FFT convolution (``fftconv``) and with the training path
``train`` uses (``spectral``: FFT convolutions with hand-written backward
passes), extrapolates the paper recipe's 2,000 samples
x 20 epochs for conv2d (a full run takes most of an hour), and times full
training runs of the paper and default recipes with FFT convolutions on a
10 positive + 100 negative training set from a generated tomogram (the fast
recipe, then the default).

    python benchmarks/train_speed.py [--full-paper]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from tomoseg.allocator import keep_freed_memory
from tomoseg.nn.fftconv import fft_conv2d_same
from tomoseg.nn.network import SegNet, conv2d_same, init_weights
from tomoseg.nn.spectral import spectral_forward
from tomoseg.steps.preprocess import preprocess
from tomoseg.steps.recipes import recipe
from tomoseg.steps.train import augmented_samples, copies_per_tile, log_mse_loss, train
from tomoseg.steps.trainset import choose_boxes, make_trainset
from tomoseg.testing import make_tomogram


def seconds_per_batch(conv, batches: int = 10) -> float:
    """``conv``: a convolution for ``SegNet.forward``, or "spectral" for :func:`spectral_forward`."""
    net = init_weights(SegNet(), 0)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(20, 1, 64, 64, generator=g), torch.rand(20, 1, 32, 32, generator=g)
    for i in range(batches + 1):
        if i == 1:
            t0 = time.perf_counter()
        out = spectral_forward(net, x) if conv == "spectral" else net(x, conv=conv)
        loss = log_mse_loss(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / batches


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full-paper", action="store_true", help="also run the paper recipe in full (~5 min)")
    args = parser.parse_args(argv)
    keep_freed_memory()  # as train() does: every figure below with the same malloc settings
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}")
    sim = make_tomogram((64, 192, 192), seed=0)
    pre = preprocess(sim.volume, sim.voxel_size)
    ts = make_trainset(pre, choose_boxes(sim.labels, 3, 10, 100, seed=1), lambda z: sim.labels[z] == 3,
                       "particle", sim.voxel_size)
    paper = recipe("paper")
    pos, neg = copies_per_tile(ts.n_positive, ts.n_negative, paper.negative_copies)
    n_samples = pos * ts.n_positive + neg * ts.n_negative
    n_batches = paper.epochs * -(-n_samples // paper.batch_size)
    for name, conv in [("conv2d", conv2d_same), ("fftconv", fft_conv2d_same), ("spectral", "spectral")]:
        spb = seconds_per_batch(conv, batches=10 if name == "conv2d" else 40)
        print(f"{name}: {spb:.3f} s per batch of 20 -> paper recipe ({n_samples} samples x {paper.epochs} "
              f"epochs = {n_batches} batches) ~ {spb * n_batches / 60:.1f} min (extrapolated)")
    runs = [("fast", recipe("fast")), ("default", recipe("default"))] + ([("paper", paper)] if args.full_paper else [])
    for name, cfg in runs:
        x, _ = augmented_samples(ts, cfg, np.random.default_rng(0))
        t0 = time.perf_counter()
        train(ts, cfg)
        print(f"{name} recipe, full training: {time.perf_counter() - t0:.1f} s "
              f"({len(x)} samples x {cfg.epochs} epochs)")


if __name__ == "__main__":
    main()
