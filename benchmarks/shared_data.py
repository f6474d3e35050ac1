"""Where the benchmarks find the project's shared data (simulations, real crops, templates), as the tests do:
``TOMOSEG_SHARED_DATA``, else ``../shared/data`` beside the checkout. Set the variable when running a
benchmark from a worktree elsewhere (a frozen copy under /tmp)."""

from __future__ import annotations

import os
from pathlib import Path

SHARED_DATA = Path(os.environ.get("TOMOSEG_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
