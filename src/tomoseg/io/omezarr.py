"""OME-Zarr volumes: NGFF 0.4 (zarr v2; what the CZ cryoET Data Portal, copick and napari read) read
and written, NGFF 0.5 (zarr v3) read.

Read and written with the field's libraries: ``ome-zarr`` reads the NGFF 0.4 multiscale metadata and
writes it, ``zarr`` holds the arrays. NGFF 0.5 stores (a ``zarr.json``, zarr v3) are read with
``ngff-zarr`` (the extra ``tomoseg[ngff05]``), which reads zarr v3 without zarr-python: the zarr 2 that
copick and ome-zarr need here cannot, so tomoseg writes 0.4. A path ending in ``.zarr`` (``.ome.zarr`` too) is a volume of this format
everywhere tomoseg reads or writes one (:func:`tomoseg.io.mrc.read_volume`, ``create_volume``,
resumable outputs).

- **Geometry.** The axes are z, y, x (space, unit angstrom or nanometer or micrometer); level 0's
  ``scale`` is the voxel size and its ``translation`` the origin (the position of voxel (0, 0, 0), as
  MRC's origin: x, y, z in Angstrom in tomoseg). A multiscale store is read at level 0, or at the
  level whose voxel size matches ``near_voxel_size`` (a model's; the level used is said in a warning).
- **Written** as NGFF 0.4 (what the Data Portal serves and ``napari-ome-zarr`` reads): level 0 in
  chunks of 16 slices of up to 256 x 256 (apply's slabs are 16 slices: each slab fills whole chunks),
  then a pyramid of levels halved in x, y and z (mean for float maps, every second voxel for label
  maps) down to about 64 voxels, written slab by slab with memory flat in depth. tomoseg's header
  labels travel in the attribute ``tomoseg: {"labels": [...]}``. Every chunk is stored, even empty
  ones, so a missing chunk means a damaged store.
- **Refused, in one line**: a folder with neither ``.zattrs`` nor ``zarr.json``, metadata that is not
  an NGFF image, an NGFF 0.5 store without ``ngff-zarr`` installed, axes other than three spatial
  ones, a data type that is not a volume's, missing chunks in an NGFF 0.4 float volume (label maps from
  other tools may leave empty chunks out; those read as 0), and a chunk that cannot be decoded (when
  it is read). Zarr v3 writers leave chunks equal to the fill value out by default, so missing chunks
  of an NGFF 0.5 float volume get a one-line warning and read as the fill value.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tomoseg.errors import TomosegError, VoxelSizeMissing
from tomoseg.io.volume import Volume

SUFFIXES = (".zarr",)
CHUNK_SLICES = 16
"""Slices per chunk of level 0 (apply writes slabs of 16 slices)."""
CHUNK_PIXELS = 256
SMALLEST_LEVEL = 64
"""The pyramid stops when a level's largest edge would fall below this many voxels."""

UNIT_ANGSTROM = {"angstrom": 1.0, "nanometer": 10.0, "micrometer": 1e4, "picometer": 0.01}


