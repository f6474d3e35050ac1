"""Two tomoseg jobs side by side: does each slow down by 2x (fair sharing) or by 10x (threads fighting)?

Trains the same network (the default recipe, shortened to ``--epochs``) in one process alone,
then in two processes at once, under each thread policy, and prints each run's wall time and
the slowdown of the pair against the lone run. Policies:

- ``spin``: OMP_WAIT_POLICY=ACTIVE (OpenMP threads spin while they wait for work, as libgomp
  does for a while by default): each process takes every core;
- ``before``: the environment as it was, no OMP_WAIT_POLICY (libgomp's default: spin, then sleep);
- ``tomoseg``: what tomoseg's front ends now set (``tomoseg.nn.threads.share_cores_politely``:
  OMP_WAIT_POLICY=PASSIVE).

Every run uses tomoseg's default thread count, ``available_cores()``.

    python benchmarks/threads.py [--epochs 2] [--policies spin before tomoseg]

Run it on an otherwise idle machine (the point is what two jobs do to each other).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

POLICIES = {
    "spin": {"OMP_WAIT_POLICY": "ACTIVE"},
    "before": {},
    "tomoseg": {"OMP_WAIT_POLICY": "PASSIVE"},
}


def worker(trainset: str, epochs: int) -> None:
    """One training run (in a fresh process); prints its wall time."""
    from tomoseg.allocator import keep_freed_memory
    from tomoseg.io.trainset_file import load_trainset
    from tomoseg.nn.threads import available_cores
    from tomoseg.steps.recipes import recipe
    from tomoseg.steps.train import train
    import torch

    torch.set_num_threads(available_cores())
    keep_freed_memory()  # as the CLI does at start-up
    data = load_trainset(trainset)
    t0 = time.perf_counter()
    train(data, recipe("default", epochs=epochs, seed=0))
    print(f"{time.perf_counter() - t0:.2f}")


def make_trainset_file(path: Path) -> None:
    from tomoseg.io.trainset_file import save_trainset
    from tomoseg.steps.preprocess import preprocess
    from tomoseg.steps.trainset import choose_boxes, make_trainset
    from tomoseg.testing import make_tomogram

    sim = make_tomogram((48, 160, 160), voxel_size=10.0, seed=0)
    pre = preprocess(sim.volume, sim.voxel_size)
    boxes = choose_boxes(sim.labels, 1, n_positive=10, n_negative=100, seed=1)
    save_trainset(path, make_trainset(pre, boxes, lambda z: sim.labels[z] == 1, "membrane", sim.voxel_size))


def run(trainset: Path, epochs: int, policy: str, copies: int) -> list[float]:
    """Wall times of ``copies`` trainings started at once."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(POLICIES[policy])
    cmd = [sys.executable, __file__, "--worker", str(trainset), "--epochs", str(epochs)]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) for _ in range(copies)]
    times = []
    for p in procs:
        out, _ = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"a training failed (exit {p.returncode})")
        times.append(float(out.strip().splitlines()[-1]))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=list(POLICIES))
    parser.add_argument("--worker", metavar="TRAINSET")
    parser.add_argument("--out", default="benchmarks/out")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.epochs)
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    trainset = out / "threads_membrane.set"
    if not trainset.exists():
        make_trainset_file(trainset)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"affinity {len(os.sched_getaffinity(0))}; {time.strftime('%Y-%m-%d %H:%M')}; "
          f"default recipe, {args.epochs} epochs")
    print("| policy | one alone (s) | two side by side (s each) | slowdown |")
    print("|---|---|---|---|")
    for policy in args.policies:
        alone = run(trainset, args.epochs, policy, 1)[0]
        pair = run(trainset, args.epochs, policy, 2)
        print(f"| {policy} | {alone:.1f} | {pair[0]:.1f}, {pair[1]:.1f} | {max(pair) / alone:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
