"""A tqdm progress bar behind the library's progress callback."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from tqdm import tqdm

from tomoseg.progress import Progress


@contextlib.contextmanager
def progress_bar(description: str, unit: str = "step", quiet: bool = False) -> Iterator[Progress]:
    """Yield a progress callback that drives a tqdm bar on stderr.

    The bar appears at the first report, so input errors found before any
    work starts print only their one-line message.
    """
    bars: list[tqdm] = []

    def update(done: int, total: int, message: str = "") -> None:
        if not bars:
            bars.append(tqdm(desc=description, unit=unit, total=total, disable=quiet, file=sys.stderr,
                             dynamic_ncols=True))
        bar = bars[0]
        if bar.total != total:
            bar.total = total
        if message:
            bar.set_postfix_str(message, refresh=False)
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        for bar in bars:
            bar.close()
