"""Safetensors files with one JSON metadata document (no pickle anywhere)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save_file

from tomoseg.errors import TomosegError
from tomoseg.io.atomic import atomic_output

META_KEY = "tomoseg"


def save(path: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write ``arrays`` and the JSON-serialisable ``meta`` atomically."""
    contiguous = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    with atomic_output(path) as tmp:
        save_file(contiguous, str(tmp), metadata={META_KEY: json.dumps(meta)})


def kind_of(path: str | os.PathLike) -> str | None:
    """The ``kind`` a tomoseg safetensors file records ("model", "trainset"), or None for any other file."""
    try:
        with safe_open(str(path), framework="numpy") as fh:
            return json.loads((fh.metadata() or {})[META_KEY]).get("kind")
    except (SafetensorError, OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def load(path: str | os.PathLike, kind: str) -> tuple[dict[str, np.ndarray], dict]:
    """Read a file written by :func:`save`; ``kind`` must match ``meta["kind"]``."""
    path = Path(path)
    if not path.is_file():
        raise TomosegError(f"{path}: no such file")
    try:
        with safe_open(str(path), framework="numpy") as fh:
            raw = (fh.metadata() or {}).get(META_KEY)
        arrays = load_file(str(path))
    except (SafetensorError, OSError, ValueError):  # safetensors' own words ("header too large") help no one
        raise TomosegError(f"{path}: not a tomoseg {kind} file (not a safetensors file, or a truncated one)") from None
    if raw is None:
        raise TomosegError(f"{path}: not a tomoseg {kind} file (no tomoseg metadata)")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError:
        raise TomosegError(f"{path}: corrupt tomoseg metadata") from None
    if meta.get("kind") != kind:
        raise TomosegError(f"{path}: is a tomoseg {meta.get('kind')!r} file, expected a {kind} file")
    return arrays, meta
