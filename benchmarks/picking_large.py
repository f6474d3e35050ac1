"""Picking on a large score map, end to end: ``tomoseg pick`` in each mode, time and peak memory.

Writes a (Z, Y, X) float32 score map (default 256 x 1024 x 1024, a bin-4 tomogram of a
4k camera: 1 GiB) holding ``--balls`` planted spheres of radius 8 scoring 2 over
Gaussian noise (sd 0.1), then runs ``tomoseg pick`` (blob, filament, membrane) on it,
each in a fresh process whose own peak RSS (VmHWM) is reported. Needs ~3 GiB of disk.

    python benchmarks/picking_large.py [--shape 256 1024 1024] [--balls 3000] [--modes blob filament membrane]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _child(scores: str, out: str, mode: str) -> None:
    from tomoseg.cli.main import main

    t0 = time.perf_counter()
    code = main(["pick", scores, "-o", out, "--mode", mode, "-q"] + (["--diameter", "170"] if mode == "blob" else []))
    seconds = time.perf_counter() - t0
    status = Path("/proc/self/status").read_text()
    peak = int(status.split("VmHWM:")[1].split()[0]) / 1024
    print(json.dumps({"code": code, "seconds": seconds, "peak_rss_mib": peak}))


def _write_map(path: Path, shape, balls: int, seed: int = 0) -> None:
    from tomoseg.io.mrc import create_volume, header_label

    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[-8:9, -8:9, -8:9]
    ball = (z**2 + y**2 + x**2 <= 64).astype(np.float32) * 2.0
    data = rng.standard_normal(shape, dtype=np.float32) * 0.1
    for cz, cy, cx in rng.integers([10, 10, 10], np.array(shape) - 10, size=(balls, 3)):
        box = (slice(cz - 8, cz + 9), slice(cy - 8, cy + 9), slice(cx - 8, cx + 9))
        np.maximum(data[box], ball, out=data[box])
    with create_volume(path, shape, np.float32, 10.0, labels=(header_label("feature", "blobs"),)) as out:
        out[:] = data


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(*sys.argv[2:5])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", nargs=3, type=int, default=[256, 1024, 1024], metavar=("Z", "Y", "X"))
    parser.add_argument("--balls", type=int, default=3000)
    parser.add_argument("--modes", nargs="+", default=["blob", "filament", "membrane"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scores = Path(tmp) / "scores.mrc"
        _write_map(scores, tuple(args.shape), args.balls)
        print(f"machine: {platform.machine()}; map {' x '.join(map(str, args.shape))} ({scores.stat().st_size / 2**30:.2f} GiB), "
              f"{args.balls} planted balls")
        for mode in args.modes:
            out = Path(tmp) / f"{mode}.star"
            result = subprocess.run([sys.executable, __file__, "--child", str(scores), str(out), mode],
                                    capture_output=True, text=True)
            if result.returncode != 0:
                raise SystemExit(f"pick --mode {mode} failed:\n{result.stderr}")
            r = json.loads(result.stdout.strip().splitlines()[-1])
            print(f"{mode:9s} {r['seconds']:7.1f} s   peak RSS {r['peak_rss_mib']:7.0f} MiB")


if __name__ == "__main__":
    main()
