"""glibc's malloc thresholds: page faults, system time and wall time of a training step and of
the FFT engine on one slice, with glibc's defaults and with ``keep_freed_memory``.

Each configuration runs in a fresh process (the thresholds are per process), alternating
``--rounds`` times; figures are medians over rounds.

    python benchmarks/allocator.py [--rounds 4] [--steps 20] [--slice 2048]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys


def _child(mode: str, steps: int, size: int) -> None:
    import resource
    import time

    if mode == "tuned":
        from tomoseg.allocator import keep_freed_memory

        keep_freed_memory()
    import torch

    from tomoseg.nn.engines import OverlapSaveEngine
    from tomoseg.nn.network import SegNet, init_weights
    from tomoseg.nn.overlap_save import overlap_save_forward
    from tomoseg.nn.spectral import spectral_forward
    from tomoseg.steps.train import l1_penalty, log_mse_loss

    net = init_weights(SegNet(), 0)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(20, 1, 64, 64, generator=g) / 3, torch.rand(20, 1, 32, 32, generator=g)

    def step():
        loss = log_mse_loss(spectral_forward(net, x), y) + 1e-5 * l1_penalty(net)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def measure(fn, count):
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        for _ in range(count):
            fn()
        r1, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - t0
        return {"faults": (r1.ru_minflt - r0.ru_minflt) / count, "sys_ms": (r1.ru_stime - r0.ru_stime) / count * 1e3,
                "wall_ms": wall / count * 1e3}

    for _ in range(3):
        step()
    train = measure(step, steps)
    prep = OverlapSaveEngine().prepare(net, torch.device("cpu"))
    s = (torch.randn(1, 1, size, size, generator=g).clamp(-3, 3) / 3)
    overlap_save_forward(prep, s)
    engine = measure(lambda: overlap_save_forward(prep, s), 2)
    print(json.dumps({"train": train, "engine": engine}))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--slice", type=int, default=2048)
    args = ap.parse_args()
    runs: dict[str, list[dict]] = {"default": [], "tuned": []}
    for _ in range(args.rounds):
        for mode in runs:
            out = subprocess.run([sys.executable, __file__, "--child", mode, str(args.steps), str(args.slice)],
                                 capture_output=True, text=True, check=True).stdout
            runs[mode].append(json.loads(out.strip().splitlines()[-1]))
    print(f"{'malloc':8s} {'what':28s} {'page faults':>12s} {'sys ms':>8s} {'wall ms':>8s}   (medians of {args.rounds})")
    for what, label in (("train", "training step (batch 20)"), ("engine", f"engine, {args.slice} x {args.slice} slice")):
        for mode, rows in runs.items():
            med = {k: statistics.median(r[what][k] for r in rows) for k in ("faults", "sys_ms", "wall_ms")}
            print(f"{mode:8s} {label:28s} {med['faults']:12.0f} {med['sys_ms']:8.1f} {med['wall_ms']:8.1f}")


if __name__ == "__main__":
    main()
