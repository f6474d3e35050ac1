"""glibc's malloc thresholds for the large, short-lived arrays of training and inference.

A training step and each group of FFT tiles allocate and free arrays of 1-40 MB
hundreds of times per second. glibc maps an allocation above its mmap threshold
freshly from the kernel and unmaps it when freed (and trims the heap's free top
above its trim threshold), so every such array is paid for again in page faults:
a new zeroed 4 KiB page per touch. The threshold adapts upwards only to 32 MiB,
and not at all once anything sets it (a Dask worker's nanny sets
``MALLOC_TRIM_THRESHOLD_``, which switches adaptation off: every array above 128 KiB
is then mapped afresh). Measured here (docs/benchmarks.md, "Memory allocation"):
~12,000 page faults and 27 ms of system time per training step, ~150 with the
thresholds below; 108,000 faults per 2048 x 2048 slice in the FFT engine, 2,600 with
them; ``apply`` 30 % faster end to end.

:func:`keep_freed_memory` raises both thresholds, so freed arrays go back to malloc's
free lists and are reused. The cost: freed memory stays with the process, up to
``TRIM_THRESHOLD`` at the heap's top and whatever fragments below it (+40 MiB at the
peak of ``apply`` here); on a Dask worker it counts as unmanaged memory towards the
nanny's limits. Setting the environment variable ``TOMOSEG_MALLOC=default`` keeps
glibc's own settings (or the user's ``MALLOC_*_`` variables).
"""

from __future__ import annotations

import ctypes
import os
import sys

MMAP_THRESHOLD = 256 * 2**20
"""Allocations up to this size come from malloc's heap, not fresh kernel mappings."""

FALLBACK_MMAP_THRESHOLD = 32 * 2**20
"""The largest mmap threshold older glibc versions accept (they refuse 256 MiB)."""

TRIM_THRESHOLD = 512 * 2**20
"""Free memory at the top of the heap is returned to the kernel above this size."""

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
_done = False


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds (once per process; later calls do nothing).

    Returns whether they are set: False where the C library is not glibc, or where
    ``TOMOSEG_MALLOC=default`` asks to keep glibc's settings. The trim threshold is set
    only once an mmap threshold was accepted: setting it alone would switch glibc's
    adaptive mmap threshold off and leave it at 128 KiB, the slow case this avoids.
    """
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux") or os.environ.get("TOMOSEG_MALLOC", "") == "default":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # no mallopt (not glibc)
        return False
    if not any(mallopt(_M_MMAP_THRESHOLD, size) == 1 for size in (MMAP_THRESHOLD, FALLBACK_MMAP_THRESHOLD)):
        return False
    _done = mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    return _done
