"""From annotation to structure on the simulated tomograms (issue 5's target).

Train a ribosome network on tomo_s11 (10 positive + 100 negative tiles, default
recipe, as benchmarks/accuracy.py), apply it to tomo_s12, pick with the default
settings, extract 40^3 subtomograms from the raw tomo_s12 (contrast inverted:
protein bright, like the template), refine without a reference (gold-standard
halves from randomised orientations), and report the FSC resolution, the time,
and the average's correlation with the true template (after aligning the two).
Writes average.mrc, the FSC table and pictures into --out.

    python benchmarks/averaging.py --out /tmp/avg [--model ribosome.model] [--box 40]
    python benchmarks/averaging.py --planted 40 --box 32    # time only: 40 planted 32^3 subtomograms
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from shared_data import SHARED_DATA  # TOMOSEG_SHARED_DATA, else ../shared/data

from tomoseg.allocator import keep_freed_memory
from tomoseg.io.model_file import load_model, save_model
from tomoseg.io.mrc import read_volume, write_volume
from tomoseg.steps.average import AverageConfig, align_maps, refine
from tomoseg.steps.extract import ExtractConfig, extract_subtomograms
from tomoseg.steps.pick import PickConfig, pick_particles
from tomoseg.steps.preprocess import PreprocessConfig, preprocess
from tomoseg.steps.segment import score_volume
from tomoseg.steps.recipes import recipe
from tomoseg.steps.train import train
from tomoseg.steps.trainset import choose_boxes, make_trainset
from tomoseg.testing.metrics import match_points

keep_freed_memory()  # as the CLI does at start-up (tomoseg.allocator): the figures keep their malloc settings


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(SHARED_DATA))
    parser.add_argument("--out", required=True)
    parser.add_argument("--model", help="reuse (or save) the ribosome model here")
    parser.add_argument("--box", type=int, default=40)
    parser.add_argument("--iterations", type=int, default=AverageConfig().iterations)
    parser.add_argument("--global-iterations", type=int, default=AverageConfig().global_iterations)
    parser.add_argument("--planted", type=int, help="instead: time refinement of this many planted subtomograms")
    args = parser.parse_args(argv)
    if args.planted:
        return planted(args)
    data, out = Path(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sim = data / "sim"
    pre = PreprocessConfig()
    s11 = read_volume(sim / "tomo_s11_tomo.mrc", mmap=False)
    s12 = read_volume(sim / "tomo_s12_tomo.mrc", mmap=False)
    voxel = s12.voxel_size
    from tomoseg.nn.model import Model

    if args.model and Path(args.model).exists():
        model = load_model(args.model)
        net, amplitude = model.net, model.amplitude
    else:
        labels = read_volume(sim / "tomo_s11_labels.mrc", mmap=False).data.view(np.uint8)
        train_vol = preprocess(s11.data, voxel, pre)
        boxes = choose_boxes(labels, 4, 10, 100, seed=4)
        ts = make_trainset(train_vol, boxes, lambda z: labels[z] == 4, "ribosome", voxel)
        result = train(ts, recipe("default"))
        net, amplitude = result.net, result.amplitude
        if args.model:
            save_model(args.model, Model(net=net, amplitude=amplitude, name="ribosome", voxel_size=voxel,
                                         preprocessing=pre.to_dict(), training={}, examples=result.examples))
    scores = score_volume(net, amplitude, preprocess(s12.data, voxel, pre))
    picks = pick_particles(scores, voxel, PickConfig(split=False))  # as measured in docs/averaging.md (session 3)
    truth = pd.read_csv(sim / "tomo_s12_particles.csv").query("`class` == 'ribosome'")[["x", "y", "z"]].to_numpy()
    precision, recall, tp = match_points(picks.xyz, truth, 10.0)
    print(f"picks {len(picks)}, precision {precision:.3f}, recall {recall:.3f}", flush=True)

    stack, inside = extract_subtomograms(s12.data, picks.xyz, ExtractConfig(box=args.box, invert=True))
    t0 = time.perf_counter()
    config = AverageConfig(iterations=args.iterations, global_iterations=args.global_iterations)
    res = refine(stack, voxel, config, progress=lambda d, t, m: print(f"  {m} ({time.perf_counter() - t0:.0f} s)",
                                                                      flush=True))
    seconds = time.perf_counter() - t0
    template = read_volume(data / "templates/ribosome_80S_4v7r_10A.mrc", mmap=False).data.astype(np.float32)
    n = args.box
    c0 = (template.shape[0] - n) // 2
    template = template[c0 : c0 + n, c0 : c0 + n, c0 : c0 + n] if template.shape[0] > n else template
    import torch

    from tomoseg.ops.rotations import rotate_volumes
    from tomoseg.ops.shells import fsc, lowpass_box, resolution_at, soft_sphere

    mask = torch.from_numpy(soft_sphere(n, 0.4 * n, 2.0))
    t = align_maps(lowpass_box(template, voxel, res.resolution), res.average, voxel, max(res.resolution, 25.0),
                    mask, True, 5.0, 0)
    from tomoseg.steps.average import fourier_shift

    moved = fourier_shift(rotate_volumes(torch.from_numpy(res.average), t.angles), t.shifts).numpy()[0]
    m = mask.numpy()
    cc = float(np.corrcoef((moved * m).ravel(), (lowpass_box(template, voxel, res.resolution) * m).ravel())[0, 1])
    unaligned = lowpass_box(stack.mean(axis=0), voxel, res.resolution)
    cc_unaligned = float(np.corrcoef((unaligned * m).ravel(), (lowpass_box(template, voxel, res.resolution) * m).ravel())[0, 1])
    template_fsc = fsc(moved * m, template * m)
    summary = {"picks": len(picks), "precision": precision, "recall": recall, "box": n,
               "resolution_half_maps": res.resolution, "seconds": seconds,
               "cc_with_template": cc, "cc_unaligned_with_template": cc_unaligned,
               "resolution_vs_template_0.5": resolution_at(template_fsc, n, voxel, 0.5),
               "history": res.history}
    print(json.dumps(summary, indent=1, default=float))
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
    write_volume(out / "average.mrc", res.average, voxel)
    write_volume(out / "average_aligned_to_template.mrc", moved.astype(np.float32), voxel)
    from tomoseg.workflows.average_figures import fsc_figure, slices_figure

    fsc_figure(out / "fsc.png", res.fsc, n, voxel, res.resolution,
               title=f"{len(picks)} ribosome picks from tomo_s12: {res.resolution:.1f} A at FSC 0.143")
    slices_figure(out / "slices.png", [moved, lowpass_box(template, voxel, res.resolution), unaligned],
                  ["average (aligned to template)", "template (same low-pass)", "unaligned mean"])
    pd.DataFrame({"shell": np.arange(len(res.fsc)), "resolution_A": [np.inf] + [n * voxel / i for i in range(1, len(res.fsc))],
                  "fsc": res.fsc}).to_csv(out / "fsc.csv", index=False, float_format="%.4g")


def planted(args) -> None:
    """Time the default refinement (no reference) of planted-template subtomograms; report accuracy too."""
    import resource

    from tomoseg.ops.rotations import angular_distance
    from tomoseg.testing.particles import asymmetric_template, planted_subtomograms

    template = asymmetric_template(args.box)
    stack, angles, _ = planted_subtomograms(template, args.planted, noise=1.0, seed=1)
    config = AverageConfig(iterations=args.iterations, global_iterations=args.global_iterations)
    for name, ref in (("no reference", None), ("template as reference", template)):
        t0 = time.perf_counter()
        res = refine(stack, 10.0, config, reference=ref)
        seconds = time.perf_counter() - t0
        line = f"{args.planted} x {args.box}^3, {name}: {seconds:.1f} s, FSC 0.143 {res.resolution:.1f} A"
        if ref is not None:
            err = angular_distance(res.alignment.angles, angles)
            line += f", orientation error median {np.median(err):.1f} deg, {np.mean(err < 20):.0%} within 20 deg"
        print(line, flush=True)
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
