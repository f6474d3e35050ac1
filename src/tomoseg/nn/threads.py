"""CPU threads: how many cores this process may use, and sharing them with other jobs.

torch's default thread count is the machine's core count, even where the process may use
fewer (a CPU affinity mask from ``taskset`` or a batch scheduler, a container's CPU quota).
And torch's OpenMP threads spin while they wait for work by default, so two jobs on the
same cores (the napari plugin training while a batch runs, two trainings at once) each
burn the cores the other needs: on 2 cores two trainings ran 10x slower each, not 2x
(docs/benchmarks.md, "Two jobs side by side"). This module imports no torch: the front
ends call :func:`share_cores_politely` before torch is loaded.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_V2 = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1 = (Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us"))


def cgroup_cpu_limit(v2: Path = CGROUP_V2, v1: tuple[Path, Path] = CGROUP_V1) -> float | None:
    """The container's CPU quota in cores (cgroup v2 ``cpu.max``, or v1's CFS quota), or None
    where there is none or it cannot be read."""
    try:
        quota, period = v2.read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota, period = (int(p.read_text()) for p in v1)
        return None if quota <= 0 or period <= 0 else quota / period
    except (OSError, ValueError):
        return None


def available_cores() -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup CPU quota (rounded up)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    if limit is not None:
        cores = min(cores, max(1, math.ceil(limit)))
    return max(1, cores)


def share_cores_politely() -> None:
    """Make OpenMP threads sleep, not spin, while they wait (``OMP_WAIT_POLICY=PASSIVE``), unless
    the user chose a policy. Process-wide, and effective only before torch is first imported: for
    the front ends (CLI, napari plugin), whose child processes (batch workers) inherit it. Measured
    no slower for a job alone (docs/benchmarks.md)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
