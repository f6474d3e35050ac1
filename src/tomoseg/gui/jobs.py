"""Long work off the GUI thread, with progress and cancel, and no Qt in sight.

A :class:`Job` runs one library call in a background thread, passing it a
progress callback that records ``(done, total, message)`` and raises
:class:`~tomoseg.errors.Cancelled` once :meth:`Job.cancel` was called. The
widget polls :meth:`Job.poll` from a timer to move its progress bar and to
pick up the result or the error, so the viewer never freezes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tomoseg.errors import Cancelled


@dataclass(frozen=True)
class JobState:
    done: int
    total: int
    message: str
    finished: bool
    result: Any = None
    error: BaseException | None = None


class Job:
    """Run ``work(progress)`` in a daemon thread."""

    def __init__(self, name: str, work: Callable[[Callable[..., None]], Any]) -> None:
        self.name = name
        self._work = work
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._progress = (0, 1, "starting")
        self._result: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"tomoseg-{name}", daemon=True)

    def start(self) -> Job:
        self._thread.start()
        return self

    def _report(self, done: int, total: int, message: str = "") -> None:
        with self._lock:
            self._progress = (int(done), int(total), message)
        if self._cancel.is_set():
            raise Cancelled(f"{self.name} cancelled")

    def _run(self) -> None:
        try:
            self._result = self._work(self._report)
        except BaseException as err:  # handed to the GUI thread, shown as one line
            self._error = err

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def poll(self) -> JobState:
        with self._lock:
            done, total, message = self._progress
        finished = not self._thread.is_alive() and self._thread.ident is not None
        return JobState(done, total, message, finished, self._result, self._error)

    def wait(self, timeout: float | None = None) -> JobState:
        self._thread.join(timeout)
        return self.poll()