def is_zarr(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in SUFFIXES


def _transforms_zyx(transforms: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(scale, translation), z y x in the axes' units, of one NGFF 0.4 level's coordinate transformations."""
    scale, translation = np.ones(3), np.zeros(3)
    for t in transforms or []:
        if t.get("type") == "scale":
            scale = np.asarray(t["scale"], dtype=np.float64)[-3:]
        elif t.get("type") == "translation":
            translation = np.asarray(t["translation"], dtype=np.float64)[-3:]
    return scale, translation


def _compose(whole: tuple[np.ndarray, np.ndarray], level: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """A level's (scale, translation) followed by the multiscale-wide one (NGFF: applied after the level's)."""
    return whole[0] * level[0], whole[0] * level[1] + whole[1]


def _in_angstrom(scale: np.ndarray, translation: np.ndarray, units: list[str | None],
                 path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A level's (scale, translation) in the axes' ``units`` -> in Angstrom (NaN where no unit)."""
    factor = []
    for unit in units:
        if unit is None:
            factor.append(np.nan)
        elif unit.lower() in UNIT_ANGSTROM:
            factor.append(UNIT_ANGSTROM[unit.lower()])
        else:
            raise TomosegError(f"{path}: axis unit {unit!r} is not a length tomoseg knows "
                               f"({', '.join(UNIT_ANGSTROM)})")
    factor = np.asarray(factor)
    return scale * factor, translation * factor


@dataclass(frozen=True)
class _Image:
    """What :func:`read_omezarr` needs of an NGFF image, whatever its version."""

    axes: list[dict]
    """name, type, unit of each axis (NGFF ``axes``)."""
    geometry: list[tuple[np.ndarray, np.ndarray]]
    """Each level's (scale, translation), z y x, in the axes' units."""
    datasets: list[str]
    level: Callable[[int], object]
    """Opens level k as the library's array (zarr or dask), checked, or raises TomosegError."""
    labels: tuple[str, ...] = ()


def _open_image(path: Path) -> _Image:
    """The NGFF image at ``path`` (0.4 or 0.5), or one clear error."""
    if not path.exists():
        raise TomosegError(f"{path}: no such file or folder")
    if not path.is_dir():
        raise TomosegError(f"{path}: not an OME-Zarr folder")
    if (path / ".zattrs").exists():
        return _image_v04(path)
    if (path / "zarr.json").exists():
        return _image_v05(path)
    raise TomosegError(f"{path}: not an OME-Zarr image (no .zattrs or zarr.json)")


def _image_v04(path: Path) -> _Image:
    """An NGFF 0.4 image (zarr v2): metadata with ome-zarr's reader, arrays with zarr."""
    import zarr
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Multiscales, Reader

    location = parse_url(str(path), mode="r")
    if location is None:
        raise TomosegError(f"{path}: not a zarr store")
    try:
        node = next((n for n in Reader(location)() if any(isinstance(s, Multiscales) for s in n.specs)), None)
    except (KeyError, ValueError, TypeError) as err:
        raise TomosegError(f"{path}: malformed OME-Zarr metadata ({err})") from None
    if node is None:
        raise TomosegError(f"{path}: no multiscale image in this OME-Zarr store")
    meta = node.metadata
    axes = [a if isinstance(a, dict) else {"name": a} for a in meta.get("axes") or []]
    transforms = meta.get("coordinateTransformations") or [[] for _ in node.data]
    attrs = _attrs(path)
    multiscale = (attrs.get("multiscales") or [{}])[0]
    datasets = [d["path"] for d in multiscale.get("datasets", [])]

    def level(k: int):
        try:
            array = zarr.open_array(str(path / datasets[k]), mode="r")
        except (ValueError, KeyError, zarr.errors.ArrayNotFoundError) as err:
            raise TomosegError(f"{path}: level {k} ({datasets[k]}) cannot be read ({err})") from None
        _check_dtype(path, array.dtype)
        if np.dtype(array.dtype).kind == "f":
            stored = _stored_chunks(path / datasets[k])
            if stored < array.nchunks:
                raise TomosegError(f"{path}: {array.nchunks - stored} of {array.nchunks} chunks of level {k} are "
                                   "missing (a truncated copy?)")
        return array

    labels = tuple(str(t) for t in (attrs.get("tomoseg") or {}).get("labels", []))
    whole = _transforms_zyx(multiscale.get("coordinateTransformations") or [])
    return _Image(axes, [_compose(whole, _transforms_zyx(t)) for t in transforms], datasets, level, labels)


def _image_v05(path: Path) -> _Image:
    """An NGFF 0.5 image (zarr v3), read with ngff-zarr (lazy dask arrays over zarrista, no zarr-python)."""
    try:
        import ngff_zarr
    except ImportError as err:
        raise TomosegError(f"{path}: an NGFF 0.5 (zarr v3) store; reading it needs ngff-zarr, the extra ngff05: "
                           f"pip install 'tomoseg[ngff05]' ({_first_line(err)})") from None
    try:  # the root's own metadata first: a container, and the multiscale-wide transformations
        ome = json.loads((path / "zarr.json").read_text()).get("attributes", {}).get("ome", {})
    except (OSError, ValueError, AttributeError) as err:
        raise TomosegError(f"{path}: not a readable NGFF 0.5 image (zarr.json: {_first_line(err)})") from None
    if "multiscales" not in ome and "bioformats2raw.layout" in ome and (path / "0" / "zarr.json").exists():
        warnings.warn(f"{path}: a bioformats2raw container; reading its first image, {path / '0'}", stacklevel=4)
        return _image_v05(path / "0")
    try:
        multiscales = ngff_zarr.from_ngff_zarr(str(path))
        whole = _transforms_zyx(ome["multiscales"][0].get("coordinateTransformations") or [])
    except ImportError as err:  # a broken environment, not a broken store
        raise TomosegError(f"{path}: ngff-zarr cannot read it here ({_first_line(err)})") from None
    except Exception as err:  # noqa: BLE001 - ngff-zarr and zarrista raise their own kinds; one line whatever it is
        raise TomosegError(f"{path}: not a readable NGFF 0.5 image ({_first_line(err)})") from None
    axes = [{"name": a.name, "type": a.type, "unit": a.unit} for a in multiscales.metadata.axes]
    names = [a["name"] for a in axes][-3:]
    geometry = [_compose(whole, (np.array([float(image.scale.get(n, 1.0)) for n in names]),
                                 np.array([float(image.translation.get(n, 0.0)) for n in names])))
                for image in multiscales.images]
    datasets = [d.path for d in multiscales.metadata.datasets]

    def level(k: int):
        array = multiscales.images[k].data
        _check_dtype(path, array.dtype)
        if np.dtype(array.dtype).kind == "f":
            missing, total = _missing_v3_chunks(path, datasets[k], k)
            if missing:
                warnings.warn(f"{path}: {missing} of {total} chunks of level {k} are not stored and read as the "
                              "fill value (zarr v3 writers leave empty chunks out; a truncated copy reads the same)",
                              stacklevel=3)
        return array

    return _Image(axes, geometry, datasets, level)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _check_dtype(path: Path, dtype) -> None:
    if np.dtype(dtype).kind not in "fiub":
        raise TomosegError(f"{path}: data type {dtype} is not a volume's (float, integer)")


def read_omezarr(
    path: str | os.PathLike,
    ndim: int = 3,
    voxel_size: float | None = None,
    header_only: bool = False,
    level: int | None = None,
    near_voxel_size: float | None = None,
) -> Volume:
    """Open an OME-Zarr image as a :class:`Volume` whose ``data`` is the chosen level, read slab by
    slab on slicing into numpy arrays, never whole (a :class:`_Level` over the zarr or dask array). ``voxel_size`` overrides the store's (level 0's;
    a lower level's is scaled with it). ``level``: this level; else ``near_voxel_size``: the level
    whose voxel size is within 5 % of it, else level 0."""
    path = Path(path)
    image = _open_image(path)
    axes = image.axes
    names = [a.get("name") for a in axes]
    spatial = [a for a in axes if a.get("type") == "space"] or axes
    if ndim == 3 and ([n for n in names if n not in ("c", "t")][-3:] != ["z", "y", "x"] or len(spatial) != 3):
        raise TomosegError(f"{path}: axes {', '.join(map(str, names))}; a 3D tomogram (z, y, x) is needed")
    units = [a.get("unit") for a in axes][-3:]
    geometry = [_in_angstrom(scale, translation, units, path) for scale, translation in image.geometry]
    datasets = image.datasets
    if level is None:
        level = 0
        if near_voxel_size is not None:
            for k, (scale, _) in enumerate(geometry):
                if np.isfinite(scale[-1]) and abs(scale[-1] / near_voxel_size - 1) <= 0.05:
                    level = k
                    break
            if level:
                warnings.warn(f"{path}: read at multiscale level {level} ({geometry[level][0][-1]:g} A per voxel), "
                              "the level whose voxel size matches", stacklevel=2)
    if not 0 <= level < len(datasets):
        raise TomosegError(f"{path}: has {len(datasets)} multiscale levels, level {level} asked for")
    array = _Level(image.level(level), path, level)
    if array.ndim != 3:
        raise TomosegError(f"{path}: level {level} is {array.ndim}D; a 3D tomogram is needed")
    scale, translation = geometry[level]
    scale0 = geometry[0][0]
    if voxel_size is not None:
        size = float(voxel_size) * (scale[-1] / scale0[-1] if np.isfinite(scale[-1] / scale0[-1]) else 2**level)
    elif np.isfinite(scale[-1]) and scale[-1] > 0:
        size = float(scale[-1])
        if not np.allclose(scale, scale[-1], rtol=0.01):
            warnings.warn(f"{path}: anisotropic voxels {scale[::-1]} A (x, y, z); using x's, {size:g} A", stacklevel=2)
    else:
        raise VoxelSizeMissing(f"{path}: the store records no voxel size (no unit or scale on its axes); "
                               "give `voxel_size`")
    origin = tuple(float(v) for v in np.nan_to_num(translation[::-1]))
    return Volume(data=array, voxel_size=size, origin=origin, labels=image.labels)  # lazy: header_only costs nothing more


def _decode_errors() -> tuple[type[BaseException], ...]:
    """What reading a damaged chunk raises: numcodecs' codecs (RuntimeError, ValueError), the file
    system (OSError), zarrista (NGFF 0.5) when installed."""
    errors: tuple[type[BaseException], ...] = (RuntimeError, ValueError, OSError)
    try:
        from zarrista.exceptions import ZarristaError
    except ImportError:
        return errors
    return (*errors, ZarristaError)


_DECODE_ERRORS = _decode_errors()


class _Level:
    """One multiscale level as tomoseg reads volumes: sliced as (z, y, x) into numpy arrays, leading axes
    of length 1 (c, t) dropped, a dask level computed slab by slab, and a chunk that cannot be decoded
    (a truncated file) one clear error naming the store."""

    def __init__(self, array, path: Path, level: int) -> None:
        self._array, self._path, self._level = array, path, level
        self._lead = array.ndim - 3 if array.ndim > 3 and all(n == 1 for n in array.shape[:-3]) else 0
        self._lazy = hasattr(array, "compute")  # NGFF 0.5: ngff-zarr's dask arrays
        self.shape = tuple(int(n) for n in array.shape[self._lead:])
        self.dtype = np.dtype(array.dtype)
        self.ndim = len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __getitem__(self, index):
        index = (0,) * self._lead + (index if isinstance(index, tuple) else (index,))
        if self._lazy:
            sliced = self._array[index]  # a wrong index raises here, as the caller's error
        try:
            return np.asarray(sliced.compute(scheduler="synchronous") if self._lazy else self._array[index])
        except _DECODE_ERRORS as err:
            raise TomosegError(f"{self._path}: a chunk of level {self._level} cannot be read "
                               f"({_first_line(err)}; a truncated copy?)") from None

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype=None, copy=None):
        data = self[...]
        return data if dtype is None else data.astype(dtype)


