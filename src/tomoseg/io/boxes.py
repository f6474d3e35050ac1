"""Box lists: CSV with a header and columns ``x,y,z,kind``.

x, y, z are voxel indices of the tile centre (``data[z, y, x]``); kind is
``positive`` or ``negative`` (also accepted: ``pos``/``neg``, ``1``/``0``). Suggested tiles
(``tomoseg suggest``) are written the same way with kind ``?`` and two more columns, ``reason`` and
``score``: the user sets each kind; rows left at ``?`` (or ``skip``) are skipped when read, with a warning.
"""

from __future__ import annotations

import csv
import os
import warnings
from pathlib import Path

from tomoseg.errors import TomosegError
from tomoseg.types import Box

_KINDS = {"positive": True, "pos": True, "1": True, "negative": False, "neg": False, "0": False}
UNDECIDED = ("?", "skip")
"""Kinds of rows not answered yet (suggestions): skipped when read."""


def read_boxes(path: str | os.PathLike) -> list[Box]:
    """Read a box CSV. Raises TomosegError naming the file and row of any problem."""
    path = Path(path)
    if not path.is_file():
        raise TomosegError(f"{path}: no such file")
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            fields = [f.strip().lower() for f in (reader.fieldnames or [])]
            missing = [c for c in ("x", "y", "z", "kind") if c not in fields]
            if missing:
                raise TomosegError(
                    f"{path}: missing column(s) {', '.join(missing)}; expected a header x,y,z,kind"
                )
            rows = [_parse_row(path, i, row) for i, row in enumerate(reader, start=2)]
    except UnicodeDecodeError:
        raise TomosegError(f"{path}: not a text CSV file") from None
    boxes = [b for b in rows if b is not None]
    if not boxes:
        raise TomosegError(f"{path}: " + ("no row says positive or negative yet (kind ?)" if rows else "the box list is empty"))
    if len(boxes) < len(rows):
        warnings.warn(f"{path}: {len(rows) - len(boxes)} undecided rows (kind ? or skip) skipped", stacklevel=2)
    return boxes


def _parse_row(path: Path, line: int, row: dict) -> Box | None:
    row = {str(k).strip().lower(): (v or "").strip() for k, v in row.items() if k is not None}
    kind = row["kind"].lower()
    if kind in UNDECIDED:
        return None
    if kind not in _KINDS:
        raise TomosegError(f"{path}: line {line}: kind {row['kind']!r} is not positive or negative")
    try:
        x, y, z = (float(row[c]) for c in ("x", "y", "z"))
    except ValueError:
        raise TomosegError(f"{path}: line {line}: x, y, z must be numbers") from None
    return Box(round(x), round(y), round(z), _KINDS[kind])


def write_boxes(path: str | os.PathLike, boxes: list[Box]) -> None:
    """Write boxes as CSV (x,y,z,kind)."""
    from tomoseg.io.atomic import atomic_output

    with atomic_output(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["x", "y", "z", "kind"])
        for b in boxes:
            writer.writerow([b.x, b.y, b.z, "positive" if b.positive else "negative"])


def write_suggestions(path: str | os.PathLike, suggestions) -> None:
    """Write suggested tiles (:class:`tomoseg.steps.suggest.Suggestion`) as a box CSV with kind ``?``
    and the columns reason and score: x,y,z,kind,reason,score."""
    from tomoseg.io.atomic import atomic_output

    with atomic_output(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["x", "y", "z", "kind", "reason", "score"])
        for s in suggestions:
            writer.writerow([s.x, s.y, s.z, "?", s.reason, f"{s.score:.4g}"])


def skipped_rows(path: str | os.PathLike) -> list[tuple[int, int, int]]:
    """The (x, y, z) of the rows a user marked ``skip`` in a suggestions file (read_boxes leaves them out)."""
    with Path(path).open(newline="") as fh:
        rows = [{str(k).strip().lower(): (v or "").strip() for k, v in row.items() if k is not None}
                for row in csv.DictReader(fh)]
    out = []
    for row in rows:
        if row.get("kind", "").lower() == "skip":
            try:
                out.append(tuple(round(float(row[c])) for c in ("x", "y", "z")))
            except (KeyError, ValueError):
                continue
    return out
