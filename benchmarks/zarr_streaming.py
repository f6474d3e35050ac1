"""Streaming apply: OME-Zarr in and out against MRC in and out (issue #20).

One preprocessed-looking volume (clamped noise, 10 A, the preprocess header label) is written as MRC and as
OME-Zarr (slab by slab), with a random network of the paper's shape; ``apply_file`` runs on each in a fresh
process (its own peak RSS, ``VmHWM``), MRC first then OME-Zarr, ``--repeats`` times alternating. Reported:
seconds, Mvox/s and peak RSS per format, and the OME-Zarr / MRC ratios (the targets: within 10 %).
The OME-Zarr output includes its multiscale pyramid (written after level 0: part of the cost).
``--ngff05`` adds a third input: the same volume as an NGFF 0.5 (zarr v3) store written by ngff-zarr (one
level, 16 x 256 x 256 chunks, its default zstd codec), read by tomoseg through ngff-zarr and applied to an
OME-Zarr (NGFF 0.4) output.

    python benchmarks/zarr_streaming.py [--size 2048] [--slices 256] [--repeats 1] [--threads N] [--ngff05]
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


def _child(model: str, tomo: str, out: str, threads: int) -> None:
    from tomoseg.allocator import keep_freed_memory
    from tomoseg.workflows import apply_file

    keep_freed_memory()
    t0 = time.perf_counter()
    apply_file(model, tomo, out, device="cpu", threads=threads or None)
    seconds = time.perf_counter() - t0
    status = Path("/proc/self/status").read_text()
    print(json.dumps({"seconds": seconds, "peak_rss_mib": int(status.split("VmHWM:")[1].split()[0]) / 1024}))


def _ngff05_copy(mrc: Path, out: Path) -> Path:
    """The MRC volume as an NGFF 0.5 store, written by ngff-zarr from a dask view of its memory map."""
    import dask.array as da
    import mrcfile
    import ngff_zarr as nz

    with mrcfile.mmap(mrc, mode="r") as f:
        data = da.from_array(f.data, chunks=(16, 256, 256))
        image = nz.to_ngff_image(data, dims=["z", "y", "x"], scale=dict.fromkeys("zyx", 10.0),
                                 axes_units=dict.fromkeys("zyx", "angstrom"))
        nz.to_ngff_zarr(str(out), nz.to_multiscales(image, scale_factors=[], chunks=(16, 256, 256)), version="0.5")
    return out


def _inputs(folder: Path, size: int, slices: int) -> tuple[Path, list[Path]]:
    import torch

    from tomoseg.io.model_file import save_model
    from tomoseg.io.mrc import create_volume, header_label
    from tomoseg.io.pages import write_slab
    from tomoseg.nn.model import Model
    from tomoseg.nn.network import SegNet, init_weights
    from tomoseg.steps.preprocess import PreprocessConfig

    pre = PreprocessConfig()
    net = init_weights(SegNet(), 0)
    with torch.no_grad():
        net.conv4.bias.fill_(0.01)
    model = folder / "net.model"
    save_model(model, Model(net=net, amplitude=1.0, name="bench", voxel_size=10.0, preprocessing=pre.to_dict()))
    tomos = []
    for suffix in (".mrc", ".zarr"):
        rng = np.random.default_rng(0)
        tomo = folder / f"tomo{suffix}"
        with create_volume(tomo, (slices, size, size), np.float32, 10.0,
                           labels=(header_label("preprocess", pre.describe()),)) as out:
            for z0 in range(0, slices, 16):
                n = min(16, slices - z0)
                write_slab(out, z0, np.clip(rng.standard_normal((n, size, size), dtype=np.float32), -3, 3))
        tomos.append(tomo)
    return model, tomos


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--slices", type=int, default=256)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--ngff05", action="store_true", help="also an NGFF 0.5 input (needs ngff-zarr)")
    p.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        model, tomo, out, threads = args.child
        _child(model, tomo, out, int(threads))
        return
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        model, (mrc, omz) = _inputs(folder, args.size, args.slices)
        inputs = {"MRC": mrc, "OME-Zarr": omz}
        if args.ngff05:
            inputs["NGFF 0.5 in, OME-Zarr out"] = _ngff05_copy(mrc, folder / "tomo05.zarr")
        print(f"# inputs written in {time.perf_counter() - t0:.0f} s", flush=True)
        results: dict[str, list[dict]] = {name: [] for name in inputs}
        for _ in range(args.repeats):
            for name, tomo in inputs.items():
                out = folder / f"scores{tomo.suffix}"
                r = subprocess.run([sys.executable, __file__, "--child", str(model), str(tomo), str(out),
                                    str(args.threads)], capture_output=True, text=True)
                if r.returncode:
                    raise SystemExit(r.stderr)
                results[name].append(json.loads(r.stdout.strip().splitlines()[-1]))
                print(name, results[name][-1], flush=True)
                subprocess.run(["rm", "-rf", str(out)])
    voxels = args.size * args.size * args.slices
    rows = {}
    for name, runs in results.items():
        seconds = float(np.median([r["seconds"] for r in runs]))
        rss = float(np.max([r["peak_rss_mib"] for r in runs]))
        rows[name] = (seconds, voxels / seconds / 1e6, rss)
    print(f"\n{args.size} x {args.size} x {args.slices} float32, {platform.machine()}, "
          f"{time.strftime('%Y-%m-%d')}, {args.repeats} run(s) each (median seconds, largest peak RSS)\n")
    print("| format | seconds | Mvox/s | peak RSS (MiB) |")
    print("|---|---|---|---|")
    for name, (s, mv, rss) in rows.items():
        print(f"| {name} | {s:.0f} | {mv:.2f} | {rss:.0f} |")
    _, mmv, mrss = rows["MRC"]
    for name, (_, zmv, zrss) in list(rows.items())[1:]:
        print(f"\n{name} / MRC: throughput {zmv / mmv:.2f}x, peak RSS {zrss / mrss:.2f}x")


if __name__ == "__main__":
    main()
