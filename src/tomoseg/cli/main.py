"""``tomoseg``: parse arguments, build a config, call one workflow function.

Heavy imports (torch) happen inside the commands, so ``--help`` is instant.
Errors in the user's input print one line ``tomoseg: error: ...`` and exit 2;
Ctrl-C exits 130 leaving no partial output.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence

from tomoseg import __version__
from tomoseg.allocator import keep_freed_memory
from tomoseg.cli.progress import progress_bar
from tomoseg.errors import Cancelled, OutputExists, TomosegError
from tomoseg.io.particle_formats import FORMATS
from tomoseg.nn.threads import share_cores_politely
from tomoseg.steps.picking_modes import PICKING_MODES
from tomoseg.steps.recipes import RECIPES, recipe
from tomoseg.steps.suggest import STRATEGIES


def _preprocess(args: argparse.Namespace) -> None:
    from tomoseg.steps.preprocess import PreprocessConfig
    from tomoseg.workflows import preprocess_file

    config = PreprocessConfig(
        lowpass=None if args.lowpass == 0 else args.lowpass,
        highpass=None if args.highpass == 0 else args.highpass,
        bin=args.bin,
        invert=args.invert,
        clamp=None if args.clamp == 0 else args.clamp,
        resample=args.resample,
    )
    with progress_bar("preprocess", quiet=args.quiet) as bar:
        out = preprocess_file(args.input, args.output, config, voxel_size=args.voxel_size, progress=bar,
                              overwrite=args.overwrite)
    _say(args, f"wrote {args.output}: {'x'.join(map(str, out.data.shape[::-1]))} voxels at {out.voxel_size:g} A")


def _convert(args: argparse.Namespace) -> None:
    from tomoseg.workflows.convert import convert_file

    with progress_bar("convert", quiet=args.quiet) as bar:
        shape, voxel = convert_file(args.input, args.output, voxel_size=args.voxel_size, overwrite=args.overwrite,
                                    progress=bar)
    _say(args, f"wrote {args.output}: {'x'.join(map(str, shape[::-1]))} voxels at {voxel:g} A")


def _trainset(args: argparse.Namespace) -> None:
    from tomoseg.workflows import trainset_file

    if args.copick:
        from tomoseg.workflows.copick import CopickSource, copick_trainset

        if args.tomogram or args.labels or args.masks:
            raise TomosegError("with --copick the tomogram and masks come from the project: leave out TOMOGRAM, "
                               "--labels and --masks")
        ts = copick_trainset(CopickSource(args.copick, (args.run,) if args.run else (), args.voxel_spacing,
                                          args.tomo_type),
                             args.output, segmentation=args.segmentation, picks=args.picks, value=args.value,
                             from_user=args.from_user, boxes=args.boxes, n_positive=args.positives,
                             n_negative=args.negatives, seed=args.seed, name=args.name, context=args.context,
                             overwrite=args.overwrite)
        _say(args, f"wrote {args.output}: {ts.n_positive} positive, {ts.n_negative} negative tiles of {ts.name!r}")
        return
    if not args.tomogram or not args.boxes:
        raise TomosegError("trainset needs TOMOGRAM and --boxes (or --copick)")

    trainset_file(args.tomogram, args.boxes, args.output, labels=args.labels, value=args.value,
                  masks=args.masks, name=args.name, overwrite=args.overwrite, context=args.context)
    _say(args, f"wrote {args.output}")


def _recipe_of(args: argparse.Namespace, fine_tune: bool = False):
    """The recipe the flags give: --recipe (default: default, or fine-tune when a network is continued)
    with the settings given."""
    return recipe(
        args.recipe or ("fine-tune" if fine_tune else "default"), epochs=args.epochs, batch_size=args.batch, learning_rate=args.lr,
        seed=args.seed, l1=args.l1, negative_copies=args.copies, optimizer=args.optimizer,
        momentum=args.momentum, positive_weight=args.positive_weight, warmup=args.warmup,
        clip_negatives=args.clip_negatives, lr_decay=args.lr_decay, clip_norm=args.clip_norm,
        imaging_jitter=args.imaging_jitter, max_steps=args.max_steps,
    )


def _train(args: argparse.Namespace) -> None:
    from tomoseg.workflows import train_file

    config = _recipe_of(args, fine_tune=args.init is not None)
    with progress_bar("train", unit="batch", quiet=args.quiet) as bar:
        model = train_file(args.trainsets, args.output, config, name=args.name, colour=args.colour, progress=bar,
                           device=args.device, threads=args.threads, overwrite=args.overwrite, init=args.init)
    losses = model.training["losses"]
    _say(args, f"wrote {args.output}: feature {model.name!r}, loss {losses[0]:.3f} -> {losses[-1]:.3f}, "
               f"amplitude {model.amplitude:.3g}")


def _suggest(args: argparse.Namespace) -> None:
    from tomoseg.steps.suggest import SuggestConfig
    from tomoseg.workflows.suggest import suggest_file

    config = SuggestConfig(n=args.n, strategy=args.strategy, threshold=args.threshold, seed=args.seed)
    with progress_bar("suggest", unit="network", quiet=args.quiet) as bar:
        found = suggest_file(args.model, args.tomogram, args.output, config, boxes=args.boxes, models=args.models or (),
                             others=args.others or (), voxel_size=args.voxel_size, force=args.force,
                             max_slices=args.slices, overwrite=args.overwrite, progress=bar, spread=args.spread)
    if len(found) < args.n:
        warnings.warn(f"only {len(found)} of {args.n} tiles: the strategy {args.strategy} finds nothing more to fix")
    _say(args, f"wrote {args.output}: {len(found)} suggested tiles; set each kind (? -> positive or negative), "
               "then add them to the feature's boxes and train --init the network")


def _apply(args: argparse.Namespace) -> None:
    from tomoseg.workflows import apply_files

    *models, tomogram = args.inputs
    if not models:
        raise TomosegError("apply needs MODEL [MODEL ...] TOMOGRAM: the model files, then the tomogram")
    try:
        with progress_bar("apply", unit="slice", quiet=args.quiet) as bar:
            outputs = apply_files(models, tomogram, args.output, engine=args.engine, force=args.force,
                                  device=args.device, threads=args.threads, slices_per_batch=args.slices,
                                  resume=args.resume, progress=bar, voxel_size=args.voxel_size,
                                  overwrite=args.overwrite, tta=args.tta)
    except KeyboardInterrupt:
        raise Cancelled("interrupted; the finished slabs are kept in a hidden partial file beside the output: "
                        "the same command with --resume continues from them") from None
    for out in outputs:
        _say(args, f"wrote {out}")


def _calibration(args: argparse.Namespace, paths) -> list[float]:
    """--calibrate: each map's scale (tomoseg.steps.calibrate), said in one line each."""
    from tomoseg.workflows.maps import calibration_scale_of

    scales = []
    for path in paths:
        scale, note = calibration_scale_of(path)
        _say(args, note)
        scales.append(scale)
    return scales


