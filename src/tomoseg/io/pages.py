"""Keeping memory flat while streaming through memory-mapped files.

Pages of a memory map that were read or written stay resident in the process
(and count in its RSS) until unmapped, so streaming a 4 GB tomogram through a
memory map would grow the process to 4 GB. After each slab, the slab's pages
are released with ``madvise(MADV_DONTNEED)``: the data stays in the file (and
the kernel's page cache) and is read back if touched again.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import sys

import numpy as np

_MADV_DONTNEED = 4  # Linux
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True) if sys.platform == "linux" else None


def release_pages(array: np.ndarray) -> None:
    """Drop the resident pages of a contiguous memory-mapped ``array`` (Linux; no-op elsewhere).

    Flushes writes first (``msync``), so nothing written is lost.
    """
    if _libc is None or not isinstance(array, np.memmap) or array.size == 0:
        return
    if not array.flags.c_contiguous:
        return
    if array.flags.writeable:
        array.flush()
    start = array.__array_interface__["data"][0]
    end = start + array.nbytes
    page = mmap.PAGESIZE
    first = -(-start // page) * page  # only whole pages inside the array
    last = end // page * page
    if last > first:
        _libc.madvise(ctypes.c_void_p(first), ctypes.c_size_t(last - first), _MADV_DONTNEED)


def read_slab(data: np.ndarray, z0: int, z1: int) -> np.ndarray:
    """A copy of ``data[z0:z1]``, releasing the memory map's pages afterwards."""
    view = data[z0:z1]
    slab = np.array(view)
    release_pages(view)
    return slab


class Paged:
    """A (z, ...) array read slab by slab: ``paged[z0:z1]`` is a copy, and the pages it came from
    are released (:func:`release_pages`). What the workflows hand to :mod:`tomoseg.steps.segment`,
    which slices volumes without knowing about files."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data
        self.shape = data.shape
        self.dtype = data.dtype
        self.ndim = data.ndim

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index) -> np.ndarray:
        if not (isinstance(index, slice) and index.step in (None, 1)):
            raise TypeError("Paged volumes are read by slabs: volume[z0:z1]")
        z0, z1, _ = index.indices(self.shape[0])
        return read_slab(self.data, z0, max(z0, z1))


def write_slab(data, z0: int, slab: np.ndarray) -> None:
    """Write ``slab`` into slices ``z0 ..`` of an output volume's ``data`` (a memory map: its pages
    are released after, so memory stays flat; a zarr array: its chunks are written)."""
    data[z0 : z0 + slab.shape[0]] = slab
    if isinstance(data, np.memmap):
        release_pages(data[z0 : z0 + slab.shape[0]])
