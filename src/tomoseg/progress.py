"""Progress reporting and cancellation for long work.

Every long library function takes ``progress: Progress | None``: a callable
``progress(done, total, message)`` called after each unit of work. Front ends
turn it into a progress bar (CLI) or a progress widget (GUI). To cancel, the
callback raises :class:`tomoseg.errors.Cancelled`; the library lets it
propagate, and the workflow layer removes any partial output.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def __call__(self, done: int, total: int, message: str = "") -> None: ...


def report(progress: Progress | None, done: int, total: int, message: str = "") -> None:
    """Call ``progress`` if one was given."""
    if progress is not None:
        progress(done, total, message)


def scaled(progress: Progress | None, start: float, span: float, total: float, message: str) -> Progress | None:
    """A callback for one stage of a longer job: maps the stage's own
    ``done/total`` onto ``[start, start + span]`` of the job's ``total`` units."""
    if progress is None:
        return None

    def inner(done: int, stage_total: int, stage_message: str = "") -> None:
        fraction = done / stage_total if stage_total else 1.0
        text = f"{message} {stage_message}".strip()
        progress(int(round(start + span * fraction)), int(total), text)

    return inner