def _merge(args: argparse.Namespace) -> None:
    from tomoseg.workflows import merge_files

    scales = _calibration(args, args.scores) if args.calibrate else None
    names = merge_files(args.scores, args.output, threshold=args.threshold, overwrite=args.overwrite, scales=scales)
    legend = ", ".join(f"{k}={n}" for k, n in enumerate(names, start=1))
    _say(args, f"wrote {args.output}: 0=none, {legend}")


def _consensus(args: argparse.Namespace) -> None:
    from tomoseg.workflows import consensus_files

    with progress_bar("consensus", unit="slice", quiet=args.quiet) as bar:
        consensus_files(args.scores, args.output, spread_path=args.spread, disagreement_path=args.disagreement,
                        threshold=args.threshold, progress=bar, overwrite=args.overwrite)
    extra = [p for p in (args.spread, args.disagreement) if p]
    _say(args, f"wrote {args.output}" + (f" and {', '.join(extra)}" if extra else "")
         + f": {len(args.scores)} annotators' maps")


def _pick(args: argparse.Namespace) -> None:
    from tomoseg.steps.picking_modes import PICKING_MODES, pick_config
    from tomoseg.workflows.particles import pick_file

    every = sorted({name for m in PICKING_MODES.values() for name in m.options})
    for name in every:
        if getattr(args, name) is not None and name not in PICKING_MODES[args.mode].options:
            raise TomosegError(f"--{name.replace('_', '-')} does not apply to --mode {args.mode}")
    config = pick_config(args.mode, args.threshold, args.edge,
                         **{k: getattr(args, k) for k in PICKING_MODES[args.mode].options})
    if args.calibrate and args.label is not None:
        raise TomosegError("--calibrate applies to score maps, not to a label of a label map (--label)")
    scale = _calibration(args, [args.scores])[0] if args.calibrate else None
    picks = pick_file(args.scores, args.output, config, format=args.format, overwrite=args.overwrite,
                      label=args.label, scale=scale)
    _say(args, f"wrote {args.output}: {len(picks)} {PICKING_MODES[args.mode].what}")


def _export(args: argparse.Namespace) -> None:
    from tomoseg.workflows.particles import export_file

    picks = export_file(args.input, args.output, format=args.format, tomogram=args.tomogram,
                        input_format=args.input_format, overwrite=args.overwrite)
    _say(args, f"wrote {args.output}: {len(picks)} particles")


def _extract(args: argparse.Namespace) -> None:
    from tomoseg.steps.extract import ExtractConfig
    from tomoseg.workflows.particles import extract_file

    config = ExtractConfig(box=args.box, bin=args.bin, invert=args.invert, normalise=not args.no_normalise)
    with progress_bar("extract", unit="particle", quiet=args.quiet) as bar:
        n = extract_file(args.tomogram, args.particles, args.output, config, files=args.files,
                         overwrite=args.overwrite, progress=bar)
    _say(args, f"wrote {n} subtomograms of {args.box}^3 and {args.output}/particles.star")


def _classify2d(args: argparse.Namespace) -> None:
    from tomoseg.steps.classify2d import Classify2DConfig
    from tomoseg.workflows.particles import classify_file

    config = Classify2DConfig(n_classes=args.classes, iterations=args.iterations, seed=args.seed)
    with progress_bar("classify2d", unit="round", quiet=args.quiet) as bar:
        result, kept = classify_file(args.particles, args.output, config, keep=args.keep, thickness=args.thickness,
                                     overwrite=args.overwrite, progress=bar)
    sizes = ", ".join(f"{k}: {c}" for k, c in enumerate(result.counts))
    _say(args, f"wrote {args.output}/classes.png, classes.csv and kept.star ({kept} kept); class sizes {sizes}")


def _average(args: argparse.Namespace) -> None:
    from tomoseg.steps.average import AverageConfig
    from tomoseg.workflows.particles import average_file
    from tomoseg.workflows.pipeline import torch_threads

    config = AverageConfig(iterations=args.iterations, global_iterations=args.global_iterations,
                           global_step=args.global_step, initial_resolution=args.initial_resolution,
                           max_shift=args.max_shift, tilt_range=tuple(args.tilt_range), seed=args.seed)
    with torch_threads(args.threads), progress_bar("average", unit="step", quiet=args.quiet) as bar:
        summary = average_file(args.particles, args.output, config, reference=args.reference,
                               selection=args.selection, overwrite=args.overwrite, progress=bar,
                               use_angles=args.use_angles, device=args.device)
    _say(args, f"wrote {args.output}/average.mrc: {summary['particles']} particles, "
               f"{summary['resolution_fsc_0143']:.1f} A at FSC 0.143 ({summary['seconds']:.0f} s)")


def _align_map(args: argparse.Namespace) -> None:
    from tomoseg.workflows.particles import align_map_file

    r = align_map_file(args.map, args.reference, args.output, resolution=args.resolution, local=args.local,
                       overwrite=args.overwrite)
    _say(args, f"wrote {args.output}: turned by rot {r['rot']:.1f}, tilt {r['tilt']:.1f}, psi {r['psi']:.1f} degrees "
               f"and moved by {r['shift_x']:.2f}, {r['shift_y']:.2f}, {r['shift_z']:.2f} voxels; correlation with "
               f"the reference {r['correlation_before']:.3f} -> {r['correlation_after']:.3f} "
               f"(up to {r['resolution']:.1f} A)")


def _batch(args: argparse.Namespace) -> None:
    from tomoseg.steps.picking_modes import PICKING_MODES, pick_config, picking_mode
    from tomoseg.workflows.batch import BatchConfig, plan_batch, run_batch, write_batch_table

    picks = []
    for item in args.pick or ():
        feature, _, mode = item.partition(":")
        mode = mode or next(iter(PICKING_MODES))
        try:
            diameter = args.diameter if "diameter" in picking_mode(mode).options else None
        except TomosegError as err:
            raise TomosegError(f"--pick {item}: {err}") from None
        try:
            picks.append((feature, pick_config(mode, threshold=args.threshold, diameter=diameter)))
        except TomosegError as err:
            raise TomosegError(f"--pick {item}: {err}") from None
    config = BatchConfig(preprocess=args.preprocess, voxel_size=args.voxel_size, threshold=args.threshold,
                         picks=tuple(picks), particle_format=args.format, force=args.force,
                         overwrite=args.overwrite, device=args.device, tta=args.tta,
                         calibrate=args.calibrate)
    names, copick_source = None, None
    if args.copick:
        from tomoseg.workflows.copick import CopickSource, check_objects, tomogram_paths, user_check

        if args.tomograms:
            raise TomosegError("give the tomograms as files or as --copick runs, not both")
        user_check(args.user_id, args.session_id)
        copick_source = CopickSource(args.copick, tuple(args.runs or ()), args.voxel_spacing, args.tomo_type)
        pairs = tomogram_paths(copick_source)
        check_objects(args.copick, [feature for feature, _ in picks])
        names, tomograms = [n for n, _ in pairs], [p for _, p in pairs]
    elif args.runs:
        raise TomosegError("--runs needs --copick")
    else:
        tomograms = args.tomograms
    jobs = plan_batch(tomograms, args.models, args.output, config, names=names)
    if copick_source is not None:
        from tomoseg.workflows.copick import check_free

        check_objects(args.copick, list(jobs[0].features), "segmentations")

        args.copick_replace = check_free(args.copick, names, jobs[0].features, [f for f, _ in picks],
                                         len(jobs[0].features) > 1, args.user_id, args.session_id, args.overwrite,
                                         {job.stem: job.folder for job in jobs})
    try:
        with progress_bar("batch", unit="%", quiet=args.quiet) as bar:
            results = run_batch(jobs, config, workers=args.workers, threads=args.threads,
                                scheduler=args.scheduler, progress=bar)
    except KeyboardInterrupt:
        raise Cancelled("interrupted; finished tomograms are kept (each folder with a summary.json): "
                        "run the same command again to go on") from None
    write_batch_table(results, f"{args.output}/batch.csv")
    failed = [r for r in results if r["status"] == "failed"]
    if copick_source is not None:
        _write_copick(args, jobs, results, config)
    for r in failed:
        print(f"tomoseg: error: {r['error']}", file=sys.stderr)
    counts = {s: sum(r["status"] == s for r in results) for s in ("done", "skipped", "failed")}
    _say(args, f"wrote {args.output}/: {counts['done']} done, {counts['skipped']} done earlier, "
               f"{counts['failed']} failed (summary: {args.output}/batch.csv)")
    if failed:
        raise BatchFailed()


