"""Inference and training speed: direct conv2d engine vs the FFT engine, in one run.

For each slice size (default 1024, 2048, 4096) a preprocessed-looking volume
(clamped noise) of that size x ``--slices`` slices is written to a temporary
folder with a model of the paper's network; ``tomoseg apply`` (the library call,
end to end: read, compute, write) runs in a fresh process per engine, so its
peak RSS is its own. The direct engine runs on ``--direct-slices`` slices (it is
slow) and its throughput is compared with the FFT engine's on the same slice
size. Then the default recipe trains on 10 positive + 100 negative tiles of a
generated tomogram, and the time is printed.

    python benchmarks/inference.py [--sizes 1024 2048 4096] [--slices 8] [--direct-slices 2] [--direct-sizes 1024 2048]
                                   [--threads N] [--memory 2048x64 2048x256] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _child(model: str, tomo: str, out: str, engine: str, threads: int | None, slices: int) -> None:
    from tomoseg.allocator import keep_freed_memory
    from tomoseg.workflows import apply_file

    keep_freed_memory()  # as the CLI does at start-up
    t0 = time.perf_counter()
    apply_file(model, tomo, out, engine=engine, device="cpu", threads=threads, slices_per_batch=slices or None)
    seconds = time.perf_counter() - t0
    # VmHWM: this process's own peak (ru_maxrss would include the parent's RSS at fork time).
    status = Path("/proc/self/status").read_text()
    peak = int(status.split("VmHWM:")[1].split()[0]) / 1024 if "VmHWM:" in status else (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # MiB
    print(json.dumps({"seconds": seconds, "peak_rss_mib": peak}))


def _write_inputs(folder: Path, size: int, slices: int, seed: int = 0) -> tuple[Path, Path]:
    import torch

    from tomoseg.io.model_file import save_model
    from tomoseg.io.mrc import create_volume, header_label
    from tomoseg.io.pages import release_pages
    from tomoseg.nn.model import Model
    from tomoseg.nn.network import SegNet, init_weights
    from tomoseg.steps.preprocess import PreprocessConfig

    pre = PreprocessConfig()
    model_path = folder / "net.model"
    if not model_path.exists():
        net = init_weights(SegNet(), seed)
        with torch.no_grad():
            net.conv4.bias.fill_(0.01)
        save_model(model_path, Model(net=net, amplitude=1.0, name="bench", voxel_size=10.0,
                                     preprocessing=pre.to_dict()))
    tomo = folder / f"tomo_{size}x{slices}.mrc"
    rng = np.random.default_rng(seed)
    with create_volume(tomo, (slices, size, size), np.float32, 10.0,
                       labels=(header_label("preprocess", pre.describe()),)) as out:
        for z in range(slices):
            out[z] = np.clip(rng.standard_normal((size, size), dtype=np.float32), -3, 3)
            release_pages(out[z : z + 1])
    return model_path, tomo


def _run(model: Path, tomo: Path, engine: str, threads: int | None, slices: int) -> dict:
    out = tomo.with_name(f"{tomo.stem}_{engine}.mrc")
    cmd = [sys.executable, __file__, "--child", str(model), str(tomo), str(out), engine, str(threads or 0),
           str(slices)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"benchmark run failed: {' '.join(cmd)}\n{result.stderr}")
    out.unlink(missing_ok=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _train_time() -> float:
    from tomoseg.steps.preprocess import PreprocessConfig, preprocess
    from tomoseg.steps.recipes import recipe
    from tomoseg.steps.train import train
    from tomoseg.steps.trainset import choose_boxes, make_trainset
    from tomoseg.testing import make_tomogram

    sim = make_tomogram((32, 192, 192), voxel_size=10.0, seed=1)
    pre = preprocess(sim.volume, 10.0, PreprocessConfig())
    boxes = choose_boxes(sim.labels, 3, 10, 100, seed=1)
    ts = make_trainset(pre, boxes, lambda z: sim.labels[z] == 3, "particle", 10.0)
    t0 = time.perf_counter()
    train(ts, recipe("default"))
    return time.perf_counter() - t0


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[1024, 2048, 4096])
    parser.add_argument("--slices", type=int, default=8, help="slices per volume for the FFT engine")
    parser.add_argument("--direct-slices", type=int, default=2, help="slices for the direct engine (>= 2)")
    parser.add_argument("--direct-sizes", nargs="*", type=int, default=[1024, 2048],
                        help="slice sizes on which the direct engine runs too (it is slow and memory-hungry)")
    parser.add_argument("--batch", type=int, default=0, help="slices per slab (default: tomoseg's)")
    parser.add_argument("--threads", type=int, help="CPU threads (default: all)")
    parser.add_argument("--memory", nargs="*", default=[], metavar="SIZExSLICES",
                        help="extra FFT-engine runs for peak memory, e.g. 2048x64 2048x256")
    parser.add_argument("--no-train", action="store_true", help="skip the training time")
    parser.add_argument("--markdown", help="append the results table here")
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        model, tomo, out, engine, threads, slices = args.child
        _child(model, tomo, out, engine, int(threads) or None, int(slices))
        return

    rows = []
    with tempfile.TemporaryDirectory(prefix="tomoseg-bench-") as tmp:
        folder = Path(tmp)
        runs = [(s, args.slices, s in args.direct_sizes) for s in args.sizes]
        runs += [(int(a), int(b), False) for a, b in (m.split("x") for m in args.memory)]
        for size, slices, with_direct in runs:
            model, tomo = _write_inputs(folder, size, slices)
            fft = _run(model, tomo, "fft", args.threads, args.batch)
            row = {"size": size, "slices": slices, "fft_mvox_s": size * size * slices / fft["seconds"] / 1e6,
                   "fft_peak_rss_mib": fft["peak_rss_mib"], "fft_seconds": fft["seconds"]}
            if with_direct and args.direct_slices > 0:
                _, small = _write_inputs(folder, size, args.direct_slices)
                direct = _run(model, small, "direct", args.threads, args.batch)
                row["direct_mvox_s"] = size * size * args.direct_slices / direct["seconds"] / 1e6
                row["direct_peak_rss_mib"] = direct["peak_rss_mib"]
                row["ratio"] = row["fft_mvox_s"] / row["direct_mvox_s"]
                small.unlink()
            tomo.unlink()
            rows.append(row)
            print(json.dumps(row), flush=True)
    train_seconds = None if args.no_train else _train_time()
    if train_seconds is not None:
        print(f"default recipe training (10 positive + 100 negative tiles): {train_seconds:.1f} s", flush=True)
    table = _markdown(rows, train_seconds, args)
    print(table)
    if args.markdown:
        with open(args.markdown, "a") as fh:
            fh.write(table)


def _markdown(rows: list[dict], train_seconds: float | None, args) -> str:
    import torch

    lines = [f"Machine: {platform.machine()}, {torch.get_num_threads() if args.threads is None else args.threads} "
             f"threads, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}", "",
             "| volume (x, y, z) | FFT Mvox/s | FFT peak RSS (MiB) | direct Mvox/s | FFT / direct |",
             "|---|---|---|---|---|"]
    for r in rows:
        direct = f"{r['direct_mvox_s']:.3f}" if "direct_mvox_s" in r else "-"
        ratio = f"{r['ratio']:.0f}x" if "ratio" in r else "-"
        lines.append(f"| {r['size']} x {r['size']} x {r['slices']} | {r['fft_mvox_s']:.2f} | "
                     f"{r['fft_peak_rss_mib']:.0f} | {direct} | {ratio} |")
    if train_seconds is not None:
        lines += ["", f"Default recipe training, 10 positive + 100 negative tiles: {train_seconds:.1f} s"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