def _missing_v3_chunks(store: Path, dataset: str, level: int) -> tuple[int, int]:
    """(missing, total) chunk files of a zarr v3 array folder (a sharded array's shards: its chunk grid
    is the shard grid), or one clear error when the level is not an array folder of this store."""
    folder = store / dataset
    try:
        meta = json.loads((folder / "zarr.json").read_text())
        if meta.get("node_type") != "array":
            raise KeyError("node_type")
        grid = meta["chunk_grid"]["configuration"]["chunk_shape"]
        total = int(np.prod([-(-int(n) // int(c)) for n, c in zip(meta["shape"], grid)]))
    except (OSError, ValueError, KeyError, TypeError):
        raise TomosegError(f"{store}: level {level} ({dataset}) is not an array folder of this store (an image "
                           "inside a container, such as bioformats2raw's? give the image's own folder)") from None
    return max(0, total - _stored_chunks(folder)), total


def _stored_chunks(folder: Path) -> int:
    """Chunk files of an array folder, zarr v2 or v3 (nested or flat keys; zarr's own count misses nested
    ones): every file but the metadata (``.zarray``, ``.zattrs``, ``zarr.json``) and other hidden files."""
    return sum(1 for p in folder.rglob("*") if p.is_file() and p.name != "zarr.json" and not p.name.startswith("."))


def _attrs(path: Path) -> dict:
    import zarr

    return dict(zarr.open_group(str(path), mode="r").attrs)


# -- writing ----------------------------------------------------------------------------------------
def _axes() -> list[dict]:
    return [{"name": a, "type": "space", "unit": "angstrom"} for a in "zyx"]


def create_omezarr(path: str | os.PathLike, shape, dtype, voxel_size: float, origin=(0.0, 0.0, 0.0),
                   labels: tuple[str, ...] = ()):
    """Create an OME-Zarr image folder at ``path`` (any name: a temporary one) with level 0 of
    ``shape`` and ``dtype``; returns its writable zarr array. :func:`finish_omezarr` adds the pyramid
    and the metadata once the array is written."""
    import zarr

    shape = tuple(int(n) for n in shape)
    root = zarr.open_group(str(path), mode="w")
    chunks = (min(CHUNK_SLICES, shape[0]), min(CHUNK_PIXELS, shape[1]), min(CHUNK_PIXELS, shape[2]))
    array = root.create_dataset("0", shape=shape, chunks=chunks, dtype=np.dtype(dtype), fill_value=0,
                                write_empty_chunks=True, dimension_separator="/")
    root.attrs["tomoseg"] = {"labels": list(labels), "voxel_size": float(voxel_size),
                             "origin": [float(v) for v in origin]}
    return array


def open_omezarr(path: str | os.PathLike):
    """Level 0 of an image folder made by :func:`create_omezarr`, writable again (None if unreadable)."""
    import zarr

    try:
        return zarr.open_array(str(Path(path) / "0"), mode="r+")
    except (ValueError, KeyError, OSError, zarr.errors.ArrayNotFoundError):
        return None


def finish_omezarr(path: str | os.PathLike, voxel_size: float, origin=(0.0, 0.0, 0.0),
                   labels: tuple[str, ...] = ()) -> None:
    """Write the pyramid below level 0 and the NGFF 0.4 metadata (ome-zarr's writer)."""
    import zarr
    from ome_zarr.writer import write_multiscales_metadata

    root = zarr.open_group(str(path), mode="r+")
    level = root["0"]
    binned = level.dtype.kind == "f"  # float maps: 2 x 2 x 2 means; label maps: every second voxel
    origin_zyx = np.asarray(origin, dtype=np.float64)[::-1]
    datasets = [_dataset(0, voxel_size, origin_zyx, binned)]
    k = 0
    while max(s // 2 for s in level.shape) >= SMALLEST_LEVEL and min(level.shape) >= 2:
        k += 1
        level = _halve(root, level, str(k), binned)
        datasets.append(_dataset(k, voxel_size, origin_zyx, binned))
    write_multiscales_metadata(root, datasets, axes=_axes(), name=Path(path).name)
    root.attrs["tomoseg"] = {"labels": list(labels), "voxel_size": float(voxel_size),
                             "origin": [float(v) for v in origin]}


def _dataset(k: int, voxel_size: float, origin_zyx: np.ndarray, binned: bool) -> dict:
    factor = 2.0**k
    # a mean over 2^k voxels sits at their centre; every second voxel sits where the first one was
    shift = (factor - 1) / 2 * voxel_size if binned else 0.0
    return {"path": str(k), "coordinateTransformations": [
        {"type": "scale", "scale": [voxel_size * factor] * 3},
        {"type": "translation", "translation": [float(v + shift) for v in origin_zyx]}]}


def _halve(root, source, name: str, binned: bool):
    """Level ``name`` from ``source`` halved in z, y, x, one output chunk row at a time (32 slices x 512
    rows of the source: memory flat in depth and width)."""
    shape = tuple(max(1, s // 2) for s in source.shape)
    chunks = tuple(min(c, s) for c, s in zip((CHUNK_SLICES, CHUNK_PIXELS, CHUNK_PIXELS), shape))
    out = root.create_dataset(name, shape=shape, chunks=chunks, dtype=source.dtype, fill_value=0, overwrite=True,
                              write_empty_chunks=True, dimension_separator="/")  # again after an interruption
    zs, ys = 2 * chunks[0], 2 * chunks[1]
    for z0 in range(0, 2 * shape[0], zs):
        z1 = min(z0 + zs, 2 * shape[0])
        for y0 in range(0, 2 * shape[1], ys):
            y1 = min(y0 + ys, 2 * shape[1])
            slab = np.asarray(source[z0:z1, y0:y1, : 2 * shape[2]])
            if binned:  # the mean of each 2 x 2 x 2 block, summed in place (no copy of the slab)
                small = slab[0::2, 0::2, 0::2].astype(np.float32)
                for dz, dy, dx in ((0, 0, 1), (0, 1, 0), (0, 1, 1), (1, 0, 0), (1, 0, 1), (1, 1, 0), (1, 1, 1)):
                    small += slab[dz::2, dy::2, dx::2]
                small *= np.float32(0.125)
            else:
                small = slab[::2, ::2, ::2]
            out[z0 // 2 : z1 // 2, y0 // 2 : y1 // 2] = small.astype(source.dtype, copy=False)
    return out