def _write_copick(args: argparse.Namespace, jobs, results, config) -> None:
    """batch --copick: each finished run's outputs into the copick project (tomoseg.workflows.copick)."""
    from tomoseg.workflows.batch import read_summary
    from tomoseg.workflows.copick import write_run

    for job, result in zip(jobs, results):
        if result["status"] == "failed":
            continue
        written = write_run(args.copick, job.stem, read_summary(job), job.features, config.threshold,
                            args.user_id, args.session_id, overwrite=job.stem in args.copick_replace,
                            folder=job.folder)
        picked = ", ".join(f"{n} {f}" for f, n in written["picks"].items())
        _say(args, f"copick run {job.stem}: segmentations {', '.join(written['segmentations'])}"
                   + (f"; picks: {picked}" if picked else "") + f" (user {args.user_id}, session {args.session_id})")


class BatchFailed(Exception):
    """Some tomograms of a batch failed (each was reported on its own line)."""


def _demo(args: argparse.Namespace) -> None:
    from tomoseg.workflows.demo import run_demo

    with progress_bar("demo", quiet=args.quiet) as bar:
        summary = run_demo(args.output, seed=args.seed, progress=bar, overwrite=args.overwrite)
    _say(args, summary)


# -- tomoseg project ... -----------------------------------------------------------------------------
def _project_create(args: argparse.Namespace) -> None:
    from tomoseg.workflows.project import Project

    project = Project.create(args.folder, args.tomogram, voxel_size=args.voxel_size)
    for name in args.feature or ():
        project.add_feature(name)
    project.save()
    _say(args, f"created {args.folder} for {project.tomogram} "
               f"({'x'.join(map(str, project.volume.data.shape[::-1]))} voxels at {project.volume.voxel_size:g} A)")


def _project_show(args: argparse.Namespace) -> None:
    import json

    from tomoseg.workflows.project import Project

    project = Project.open(args.folder)
    summary = project.summary()
    if args.json:
        if args.boxes:
            for f in summary["features"]:
                f["boxes"] = [[b.x, b.y, b.z, "positive" if b.positive else "negative"]
                              for b in project.features[f["name"]].boxes]
        print(json.dumps(summary, indent=1))
        return
    print(f"{summary['tomogram']}: {'x'.join(map(str, summary['shape_zyx'][::-1]))} voxels at "
          f"{summary['voxel_size']:g} A, {'preprocessed' if summary['preprocessed'] else 'not preprocessed'}")
    if not summary["features"]:
        print("no feature yet: tomoseg project add-feature FOLDER NAME")
    for f in summary["features"]:
        outputs = ", ".join(kind for kind in ("model", "scores") if f[kind]) or "no model yet"
        print(f"  {f['value']} {f['name']} ({f['colour']}): {f['positive']} positive, {f['negative']} negative "
              f"boxes, {f['painted_voxels']} painted voxels; {outputs}"
              + (f"; {f['rounds']} rounds of suggestions, {f['pending']} tiles to answer" if f["rounds"] else ""))
        if args.boxes:
            for b in project.features[f["name"]].boxes:
                print(f"      x={b.x} y={b.y} z={b.z} {'positive' if b.positive else 'negative'}")


def _project_add_feature(args: argparse.Namespace) -> None:
    from tomoseg.workflows.project import Project

    project = Project.open(args.folder)
    feature = project.add_feature(args.name, args.colour)
    project.save()
    _say(args, f"{args.folder}: feature {feature.name!r} added (value {feature.value}, {feature.colour})")


def _project_import_boxes(args: argparse.Namespace) -> None:
    from tomoseg.workflows.project import Project, import_boxes_file

    project = Project.open(args.folder)
    added = import_boxes_file(project, args.feature, args.boxes)
    f = project.features[args.feature]
    _say(args, f"{args.folder}: {added} box(es) added to {args.feature!r} "
               f"(now {f.n_positive} positive, {f.n_negative} negative)")


def _project_import_masks(args: argparse.Namespace) -> None:
    from tomoseg.workflows.project import Project, import_masks_file

    project = Project.open(args.folder)
    painted = import_masks_file(project, args.feature, args.volume, value=args.value)
    _say(args, f"{args.folder}: {painted} voxels of {args.feature!r} painted from {args.volume}")


def _project_trainset(args: argparse.Namespace) -> None:
    from tomoseg.workflows.project import Project, save_feature_trainset

    project = Project.open(args.folder)
    path = save_feature_trainset(project, args.feature, args.output, context=args.context, overwrite=args.overwrite)
    _say(args, f"wrote {path}")


def _project_train(args: argparse.Namespace) -> None:
    from tomoseg.workflows.project import Project, train_feature

    config = _recipe_of(args, fine_tune=args.fine_tune)
    project = Project.open(args.folder)
    with progress_bar("train", unit="batch", quiet=args.quiet) as bar:
        model = train_feature(project, args.feature, config, context=args.context, progress=bar,
                              device=args.device, threads=args.threads, fine_tune=args.fine_tune)
    losses = model.training["losses"]
    _say(args, f"wrote {project.path('model', args.feature)}: loss {losses[0]:.3f} -> {losses[-1]:.3f}, "
               f"amplitude {model.amplitude:.3g}")


def _project_suggest(args: argparse.Namespace) -> None:
    from tomoseg.io.atomic import check_writable
    from tomoseg.io.boxes import write_suggestions
    from tomoseg.steps.suggest import SuggestConfig
    from tomoseg.workflows.project import Project, suggest_feature

    project = Project.open(args.folder)
    if args.output:
        check_writable(args.output, overwrite=args.overwrite)
    config = SuggestConfig(n=args.n, strategy=args.strategy, threshold=args.threshold, seed=args.seed)
    with progress_bar("suggest", unit="network", quiet=args.quiet) as bar:
        tiles = suggest_feature(project, args.feature, config, max_slices=args.slices, progress=bar)
    if args.output:
        write_suggestions(args.output, tiles)
    _say(args, f"round {tiles[0].round if tiles else project.features[args.feature].rounds} of {args.feature}: "
               f"{len(tiles)} tiles" + (f", in {args.output} (set each kind, then import-boxes it)" if args.output
                                        else ""))
    for t in tiles:
        _say(args, f"  x={t.x} y={t.y} z={t.z}  {t.reason}")


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(text)


