"""A volume (MRC, TIFF or OME-Zarr) written slab by slab that survives an interruption.

The volume is written under a hidden partial name beside the output
(``.NAME.partial``) with a journal (``.NAME.partial.json``) that records what
the result depends on (the ``fingerprint``) and which slabs are finished. The
output path appears only when every slab is done (rename), so it is complete
or absent. When the work is interrupted (Ctrl-C, a cancel button) the partial
file and its journal stay, and a later run with ``resume=True`` and the same
fingerprint skips the finished slabs; any other failure removes them.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from tomoseg.errors import Cancelled, TomosegError
from tomoseg.io.atomic import check_writable
from tomoseg.io.mrc import VolumeFile, new_volume_file, reopen_volume_file, volume_format
from tomoseg.io.pages import write_slab


def partial_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """(partial volume, journal) beside ``path``."""
    out = Path(path)
    data = out.with_name(f".{out.name}.partial")
    return data, data.with_name(data.name + ".json")


class ResumableVolume:
    """A writable (z, y, x) volume whose finished slabs are journaled.

    ``data`` is the memory map; write a slab with :meth:`write`, which flushes
    it, releases its pages (memory stays flat) and records it as done.
    """

    def __init__(self, file: VolumeFile, journal: Path, state: dict) -> None:
        self._file = file
        self._journal = journal
        self._state = state

    @property
    def data(self) -> np.ndarray:
        return self._file.data

    @property
    def done(self) -> frozenset[int]:
        """Start slices (z0) of the slabs already written."""
        return frozenset(self._state["done"])

    def write(self, z0: int, slab: np.ndarray) -> None:
        write_slab(self._file.data, z0, slab)
        self._state["done"].append(int(z0))
        _write_json(self._journal, self._state)


def _write_json(path: Path, state: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, path)


def _remove(*paths: Path) -> None:
    import shutil

    for p in paths:
        if p.is_dir():  # an OME-Zarr volume
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def _open_partial(data_path: Path, journal: Path, shape, fingerprint: dict, format: str,
                  geometry: tuple) -> tuple[VolumeFile, dict] | None:
    """The partial volume and its state if it can be resumed, else None."""
    if not (data_path.exists() and journal.exists()):
        return None
    try:
        state = json.loads(journal.read_text())
    except (OSError, ValueError):
        return None
    if state.get("fingerprint") != fingerprint:
        return None
    file = reopen_volume_file(data_path, format, *geometry)
    if file is None:
        return None
    if file.data.shape != tuple(shape):
        file.close()
        return None
    return file, state


@contextlib.contextmanager
def resumable_volume(
    path: str | os.PathLike,
    shape: tuple[int, int, int],
    dtype: np.dtype | type,
    voxel_size: float,
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
    labels: tuple[str, ...] = (),
    fingerprint: dict | None = None,
    resume: bool = False,
) -> Iterator[ResumableVolume]:
    """Yield a :class:`ResumableVolume` for ``path``; rename it into place when the block ends.

    ``fingerprint``: JSON-able description of everything the content depends on;
    a partial result is resumed only if it matches. ``resume=False`` starts over.
    With ``resume=True`` and a partial result made from other inputs, raises
    TomosegError rather than mixing them.
    """
    out = check_writable(path)
    format = volume_format(out)
    geometry = (voxel_size, origin, labels)
    data_path, journal = partial_paths(out)
    fingerprint = json.loads(json.dumps(fingerprint or {}))
    opened = None
    if resume:
        opened = _open_partial(data_path, journal, shape, fingerprint, format, geometry)
        if opened is None and journal.exists():
            raise TomosegError(
                f"{out}: the interrupted run left a partial result made with other inputs or settings; "
                "run again without `resume` to start over"
            )
    if opened is None:
        _remove(data_path, journal)
        file = new_volume_file(data_path, format, shape, dtype, *geometry)
        state = {"fingerprint": fingerprint, "done": []}
        _write_json(journal, state)
    else:
        file, state = opened
    volume = ResumableVolume(file, journal, state)
    try:
        yield volume
        file.finish()
        file.close()
        old = None
        if out.is_dir():  # an OME-Zarr folder: the old one moves aside first, so a complete output is always there
            old = out.with_name(f".{out.name}.old")
            _remove(old)
            os.replace(out, old)
        os.replace(data_path, out)
        if old is not None:
            _remove(old)
        _remove(journal)
    except (KeyboardInterrupt, Cancelled):
        file.close()  # keep the partial result for --resume
        raise
    except BaseException:
        file.close()
        _remove(data_path, journal)
        raise
