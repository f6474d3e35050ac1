"""Files in, files out: the only layer that joins the file formats and the stages.

Each function takes input paths, an output path and a config, validates
everything before long work starts, and writes its output atomically.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from tomoseg.errors import InvalidValue, TomosegError, about
from tomoseg.io import safetensors_file
from tomoseg.io.atomic import check_writable
from tomoseg.io.boxes import read_boxes
from tomoseg.io.model_file import load_model, save_model
from tomoseg.io.mrc import Volume, check_finite, create_volume, header_label, read_volume, volume_format, write_volume
from tomoseg.io.omezarr import is_zarr
from tomoseg.io.pages import Paged, read_slab, write_slab
from tomoseg.io.resumable import resumable_volume
from tomoseg.io.trainset_file import load_trainset, save_trainset
from tomoseg.nn.device import resolve_device
from tomoseg.nn.engines import get_engine
from tomoseg.nn.model import Model
from tomoseg.nn.threads import available_cores
from tomoseg.ops.binning import binned_origin
from tomoseg.ops.context import check_context
from tomoseg.progress import Progress, report
from tomoseg.steps.consensus import consensus_scores
from tomoseg.steps.merge import label_dtype, merge_scores
from tomoseg.steps.preprocess import PreprocessConfig, preprocess
from tomoseg.steps.recipes import TrainConfig
from tomoseg.steps.segment import SLAB_VOXELS, check_tta, score_slabs, slab_slices
from tomoseg.steps.train import check_init, train
from tomoseg.steps.trainset import combine_trainsets, make_trainset
from tomoseg.types import Path_
from tomoseg.workflows.maps import require_score_map

VOXEL_SIZE_TOLERANCE = 0.01
"""Relative voxel-size difference above which a model refuses a tomogram."""



def preprocess_file(
    input_path: Path_,
    output_path: Path_,
    config: PreprocessConfig = PreprocessConfig(),
    voxel_size: float | None = None,
    progress: Progress | None = None,
    workers: int = -1,
    overwrite: bool = False,
) -> Volume:
    """Preprocess an MRC tomogram into a new MRC file; returns the output's geometry.
    ``workers``: threads of the Fourier filter (-1: all cores). ``overwrite``: replace an
    existing output (else :class:`~tomoseg.errors.OutputExists`), as in every workflow here."""
    check_writable(output_path, inputs=(input_path,), overwrite=overwrite)
    volume_format(output_path)
    raw = read_volume(input_path, voxel_size=voxel_size)
    for problem in config.ineffective_filters(raw.voxel_size):
        warnings.warn(f"{input_path}: {problem}")
    check_finite(input_path, raw.data)
    report(progress, 0, 2, "filtering")
    with about(input_path):
        data = preprocess(raw.data, raw.voxel_size, config, workers=workers)
    report(progress, 1, 2, "writing")
    out_size = config.output_voxel_size(raw.voxel_size)
    labels = preprocess_labels(config)
    origin = binned_origin(raw.origin, raw.voxel_size, config.bin)
    write_volume(output_path, data, out_size, origin, labels)
    report(progress, 2, 2, "done")
    return Volume(data=data, voxel_size=out_size, origin=origin, labels=labels)


def preprocess_labels(config: PreprocessConfig) -> tuple[str, ...]:
    """MRC header labels recording ``config`` (80 characters each: a resampling target, when set,
    has a label of its own)."""
    labels = (header_label("preprocess", replace(config, resample=None).describe()),)
    if config.resample is not None:
        labels += (header_label("resample", f"{config.resample:g}"),)
    return labels


def preprocessing_of(volume: Volume, path: Path_ | None = None) -> PreprocessConfig | None:
    """The preprocessing recorded in a tomogram's header by tomoseg, if any (``path`` names
    the file in the error for an unreadable record)."""
    text = volume.label_value("preprocess")
    if text is None:
        return None
    target = volume.label_value("resample")
    try:
        return replace(PreprocessConfig.parse(text), resample=None if target is None else float(target))
    except ValueError as err:
        where = f"{path}: " if path is not None else ""
        raise TomosegError(f"{where}unreadable tomoseg preprocessing label {text!r} / resample {target!r} "
                           f"({err})") from None


def _mask_source(path: Path_, tomo: Volume, value: int | None):
    vol = read_volume(path, voxel_size=tomo.voxel_size)
    if vol.data.shape != tomo.data.shape:
        raise TomosegError(
            f"{path}: shape {vol.data.shape} (z, y, x) differs from the tomogram's {tomo.data.shape}"
        )
    data = vol.data
    if value is None:
        return lambda z: np.asarray(data[z]) > 0
    if data.dtype == np.int8:  # MRC mode 0 label maps: read as unsigned bytes
        return lambda z: np.asarray(data[z]).view(np.uint8) == value
    return lambda z: np.asarray(data[z]) == value


def trainset_file(
    tomogram: Path_,
    boxes_path: Path_,
    output_path: Path_,
    labels: Path_ | None = None,
    value: int | None = None,
    masks: Path_ | None = None,
    name: str | None = None,
    overwrite: bool = False,
    context: int = 0,
) -> None:
    """Cut a training set from a preprocessed tomogram, a box list and a label or mask volume.
    ``context``: slab context K, tiles of 2K + 1 slices (:mod:`tomoseg.ops.context`)."""
    check_context(context)
    if (labels is None) == (masks is None):
        raise TomosegError("give exactly one of `labels` (with `value`) or `masks`")
    if labels is not None and value is None:
        raise TomosegError(f"{labels}: `value` is needed to choose the label")
    check_writable(output_path, inputs=(tomogram, boxes_path, labels or masks), overwrite=overwrite)
    tomo = read_volume(tomogram)
    boxes = read_boxes(boxes_path)
    pre = preprocessing_of(tomo, tomogram)
    if pre is None:
        warnings.warn(f"{tomogram}: not preprocessed by tomoseg; apply the model only to tomograms prepared the same way")
    mask_of = _mask_source(labels if labels is not None else masks, tomo, value if labels is not None else None)
    default_name = f"label{value}" if labels is not None else Path(masks).stem
    with about(boxes_path):
        trainset = make_trainset(
            tomo.data, boxes, mask_of, name or default_name, tomo.voxel_size,
            None if pre is None else pre.to_dict(), source=str(tomogram), context=context,
        )
    if not np.all(np.isfinite(trainset.tiles)):
        raise TomosegError(f"{tomogram}: contains NaN or infinite values inside the boxes")
    save_trainset(output_path, trainset)


def train_file(
    trainset_path: Path_ | Sequence[Path_],
    output_path: Path_,
    config: TrainConfig,
    name: str | None = None,
    colour: str | None = None,
    progress: Progress | None = None,
    device: str = "auto",
    threads: int | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
    overwrite: bool = False,
    init: Path_ | None = None,
) -> Model:
    """Train one network from a training-set file, or from several of the same feature (several
    tomograms or annotators: :func:`~tomoseg.steps.trainset.combine_trainsets`), and save the model.
    The model records each set's path, source and tile counts.

    ``init``: a model file to fine-tune (its weights are the start; same feature, context, voxel size
    and preprocessing as the sets, else one clear error). The new model records it and its rounds."""
    paths = [trainset_path] if isinstance(trainset_path, (str, os.PathLike)) else list(trainset_path)
    if not paths:
        raise TomosegError("train needs at least one training set")
    check_writable(output_path, inputs=paths + ([init] if init is not None else []), overwrite=overwrite)
    if config.recipe == "fine-tune" and init is None:
        raise InvalidValue("the `recipe` fine-tune continues an existing network: give it as `init`")
    torch_device = resolve_device(device)
    sets = [load_trainset(p) for p in paths]
    with about(f"{paths[0]} and the other sets cannot train one network"):
        trainset = combine_trainsets(sets)
    start = None
    if init is not None:
        start = load_model(init)
        with about(f"{init} cannot be fine-tuned on {paths[0]}"):
            check_init(start, trainset, name=name)
    with torch_threads(threads):
        result = train(trainset, config, progress=progress, device=torch_device, on_epoch=on_epoch,
                       init=None if start is None else start.net)
    records = [{"path": str(p), "source": t.source, "n_positive": t.n_positive, "n_negative": t.n_negative}
               for p, t in zip(paths, sets)]
    model = Model(
        net=result.net,
        amplitude=result.amplitude,
        name=name or trainset.name,
        voxel_size=trainset.voxel_size,
        preprocessing=trainset.preprocessing,
        training={
            "config": config.to_dict(),
            "losses": result.losses,
            "trainset": records[0] if len(records) == 1 else
            {"path": [r["path"] for r in records], "source": trainset.source, "n_positive": trainset.n_positive,
             "n_negative": trainset.n_negative, "sets": records},
            **({} if start is None else {"init": {"path": str(init), "config": start.training.get("config"),
                                                  "rounds": start.training.get("init", {}).get("rounds", 0) + 1}}),
        },
        examples=result.examples,
        colour=colour or (start.colour if start is not None else None),
        level=result.level,
    )
    save_model(output_path, model)
    return model


def check_compatible(model: Model, model_path: Path_, tomo: Volume, tomo_path: Path_, force: bool = False) -> None:
    """Refuse a tomogram whose voxel size or recorded band-pass and clamp differ from the model's
    (binning, resampling and inverting may differ: see :meth:`PreprocessConfig.same_filters`).

    ``force``: go on despite a mismatch, but warn once for each mismatch forced (never silently)."""
    def mismatch(message: str, remedy: str) -> None:
        if not force:
            raise TomosegError(f"{message}; {remedy}, or accept it with `force`")
        warnings.warn(f"`force`: {message}; applying anyway")

    ratio = tomo.voxel_size / model.voxel_size
    if abs(ratio - 1) > VOXEL_SIZE_TOLERANCE:
        mismatch(f"{tomo_path}: voxel size {tomo.voxel_size:g} A differs from the model's {model.voxel_size:g} A "
                 f"({ratio:.3g}x; {model_path})",
                 f"preprocess it with `resample` {model.voxel_size:g} (or `bin`)")
    pre = preprocessing_of(tomo, tomo_path)
    if pre is None:
        warnings.warn(f"{tomo_path}: not preprocessed by tomoseg; the model expects {_describe(model)}")
    elif model.preprocessing is not None:
        expected = PreprocessConfig.from_dict(model.preprocessing)
        if not pre.same_filters(expected):
            mismatch(f"{tomo_path}: preprocessed with {pre.describe()}, but the model ({model_path}) "
                     f"expects {_describe(model)}", "preprocess it the same way")
        if pre.invert != expected.invert:
            warnings.warn(
                f"{tomo_path}: preprocessed with invert={str(pre.invert).lower()}, the model's training data with "
                f"invert={str(expected.invert).lower()}; right only if the two sources store density with "
                "opposite contrast"
            )


def _describe(model: Model) -> str:
    if model.preprocessing is None:
        return "unknown preprocessing"
    return PreprocessConfig.from_dict(model.preprocessing).describe()


def apply_outputs(model_paths: Sequence[Path_], tomogram: Path_, output: Path_) -> list[Path]:
    """Output paths: ``output`` itself for one model; for several, a folder with
    ``TOMOGRAM-STEM_MODEL-STEM.mrc`` per model (created if missing; ``.zarr`` for an OME-Zarr tomogram)."""
    if len(model_paths) == 1:
        return [Path(output)]
    folder = Path(output)
    if folder.exists() and not folder.is_dir():
        raise TomosegError(f"{folder}: with several models the output must be a folder")
    stems = [Path(m).stem for m in model_paths]
    if len(set(stems)) != len(stems):
        raise TomosegError("two models have the same file name; their outputs would collide")
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".zarr" if is_zarr(tomogram) else ".mrc"  # OME-Zarr in, OME-Zarr out
    return [folder / f"{Path(tomogram).stem}_{stem}{suffix}" for stem in stems]


def file_fingerprint(path: Path_) -> dict:
    """What identifies a file's content cheaply: its resolved path, size and modification time (for a
    folder, an OME-Zarr store: of all its files together: total size, latest time, count)."""
    path = Path(path)
    if path.is_dir():
        stats = [p.stat() for p in path.rglob("*") if p.is_file()]
        return {"path": str(path.resolve()), "size": sum(st.st_size for st in stats),
                "mtime_ns": max((st.st_mtime_ns for st in stats), default=0), "files": len(stats)}
    st = os.stat(path)
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def apply_files(
    model_paths: Sequence[Path_],
    tomogram: Path_,
    output: Path_,
    engine: str = "fft",
    force: bool = False,
    device: str = "auto",
    threads: int | None = None,
    slices_per_batch: int | None = None,
    resume: bool = False,
    progress: Progress | None = None,
    outputs: Sequence[Path_] | None = None,
    voxel_size: float | None = None,
    overwrite: bool = False,
    check_models: bool = True,
    tta: int = 1,
) -> list[Path]:
    """Apply one or more models to a preprocessed tomogram, slab by slab, into score maps.

    Each slab of slices is read once and scored by every model. Outputs are
    written incrementally and appear complete (renamed) at the end; an
    interrupted run (Ctrl-C, cancel) leaves a partial result that ``resume=True``
    continues, giving the same file as an uninterrupted run. ``threads``: CPU
    threads for torch (default: the cores this process may use). ``outputs``: one path per
    model instead of those :func:`apply_outputs` derives from ``output``. ``voxel_size``: A per
    voxel, overriding the tomogram's header (for files that record none). ``force``: apply despite
    a voxel-size or preprocessing mismatch, warning about each (:func:`check_compatible`);
    ``check_models=False`` skips that check (a caller that made it already, e.g. batch's plan).
    ``tta``: test-time augmentation, the mean map over the first ``tta`` of the 8 rotations by 90
    degrees and flips of each slice (:mod:`tomoseg.ops.dihedral`; 1: none; costs ``tta`` times the
    time); recorded in the outputs' header.
    Returns the output paths.
    """
    if not model_paths:
        raise TomosegError("apply needs at least one model")
    if outputs is None:
        outputs = apply_outputs(model_paths, tomogram, output)
    elif len(outputs) != len(model_paths):
        raise InvalidValue("apply_files needs one output path per model")
    outputs = [Path(o) for o in outputs]
    inputs = (tomogram, *model_paths)
    for out in outputs:
        check_writable(out, inputs=inputs, overwrite=overwrite)
    torch_device = resolve_device(device)
    if slices_per_batch is not None and slices_per_batch < 1:
        raise InvalidValue(f"`slices_per_batch` must be >= 1, got {slices_per_batch}")
    check_tta(tta)
    models = [_load_model(p, tomogram) for p in model_paths]
    # an OME-Zarr pyramid is read at the level of the models' voxel size, if it has one
    tomo = read_volume(tomogram, voxel_size=voxel_size, near_voxel_size=models[0].voxel_size)
    widest = max(m.net.config.inputs for m in models)  # slab context: each slab is read with it
    slices_per_batch = slices_per_batch or slab_slices(tomo.data.shape, SLAB_VOXELS // widest)
    if check_models:
        for model, path in zip(models, model_paths):
            check_compatible(model, path, tomo, tomogram, force=force)
    settings = {"engine": engine, "slices_per_batch": slices_per_batch, "tomogram": file_fingerprint(tomogram),
                "voxel_size": tomo.voxel_size, **({"tta": tta} if tta > 1 else {})}
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch_threads(threads))
        outs = []
        for model, path, out in zip(models, model_paths, outputs):
            labels = (header_label("feature", model.name),)
            if model.colour:
                labels += (header_label("colour", model.colour),)
            if tta > 1:
                labels += (header_label("tta", str(tta)),)
            if model.level is not None:  # the network's level on its training tiles: merge/pick --calibrate
                labels += (header_label("level", f"{model.level:.6g}"),)
            fingerprint = {**settings, "model": file_fingerprint(path)}
            outs.append(stack.enter_context(resumable_volume(
                out, tomo.data.shape, np.float32, tomo.voxel_size, tomo.origin, labels, fingerprint, resume)))
        done = frozenset.intersection(*(o.done for o in outs))
        with about(tomogram):
            slabs = score_slabs([(m.net, m.amplitude) for m in models], Paged(tomo.data), get_engine(engine),
                                torch_device, slices_per_batch, skip=done, progress=progress, tta=tta)
            for z0, scores in slabs:
                for o, s in zip(outs, scores):
                    o.write(z0, s)
    return outputs


def _load_model(path: Path_, tomogram: Path_) -> Model:
    """The model at ``path``; when it is no model but the tomogram argument is one, say that the two
    were given the wrong way round."""
    try:
        return load_model(path)
    except TomosegError as err:
        if Path(tomogram).is_file() and safetensors_file.kind_of(tomogram) == "model":
            raise TomosegError(f"{err}; {tomogram} is a model: give the models first, then the tomogram") from None
        raise


def apply_file(model_path: Path_, tomogram: Path_, output_path: Path_, **options) -> None:
    """Apply one model to a preprocessed tomogram; see :func:`apply_files`."""
    apply_files([model_path], tomogram, output_path, **options)


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """Use ``threads`` CPU threads in torch inside the block (None: the cores this process may use,
    :func:`~tomoseg.nn.threads.available_cores`, which torch's own default ignores)."""
    import torch

    if threads is not None and threads < 1:
        raise InvalidValue(f"`threads` must be >= 1, got {threads}")
    threads = threads or available_cores()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _same_grid_maps(score_paths: Sequence[Path_]) -> list[Volume]:
    """The score maps (memory-mapped), checked to share one grid (shape and voxel size)."""
    maps = [read_volume(p) for p in score_paths]
    for path, vol in zip(score_paths, maps):
        require_score_map(path, vol)
    first = maps[0]
    for path, vol in zip(score_paths, maps):
        if vol.data.shape != first.data.shape:
            raise TomosegError(f"{path}: shape {vol.data.shape} differs from {score_paths[0]}'s {first.data.shape}")
        if abs(vol.voxel_size - first.voxel_size) > VOXEL_SIZE_TOLERANCE * first.voxel_size:
            raise TomosegError(f"{path}: voxel size {vol.voxel_size:g} A differs from {score_paths[0]}'s")
        if max(abs(a - b) for a, b in zip(vol.origin, first.origin)) > 0.1 * first.voxel_size:
            raise TomosegError(f"{path}: origin {vol.origin} A differs from {score_paths[0]}'s {first.origin}: "
                               "the maps are of differently cropped or binned tomograms")
    return maps


def merge_files(
    score_paths: Sequence[Path_], output_path: Path_, threshold: float = 1.0, slices_per_batch: int = 16,
    overwrite: bool = False, scales: Sequence[float] | None = None,
) -> list[str]:
    """Merge score maps into a label map (k = k-th input); returns the feature names.
    ``scales``: divide each map by its scale first (calibration to its network's training scale:
    :func:`~tomoseg.workflows.maps.calibration_scale_of`)."""
    if not score_paths:
        raise TomosegError("merge needs at least one score map")
    if scales is not None and len(scales) != len(score_paths):
        raise InvalidValue("merge_files needs one scale per score map")
    check_writable(output_path, inputs=tuple(score_paths), overwrite=overwrite)
    maps = _same_grid_maps(score_paths)
    first = maps[0]
    names = [vol.label_value("feature") or Path(p).stem for p, vol in zip(score_paths, maps)]
    labels = tuple(header_label(f"label {k}", n[:60]) for k, n in enumerate(names, start=1))[:9]
    nz = first.data.shape[0]
    dtype = label_dtype(len(maps))
    with create_volume(output_path, first.data.shape, dtype, first.voxel_size, first.origin, labels) as out:
        for z0 in range(0, nz, slices_per_batch):
            z1 = min(nz, z0 + slices_per_batch)
            slabs = [read_slab(v.data, z0, z1) for v in maps]
            if scales is not None:
                slabs = [slab / np.float32(scale) for slab, scale in zip(slabs, scales)]
            write_slab(out, z0, merge_scores(slabs, threshold))
    return names


def consensus_files(
    score_paths: Sequence[Path_],
    output_path: Path_,
    spread_path: Path_ | None = None,
    disagreement_path: Path_ | None = None,
    threshold: float = 1.0,
    slices_per_batch: int = 16,
    progress: Progress | None = None,
    overwrite: bool = False,
) -> None:
    """Consensus (mean) of several annotators' score maps for one feature, and optionally their
    spread and disagreement (:mod:`tomoseg.steps.consensus`), slab by slab, on the maps' grid
    (voxel size, origin). Each output appears whole or not at all; a failure while computing
    leaves none of them."""
    if len(score_paths) < 2:
        raise TomosegError("a consensus needs at least two score maps (one per annotator)")
    outputs = [p for p in (output_path, spread_path, disagreement_path) if p is not None]
    if len({Path(p).resolve() for p in outputs}) != len(outputs):
        raise TomosegError("the consensus, spread and disagreement outputs must be different files")
    for out in outputs:
        check_writable(out, inputs=tuple(score_paths), overwrite=overwrite)
    maps = _same_grid_maps(score_paths)
    first = maps[0]
    names = sorted({vol.label_value("feature") for vol in maps} - {None})
    if len(names) > 1:
        warnings.warn(f"the score maps are for different features ({', '.join(names)}); a consensus is meant for "
                      "one feature's maps from several annotators")
    feature = names[0] if len(names) == 1 else "consensus"
    kinds = [("mean", output_path), ("spread", spread_path), ("disagreement", disagreement_path)]
    nz = first.data.shape[0]
    with contextlib.ExitStack() as stack:
        written = []
        for kind, path in kinds:
            if path is None:
                continue
            name = feature if kind == "mean" else f"{feature} {kind}"  # not to be taken for a score map
            labels = (header_label("feature", name), header_label("consensus", f"{kind} of {len(maps)} maps"))
            out = stack.enter_context(create_volume(path, first.data.shape, np.float32, first.voxel_size,
                                                    first.origin, labels))
            written.append((kind, out))
        for z0 in range(0, nz, slices_per_batch):
            z1 = min(nz, z0 + slices_per_batch)
            result = consensus_scores([read_slab(v.data, z0, z1) for v in maps], threshold)._asdict()
            for kind, out in written:
                write_slab(out, z0, result[kind])
            report(progress, z1, nz, "slices")