def _suggest_options(p: argparse.ArgumentParser) -> None:
    """How tiles are suggested (``tomoseg suggest``, ``tomoseg project suggest``)."""
    from tomoseg.steps.suggest import SuggestConfig

    default = SuggestConfig()
    p.add_argument("--n", type=int, default=default.n, help=f"tiles to suggest (default: {default.n})")
    p.add_argument("--strategy", default=default.strategy, choices=list(STRATEGIES),
                   help="uncertain: many pixels near the threshold; disagree: networks (or the turned slice) "
                        "differ; false-positive: detections where another feature fires or far from positive boxes; "
                        f"mixed: those in turn; random: the baseline (default: {default.strategy}, ahead of random "
                        "tiles on membranes; for particles random tiles did better; docs/accuracy.md, "
                        "'Where to click next')")
    p.add_argument("--threshold", type=float, default=default.threshold,
                   help=f"the score that decides (default: {default.threshold:g})")
    p.add_argument("--slices", type=int, default=48,
                   help="score at most this many slices, evenly spaced (fewer on large slices); suggestions fall on "
                        "them (default: 48)")
    p.add_argument("--seed", type=int, default=default.seed, help=f"random seed (random strategy, ties; default: "
                                                                   f"{default.seed})")


def _recipe_options(p: argparse.ArgumentParser) -> None:
    """The training recipe and its settings (``tomoseg train``, ``tomoseg project train``)."""
    p.add_argument("--recipe", choices=list(RECIPES),
                   help=f"training recipe (default: default; fine-tune when a network is continued): "
                        f"{_recipes_help()}; the options below change one setting of it")
    p.add_argument("--epochs", type=int, help="passes over the training set")
    p.add_argument("--batch", type=int, help="minibatch size")
    p.add_argument("--lr", type=float, help="learning rate of the first epoch")
    p.add_argument("--optimizer", choices=["sgd", "adam"], help="optimiser")
    p.add_argument("--l1", type=float, help="L1 weight decay on the kernels")
    p.add_argument("--copies", type=int, help="rotated copies of each negative tile")
    p.add_argument("--momentum", type=float, help="SGD momentum (the paper: 0)")
    p.add_argument("--positive-weight", type=float, help="weight of feature pixels in the loss (the paper: 1)")
    p.add_argument("--lr-decay", type=float, help="learning-rate factor per epoch (the paper: 0.9)")
    p.add_argument("--warmup", type=float, help="epochs of linear learning-rate warm-up (the paper: 0)")
    p.add_argument("--clip-norm", type=float,
                   help="largest gradient norm per step, larger ones are scaled down; 0: off (the paper: off)")
    p.add_argument("--max-steps", type=int, metavar="N",
                   help="run fewer epochs where the set is large, at most about N minibatches (0: all epochs; the "
                        "fine-tune recipe: 300)")
    p.add_argument("--imaging-jitter", type=float, metavar="S",
                   help="augment each sample as if imaged otherwise (contrast, blur or sharpening, noise, offset; "
                        "strength S, e.g. 1; 0: off, the paper's); for networks meant for tomograms taken under "
                        "other conditions (docs/accuracy.md, transfer)")
    p.add_argument("--clip-negatives", action=argparse.BooleanOptionalAction, default=None,
                   help="clip the output at 1 on background pixels too, as the paper does "
                        "(--no-clip-negatives: only on the feature)")
    p.add_argument("--seed", type=int, help="random seed (default 0)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tomoseg",
        description="Annotate cryo-electron tomograms with small per-feature neural networks.",
    )
    parser.add_argument("--version", action="version", version=f"tomoseg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, func, examples: Sequence[str], overwrite: str | None = OVERWRITE,
                usage: str | None = None) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, usage=usage,
                           epilog="examples:\n" + "\n".join(f"  {e}" for e in examples),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func)
        if func is None:  # a group of actions (tomoseg project ...): they add their own options
            return p
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
        if overwrite:
            p.add_argument("--overwrite", action="store_true", help=overwrite)
        return p

    p = command("preprocess", "Band-pass (Gaussian, in A), normalise and clamp a tomogram.", _preprocess,
                ["tomoseg preprocess raw.mrc -o pre.mrc",
                 "tomoseg preprocess raw_2.7A.mrc -o pre.mrc --bin 3 --resample 10 --invert"])
    p.add_argument("input", help="raw tomogram (MRC, or a TIFF stack with ImageJ metadata)")
    p.add_argument("-o", "--output", required=True, help=f"preprocessed tomogram ({VOLUME_OUTPUTS})")
    p.add_argument("--lowpass", type=float, default=20.0, help="low-pass cutoff in A (0: none; default 20)")
    p.add_argument("--highpass", type=float, default=4000.0, help="high-pass cutoff in A (0: none; default 4000)")
    p.add_argument("--bin", type=int, default=1, help="bin by this integer factor first (default 1)")
    p.add_argument("--invert", action="store_true", help="invert the contrast")
    p.add_argument("--clamp", type=float, default=3.0, help="clamp to +-this many sd (0: none; default 3)")
    p.add_argument("--resample", type=float, metavar="A",
                   help="resample to this voxel size in A after binning and filtering (cubic spline), e.g. to "
                        "apply a model trained at another voxel size")
    p.add_argument("--voxel-size", type=float, help="voxel size in A, if the header's is missing or wrong")

    p = command("convert", "Copy a volume into another format (MRC, TIFF, OME-Zarr) with its voxel size, origin and "
                           "tomoseg labels.", _convert,
                ["tomoseg convert TS_001.mrc -o TS_001.zarr",
                 "tomoseg convert membrane_scores.zarr -o membrane_scores.mrc"])
    p.add_argument("input", help="volume (MRC, TIFF, or OME-Zarr: its full-resolution level)")
    p.add_argument("-o", "--output", required=True, help=f"the copy ({VOLUME_OUTPUTS}; OME-Zarr with a pyramid)")
    p.add_argument("--voxel-size", type=float, help="voxel size in A, if the header's is missing or wrong")

    p = command("trainset", "Cut 64x64 training tiles and masks at boxes from a label or mask volume.", _trainset,
                ["tomoseg trainset pre.mrc --boxes boxes.csv --labels labels.mrc --value 1 --name membrane -o membrane.set",
                 "tomoseg trainset pre.mrc --boxes boxes.csv --masks membrane_mask.mrc -o membrane.set",
                 "tomoseg trainset --copick config.json --run TS_001 --segmentation membrane -o membrane.set",
                 "tomoseg trainset --copick config.json --run TS_001 --picks ribosome --positives 10 -o ribosome.set"])
    p.add_argument("tomogram", nargs="?", help="preprocessed tomogram (MRC, OME-Zarr or TIFF)")
    p.add_argument("--boxes", help="CSV with header x,y,z,kind (positive|negative), voxels (with --copick: default, "
                                   "chosen from the masks)")
    p.add_argument("--labels", help="label volume (MRC) on the tomogram's grid")
    p.add_argument("--value", type=int, help="the feature's value in --labels")
    p.add_argument("--masks", help="binary mask volume (MRC) on the tomogram's grid")
    p.add_argument("--name", help="feature name (default: label<V>, the mask file's name, or the copick "
                                  "segmentation's or object's)")
    p.add_argument("--copick", metavar="CONFIG", help="take the tomogram and masks from a run of this copick project")
    p.add_argument("--run", help="with --copick: the run")
    p.add_argument("--tomo-type", default="denoised", help="with --copick: the tomogram type (default: denoised)")
    p.add_argument("--voxel-spacing", type=float, default=10.0, help="with --copick: the voxel spacing in A (default: 10)")
    p.add_argument("--segmentation", help="with --copick: masks from this segmentation (binary, or --value of a "
                                          "multilabel one)")
    p.add_argument("--picks", metavar="OBJECT", help="with --copick: masks from the picks of this object (spheres "
                                                     "of its radius)")
    p.add_argument("--from-user", help="with --copick: the segmentation's or picks' user id (when several users have one)")
    p.add_argument("--positives", type=int, default=10,
                   help="with --copick and no --boxes: positive tiles chosen on the masks (default: 10)")
    p.add_argument("--negatives", type=int, default=100,
                   help="with --copick and no --boxes: negative tiles chosen free of them (default: 100)")
    p.add_argument("--seed", type=int, default=0, help="with --copick and no --boxes: seed of the choice (default: 0)")
    p.add_argument("--context", type=int, default=0, metavar="K",
                   help="slab context (2.5D): tiles of 2K+1 slices, the box's slice in the middle; the network "
                        "trained on them sees K slices above and below each slice it annotates (default: 0, "
                        "one slice, as the paper)")
    p.add_argument("-o", "--output", required=True, help="training-set file")

    p = command("train", "Train one feature's network on a training set.", _train,
                ["tomoseg train membrane.set -o membrane.model",
                 "tomoseg train membrane.set -o membrane.model --recipe fast --threads 1",
                 "tomoseg train tomo1_membrane.set tomo2_membrane.set -o membrane.model   # one network, two tomograms",
                 "tomoseg train membrane2.set -o membrane2.model --init membrane.model   # fine-tune on more tiles"])
    p.add_argument("trainsets", nargs="+", metavar="TRAINSET",
                   help="training-set file(s) (from 'tomoseg trainset'); several (other tomograms or annotators, "
                        "same feature, voxel size and preprocessing) train one network on all their tiles")
    p.add_argument("-o", "--output", required=True, help="model file")
    p.add_argument("--init", metavar="MODEL",
                   help="fine-tune this model (same feature, context, voxel size and preprocessing) on the sets, "
                        "from its weights, with the fine-tune recipe unless --recipe says otherwise (the annotation "
                        "loop: tomoseg suggest, answer, train --init)")
    _recipe_options(p)
    p.add_argument("--name", help="feature name (default: the training set's)")
    p.add_argument("--colour", help="display colour, e.g. '#ffcc00'")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--threads", type=int, help=THREADS_HELP)

    p = command("project", "Annotation projects (what the napari dock edits) from the command line.", None,
                ["tomoseg project create proj pre.mrc --feature membrane",
                 "tomoseg project import-boxes proj membrane boxes.csv",
                 "tomoseg project import-masks proj membrane labels.mrc --value 1",
                 "tomoseg project show proj",
                 "tomoseg project train proj membrane --recipe fast",
                 "tomoseg project suggest proj membrane -o next.csv   # set each kind, then:",
                 "tomoseg project import-boxes proj membrane next.csv && tomoseg project train proj membrane --fine-tune"],
                overwrite=None)
    actions = p.add_subparsers(dest="project_command", required=True, metavar="ACTION")

    def action(name: str, help: str, func) -> argparse.ArgumentParser:
        q = actions.add_parser(name, help=help, description=help)
        q.set_defaults(func=func)
        q.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
        q.add_argument("folder", help="project folder (docs/projects.md)")
        return q

    q = action("create", "Create a project for a tomogram (preprocess it first: tomoseg preprocess).", _project_create)
    q.add_argument("tomogram", help="the (preprocessed) tomogram to annotate (MRC or TIFF)")
    q.add_argument("--voxel-size", type=float, help="voxel size in A, if the header's is missing or wrong")
    q.add_argument("--feature", nargs="+", metavar="NAME", help="features to add at once")
    q = action("show", "List the project's features, their boxes, painted voxels and outputs.", _project_show)
    q.add_argument("--boxes", action="store_true", help="list every box too")
    q.add_argument("--json", action="store_true", help="as JSON")
    q = action("add-feature", "Add a feature.", _project_add_feature)
    q.add_argument("name", help="1-60 letters, digits, '_', '-' or '.'")
    q.add_argument("--colour", help="display colour, e.g. '#ffcc00' (default: the next of the palette)")
    q = action("import-boxes", "Add boxes from a CSV (x,y,z,kind) to a feature (created if missing).",
               _project_import_boxes)
    q.add_argument("feature")
    q.add_argument("boxes", help="CSV with header x,y,z,kind (positive|negative), voxels")
    q = action("import-masks", "Paint a feature from a mask or label volume on the tomogram's grid.",
               _project_import_masks)
    q.add_argument("feature")
    q.add_argument("volume", help="mask (nonzero = feature) or label volume (with --value), MRC or TIFF")
    q.add_argument("--value", type=int, help="the feature's value in a label volume")
    q = action("trainset", "Write a feature's training set (its boxes and painted masks).", _project_trainset)
    q.add_argument("feature")
    q.add_argument("-o", "--output", help="training-set file (default: the project's trainsets/FEATURE.trainset)")
    q.add_argument("--context", type=int, default=0, metavar="K", help="slab context: tiles of 2K+1 slices")
    q.add_argument("--overwrite", action="store_true", help=OVERWRITE)
    q = action("suggest", "Suggest tiles to label next for a feature (a round of the annotation loop).",
               _project_suggest)
    q.add_argument("feature")
    q.add_argument("-o", "--output", help="also write them as a CSV (x,y,z,kind,reason,score; kind '?'): set each "
                                          "kind, then 'project import-boxes' it")
    _suggest_options(q)
    q.add_argument("--overwrite", action="store_true", help=OVERWRITE)
    q = action("train", "Train a feature's network; saves models/FEATURE.model in the project (replacing one).",
               _project_train)
    q.add_argument("feature")
    q.add_argument("--fine-tune", action="store_true",
                   help="continue the feature's current network on its boxes now (the fine-tune recipe unless "
                        "--recipe); the one it started from stays in models/history/")
    q.add_argument("--context", type=int, default=0, metavar="K", help="slab context: tiles of 2K+1 slices")
    _recipe_options(q)
    q.add_argument("--device", default="auto", help=DEVICE_HELP)
    q.add_argument("--threads", type=int, help=THREADS_HELP)

    p = command("align-map", "Turn and move a map (e.g. an average) onto a reference on the same grid.", _align_map,
                ["tomoseg align-map average/average.mrc ribosome_ref.mrc -o average_on_ref.mrc",
                 "tomoseg align-map half2.mrc half1.mrc -o half2_on_1.mrc --local --resolution 30"])
    p.add_argument("map", help="the map to move (MRC or TIFF, a cube with an even edge)")
    p.add_argument("reference", help="the map to move it onto (same box and voxel size)")
    p.add_argument("-o", "--output", required=True, help=f"the moved map ({VOLUME_OUTPUTS})")
    p.add_argument("--resolution", type=float, metavar="A",
                   help="compare the maps up to this resolution in A (default: 3 voxels)")
    p.add_argument("--local", action="store_true",
                   help="only a small correction (within 10 degrees), for maps nearly aligned already")

    p = command("suggest", "Suggest the tiles to label next for a feature's network (the annotation loop).", _suggest,
                ["tomoseg suggest mt.model pre.mrc -o next.csv --boxes mt_boxes.csv",
                 "tomoseg suggest mt.model pre.mrc -o next.csv --n 5 --others actin.model membrane.model",
                 "tomoseg suggest mt_anna.model pre.mrc -o next.csv --models mt_ben.model --strategy disagree"])
    p.add_argument("model", help="the feature's network (model file)")
    p.add_argument("tomogram", help="the preprocessed tomogram it annotates (MRC or TIFF)")
    p.add_argument("-o", "--output", required=True,
                   help="CSV of tiles x,y,z,kind,reason,score with kind '?': set each to positive or negative")
    _suggest_options(p)
    p.add_argument("--boxes", help="the feature's boxes so far (CSV x,y,z,kind): not suggested again, and positive "
                                   "ones tell known detections from new ones")
    p.add_argument("--models", nargs="+", metavar="MODEL",
                   help="more networks of the same feature (other annotators or seeds) for disagree")
    p.add_argument("--others", nargs="+", metavar="MODEL", help="networks of other features, for false-positive")
    p.add_argument("--spread", metavar="MAP", help="the annotators' disagreement (tomoseg consensus --spread or "
                                                   "--disagreement) on the tomogram's grid, for disagree")
    p.add_argument("--voxel-size", type=float, help="voxel size in A of the tomogram, if its header's is missing or wrong")
    p.add_argument("--force", action="store_true",
                   help="go on despite a voxel-size or preprocessing mismatch (warns about each one)")

    p = command("apply", "Apply a model to a preprocessed tomogram: a normalised score map.", _apply,
                ["tomoseg apply membrane.model pre.mrc -o membrane.mrc",
                 "tomoseg apply membrane.model ribosome.model pre.mrc -o scores   # scores/pre_membrane.mrc ..."],
                usage="tomoseg apply [options] MODEL [MODEL ...] TOMOGRAM -o OUTPUT")
    p.add_argument("inputs", nargs="+", metavar="MODEL ... TOMOGRAM",
                   help="one or more model files, then one preprocessed tomogram (MRC or TIFF)")
    p.add_argument("-o", "--output", required=True,
                   help=f"score map ({VOLUME_OUTPUTS}; float32, same grid); with several models a folder that "
                        "receives TOMOGRAM_MODEL.mrc per model")
    p.add_argument("--engine", default="fft", choices=["fft", "direct", "fft-slice"],
                   help="fft: overlap-save FFT tiles (default); direct: conv2d (slow reference); "
                        "fft-slice: whole-slice FFTs")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--threads", type=int, help=THREADS_HELP)
    p.add_argument("--slices", type=int,
                   help="slices read and scored at a time (default: about 16 M voxels, at most 16)")
    p.add_argument("--tta", type=int, default=1,
                   help="test-time augmentation: average the map over N of the 8 rotations by 90 degrees and "
                        "flips of each slice (2: add the mirror image; 8: all); costs N times the time (default: 1, none)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run with the same inputs, skipping finished slabs")
    p.add_argument("--voxel-size", type=float,
                   help="voxel size in A of the tomogram, if its header's is missing or wrong (written to the outputs)")
    p.add_argument("--force", action="store_true",
                   help="apply despite a voxel-size or preprocessing mismatch (warns about each one)")

    p = command("merge", "Merge score maps into one label map (k = the k-th input, 0 = none).", _merge,
                ["tomoseg merge membrane.mrc ribosome.mrc -o labels.mrc",
                 "tomoseg merge membrane.mrc ribosome.mrc -o labels.mrc --threshold 1.2"])
    p.add_argument("scores", nargs="+", help="score maps from 'tomoseg apply'")
    p.add_argument("-o", "--output", required=True, help=f"label map ({VOLUME_OUTPUTS})")
    p.add_argument("--threshold", type=float, default=1.0, help="minimum score for a label (default 1)")
    p.add_argument("--calibrate", action="store_true",
                   help="first put each map back on its network's training scale, from the map's own scores "
                        "(for tomograms imaged otherwise than the training one; docs/accuracy.md)")

    p = command("consensus", "Consensus (mean) of several annotators' score maps for one feature, with their "
                             "spread and disagreement.", _consensus,
                ["tomoseg consensus alice.mrc bob.mrc carol.mrc -o mean.mrc",
                 "tomoseg consensus alice.mrc bob.mrc -o mean.mrc --spread sd.mrc --disagreement disagree.mrc"])
    p.add_argument("scores", nargs="+", help="two or more score maps (MRC) of one feature on one tomogram, from "
                                             "networks trained by different annotators")
    p.add_argument("-o", "--output", required=True, help="consensus score map (MRC): the mean, on-feature ~1")
    p.add_argument("--spread", help="also write the standard deviation of the scores here (MRC)")
    p.add_argument("--disagreement", help="also write the disagreement at the threshold here (MRC): "
                                          "0 unanimous, 1 half the annotators each way")
    p.add_argument("--threshold", type=float, default=1.0, help="threshold of the disagreement (default 1)")

    p = command("pick", "Pick particles from a score map: blobs, points along filaments, or on membranes.", _pick,
                ["tomoseg pick ribosome.mrc -o ribosomes.star --diameter 250",
                 "tomoseg pick labels.mrc --label 2 -o ribosomes.csv      # label 2 of a merged label map"])
    p.add_argument("scores", help="score map from 'tomoseg apply' (or a label map from merge, with --label)")
    p.add_argument("--label", type=int, metavar="N",
                   help="pick the voxels of label N of a label map (from 'tomoseg merge'; its header lists them); "
                        "a label map is refused without it")
    p.add_argument("-o", "--output", required=True,
                   help="particle list: .csv, .star (RELION 5), .tbl (Dynamo), .mod (IMOD), .json (EMAN2)")
    p.add_argument("--mode", default=next(iter(PICKING_MODES)), choices=list(PICKING_MODES),
                   help="; ".join(f"{m.name}: {m.help}" for m in PICKING_MODES.values()) + " (default: blob)")
    p.add_argument("--format", choices=FORMATS, help="particle format (default: from the extension)")
    p.add_argument("--threshold", type=float, default=1.0, help="minimum score (default 1)")
    p.add_argument("--calibrate", action="store_true",
                   help="first put each map back on its network's training scale, from the map's own scores "
                        "(for tomograms imaged otherwise than the training one; docs/accuracy.md)")
    p.add_argument("--diameter", type=float,
                   help="blob: expected particle diameter in A, sets the defaults below (default 250, a ribosome); "
                        "filament: filament diameter in A (default 250, a microtubule; actin ~70)")
    p.add_argument("--min-size", type=float, help="blob: smallest piece in A^3 (default: 1/8 of the particle)")
    p.add_argument("--min-distance", type=float, help="blob: smallest distance between picks in A (default: diameter/2)")
    p.add_argument("--spacing", type=float, help="filament/membrane: A between points (default 80 / 100)")
    p.add_argument("--min-length", type=float, help="filament: drop pieces shorter than this, A (default 500)")
    p.add_argument("--min-area", type=float, help="membrane: drop pieces smaller than this, A^2 (default 1e5)")
    p.add_argument("--split", action=argparse.BooleanOptionalAction, default=None,
                   help="blob: split touching particles (components with peaks >= min-distance apart) by a "
                        "watershed (default); --no-split: one particle per component, the paper's rule")
    p.add_argument("--edge", type=float, default=0.0,
                   help="drop picks closer than this to the border, in A (default 0: keep all)")

    p = command("export", "Convert a particle list to another program's format.", _export,
                ["tomoseg export ribosomes.csv -o ribosomes.star --tomogram pre.mrc",
                 "tomoseg export ribosomes.star -o ribosomes.tbl     # Dynamo"])
    p.add_argument("input", help="particle list (.csv, .star, .tbl, .mod, .json)")
    p.add_argument("-o", "--output", required=True, help="output particle list")
    p.add_argument("--format", choices=FORMATS, help="output format (default: from the extension; .star = RELION 5)")
    p.add_argument("--input-format", choices=FORMATS, help="input format (default: from the extension)")
    p.add_argument("--tomogram", help="the tomogram (MRC) the particles belong to: name, size and voxel size")

    p = command("extract", "Cut cubic subtomograms at particle positions.", _extract,
                ["tomoseg extract pre.mrc ribosomes.star -o sub --box 40 --invert",
                 "tomoseg extract raw.mrc ribosomes.star -o sub --box 32 --bin 2 --files"])
    p.add_argument("tomogram", help="tomogram (MRC) to cut from")
    p.add_argument("particles", help="particle list on that tomogram's grid")
    p.add_argument("-o", "--output", required=True,
                   help="output folder: subtomograms.mrcs (volume stack) or one MRC each, and particles.star")
    p.add_argument("--box", type=int, default=32, help="box edge in voxels after binning (default 32)")
    p.add_argument("--bin", type=int, default=1, help="bin each subtomogram by this factor (default 1)")
    p.add_argument("--invert", action="store_true", help="invert the contrast (protein dark -> bright)")
    p.add_argument("--no-normalise", action="store_true", help="keep intensities (default: mean 0, sd 1 per box)")
    p.add_argument("--files", action="store_true", help="one MRC file per subtomogram instead of one stack")

    p = command("classify2d", "2D classification of subtomograms' Z-projections (rotationally aligned).",
                _classify2d, ["tomoseg classify2d sub/particles.star -o cls --classes 4",
                              "tomoseg classify2d sub/particles.star -o cls --keep 0 2 --overwrite   # keep two classes"])
    p.add_argument("particles", help="particles.star from 'tomoseg extract'")
    p.add_argument("-o", "--output", required=True,
                   help="output folder: classes.png, classes.csv (edit its keep column), kept.star, averages.mrcs")
    p.add_argument("--classes", type=int, default=4, help="number of classes (default 4)")
    p.add_argument("--iterations", type=int, default=6, help="alignment/classification rounds (default 6)")
    p.add_argument("--keep", type=int, nargs="+", help="classes to keep (default: all)")
    p.add_argument("--thickness", type=int, help="project only this many central slices (default: all)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")

    p = command("average", "Align and average subtomograms (missing-wedge compensated, gold-standard FSC).",
                _average, ["tomoseg average sub/particles.star -o avg",
                           "tomoseg average sub/particles.star -o avg --selection cls/classes.csv --tilt-range -50 60"])
    p.add_argument("particles", help="particles.star from 'tomoseg extract' (or kept.star from classify2d)")
    p.add_argument("-o", "--output", required=True,
                   help="output folder: average.mrc, half1/2.mrc, fsc.csv, fsc.png, slices.png, particles.star")
    p.add_argument("--reference", help="starting reference (MRC, same box and contrast); default: none, "
                                       "start from the average at random orientations")
    p.add_argument("--selection", help="classes.csv from classify2d: average the rows with keep = 1")
    p.add_argument("--iterations", type=int, default=6, help="refinement rounds (default 6)")
    p.add_argument("--global-iterations", type=int, default=2,
                   help="first rounds that search all orientations (default 2)")
    p.add_argument("--global-step", type=float, default=24.0,
                   help="angular step of global searches, degrees (default 24)")
    p.add_argument("--initial-resolution", type=float, default=60.0, help="starting low-pass in A (default 60)")
    p.add_argument("--max-shift", type=float, help="largest shift from the pick in A (default: a quarter box)")
    p.add_argument("--tilt-range", type=float, nargs=2, default=[-60.0, 60.0], metavar=("MIN", "MAX"),
                   help="tilt range of the tilt series in degrees, about y (the missing wedge; default -60 60)")
    p.add_argument("--use-angles", action="store_true",
                   help="start from the particles' angles (filament axes, membrane normals, an earlier run) "
                        "and search only locally around them")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--threads", type=int, help=THREADS_HELP)

    p = command("batch", "Apply models to many tomograms on Dask (local processes or a cluster): score maps, "
                         "merged labels and picks per tomogram.", _batch,
                ["tomoseg batch raw/*.mrc -m membrane.model ribosome.model -o out --preprocess --pick ribosome",
                 "tomoseg batch pre/*.mrc -o out -m mt.model --pick mt:filament --workers 2",
                 "tomoseg batch --copick config.json --runs TS_001 TS_002 --tomo-type denoised --voxel-spacing 10 "
                 "-m membrane.model ribosome.model --pick ribosome -o out --user-id tomoseg"],
                overwrite="start every tomogram over, replacing earlier outputs (default: skip tomograms finished "
                          "with the same inputs and options, resume interrupted ones)")
    p.add_argument("tomograms", nargs="*", help="tomograms (MRC, OME-Zarr, or TIFF with --preprocess): preprocessed "
                                                "like the models' training tomogram, or raw with --preprocess; or "
                                                "none, with --copick")
    p.add_argument("--copick", metavar="CONFIG",
                   help="read the tomograms from this copick project and write segmentations and picks back into it "
                        "(docs/copick.md)")
    p.add_argument("--runs", nargs="+", metavar="RUN", help="with --copick: these runs (default: all)")
    p.add_argument("--tomo-type", default="denoised", help="with --copick: the tomogram type (default: denoised)")
    p.add_argument("--voxel-spacing", type=float, default=10.0,
                   help="with --copick: the voxel spacing in A to read (default: 10)")
    p.add_argument("--user-id", default="tomoseg", help="with --copick: the user id of what is written (default: "
                                                        "tomoseg)")
    p.add_argument("--session-id", default="0", help="with --copick: the session id of what is written (default: 0)")
    p.add_argument("-m", "--models", nargs="+", required=True, help="model files to apply to every tomogram")
    p.add_argument("-o", "--output", required=True,
                   help="output folder: one sub-folder per tomogram (score maps, labels, picks, summary.json) and "
                        "batch.csv; running again skips tomograms finished with the same inputs and options, "
                        "and resumes interrupted ones")
    p.add_argument("--preprocess", action="store_true",
                   help="the tomograms are raw: preprocess each as the models' training tomogram was (band-pass, "
                        "clamp, contrast), binned and if needed resampled to the models' voxel size")
    p.add_argument("--voxel-size", type=float,
                   help="with --preprocess: voxel size in A of the raw tomograms, if their headers' are missing or wrong")
    p.add_argument("--threshold", type=float, default=1.0, help="score threshold of merging and picking (default 1)")
    p.add_argument("--pick", nargs="+", metavar="FEATURE[:MODE]",
                   help="pick particles from these features' score maps with the default settings of MODE: "
                        "blob (default), filament or membrane, e.g. --pick ribosome microtubule:filament")
    p.add_argument("--diameter", type=float, help="blob and filament picking: diameter in A (default 250)")
    p.add_argument("--format", default="relion5", choices=FORMATS, help="particle format (default relion5)")
    p.add_argument("--workers", type=int, default=1,
                   help="tomograms processed at once on this machine, in separate processes (default 1: one at "
                        "a time, every core on each)")
    p.add_argument("--threads", type=int, help="CPU threads per tomogram (default: the cores shared by the workers)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on a Dask distributed cluster instead, e.g. tcp://host:8786 (pip install "
                        "'tomoseg[cluster]'; every worker must see the same paths)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--tta", type=int, default=1, help="test-time augmentation, as in tomoseg apply (default: 1, none)")
    p.add_argument("--calibrate", action="store_true",
                   help="merge and pick each map on its network's training scale, as tomoseg merge --calibrate")
    p.add_argument("--force", action="store_true",
                   help="apply despite a voxel-size or preprocessing mismatch (warns about each one)")

    p = command("demo", "Run the whole pipeline on a generated tomogram and draw a picture.", _demo,
                ["tomoseg demo -o tomoseg-demo", "tomoseg demo -o tomoseg-demo --seed 1 --overwrite"])
    p.add_argument("-o", "--output", default="tomoseg-demo", help="output folder (default ./tomoseg-demo)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    return parser


OVERWRITE = "replace existing outputs (default: refuse to)"
THREADS_HELP = ("CPU threads (default: the cores this process may use: its CPU affinity and container quota; "
                "fewer leave cores to other jobs)")
DEVICE_HELP = "auto (the default: a CUDA GPU if present, else the CPU), cpu, cuda or cuda:N"
VOLUME_OUTPUTS = "MRC .mrc/.rec/.map, TIFF .tif/.tiff, or OME-Zarr .zarr"


def _recipes_help() -> str:
    what = {"default": "tomoseg's measured default", "fast": "about a minute on 2 cores",
            "fine-tune": "continues a network, --init",
            "paper": "Chen et al. 2017 exactly", "reference": "later EMAN2"}
    parts = []
    for name, r in RECIPES.items():
        extra = [f"momentum {r.momentum:g}"] if r.momentum else []
        extra += [f"x{r.lr_decay:g} per epoch"]
        extra += [f"feature pixels weighted {r.positive_weight:g}"] if r.positive_weight != 1 else []
        extra += ["new rotations and flips each epoch"] if r.resample else []
        extra += [f"at most {r.max_steps} minibatches"] if r.max_steps else []
        parts.append(f"{name} ({what.get(name, r.recipe)}: {r.epochs} epochs, batch {r.batch_size}, "
                     f"{r.optimizer} lr {r.learning_rate:g}, {', '.join(extra)})")
    return ", ".join(parts)


RENAMED = {"learning_rate": "lr", "batch_size": "batch", "negative_copies": "copies", "slices_per_batch": "slices",
           "n_classes": "classes", "particle_format": "format"}
"""Config fields whose flag is not ``--`` + the field's name with dashes."""


def flag_words(parser: argparse.ArgumentParser, everywhere: argparse.ArgumentParser | None = None
               ) -> Callable[[str], str]:
    """What the CLI calls a config field or argument named in a library message (`field`, see
    :mod:`tomoseg.errors`): the flag of ``parser`` (a subcommand's) with that destination, else of any
    subcommand of ``everywhere`` (a remedy may name another command's option, e.g. preprocess's
    ``--resample``), else the field's own name, plainly (a positional argument, a data array)."""
    def flags_of(p: argparse.ArgumentParser) -> dict[str, str]:
        found = {}
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    found = {**flags_of(sub), **found}
            elif action.option_strings:
                found[action.dest] = action.option_strings[-1]
        return found

    own = {a.dest: a.option_strings[-1] for a in parser._actions if a.option_strings}
    other = flags_of(everywhere) if everywhere is not None else {}

    def word(field: str) -> str:
        dest = RENAMED.get(field, field)
        return own.get(dest) or own.get(field) or other.get(dest) or other.get(field) or field
    return word


def _command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub-)subcommand's parser that parsed ``args`` (``tomoseg project train`` -> train's)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = action.choices.get(getattr(args, action.dest, None))
            return parser if chosen is None else _command_parser(chosen, args)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    words = flag_words(_command_parser(parser, args), parser)

    def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"tomoseg: warning: {TomosegError(str(message)).in_words(words)}", file=sys.stderr)

    share_cores_politely()  # before torch is loaded: waiting threads sleep, so jobs side by side share cores
    keep_freed_memory()  # training and scoring reuse freed arrays (tomoseg.allocator; TOMOSEG_MALLOC=default opts out)
    try:
        with warnings.catch_warnings():  # our one-line warnings for this call only
            warnings.showwarning = show_warning
            args.func(args)
    except KeyboardInterrupt:
        print("tomoseg: interrupted; no output was written", file=sys.stderr)
        return 130
    except Cancelled as err:
        print(f"tomoseg: {err.in_words(words)}", file=sys.stderr)
        return 130
    except OutputExists as err:
        print(f"tomoseg: error: {err.in_words(words)}; add --overwrite to replace it", file=sys.stderr)
        return 2
    except TomosegError as err:
        print(f"tomoseg: error: {err.in_words(words)}", file=sys.stderr)
        return 2
    except BatchFailed:
        return 2
    except OSError as err:  # disk full, permission denied while writing, ...
        print(f"tomoseg: error: {err.filename or ''}: {err.strerror or err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
