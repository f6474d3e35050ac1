"""glibc's malloc thresholds for the large, short-lived arrays of training and inference.

A training step and each group of FFT tiles allocate and free arrays of 1-40 MB
hundreds of times per second. glibc maps an allocation above its mmap threshold
freshly from the kernel and unmaps it when freed (and trims the heap's free top
above its trim threshold), so every such array is paid for again in page faults:
a new zeroed 4 KiB page per touch. The threshold adapts upwards only to 32 MiB,
and not at all once anything sets it (a Dask worker's nanny sets
``MALLOC_TRIM_THRESHOLD_``, which switches adaptation off: every array above 128 KiB
is then mapped afresh). Measured here (docs/benchmarks.md, "Memory allocation"):
~8,700 page faults per training step and 17-30 ms of system time, none with the
thresholds below; the FFT engine's 57,000-130,000 faults per 2048 x 2048 slice fall to
a few thousand.

:func:`keep_freed_memory` raises both thresholds, so freed arrays go back to malloc's
free lists and are reused. The cost: up to ``TRIM_THRESHOLD`` of freed memory stays
with the process until it exits (its peak does not grow: that memory is reused first).
"""

from __future__ import annotations

import ctypes
import sys

MMAP_THRESHOLD = 256 * 2**20
"""Allocations up to this size come from malloc's heap, not fresh kernel mappings."""

TRIM_THRESHOLD = 512 * 2**20
"""Free memory at the top of the heap is returned to the kernel above this size."""

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
_done = False


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds (once per process; later calls do nothing).

    Returns whether the thresholds are set (False where the C library is not glibc).
    """
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        ok = libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    _done = ok
    return ok
