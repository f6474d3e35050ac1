"""The exceptions that front ends turn into a one-line message, and the words they use for fields.

Library code names a config field or argument in its messages in backquotes (`` `voxel_size` ``,
`` `force` ``), never a command-line flag or a dialog label: each front end puts its own words in
their place (:meth:`TomosegError.in_words`; the CLI's ``--voxel-size``, the napari dock's field
names). ``str(err)`` keeps the backquoted field names, which is what a Python caller wants.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator

FIELD = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")
"""A field or argument named in a message: an identifier in backquotes."""


class TomosegError(Exception):
    """A problem with the user's input or environment.

    The message is a complete sentence that names the file (or field) and the
    problem; the CLI prints it on one line and exits non-zero, without a traceback.
    """

    def fields(self) -> list[str]:
        """The config fields or arguments the message names."""
        return FIELD.findall(str(self))

    def in_words(self, word: Callable[[str], str]) -> str:
        """The message with each `field` replaced by ``word(field)`` (a flag, a dialog label)."""
        return FIELD.sub(lambda m: word(m.group(1)), str(self))


class InvalidValue(TomosegError, ValueError):
    """A config field or argument out of its range, or data a step cannot work with.

    Also a ValueError, so code that validates numbers the Python way catches it too.
    """


class VoxelSizeMissing(TomosegError):
    """A file records no voxel size (an MRC header's is 0, a TIFF's metadata say nothing).

    The message asks for `voxel_size`: the CLI's ``--voxel-size``, the napari dock's dialog.
    """


class OutputExists(TomosegError):
    """An output file or folder exists already and replacing it was not asked for (`overwrite`).

    Front ends say how to ask: the CLI's ``--overwrite``.
    """


class Cancelled(TomosegError):
    """Long work was interrupted by the user (Ctrl-C, a GUI cancel button)."""

    def __init__(self, message: str = "cancelled by the user") -> None:
        super().__init__(message)


@contextlib.contextmanager
def about(where: object) -> Iterator[None]:
    """Report bad input found inside the block as about ``where`` (a file, usually).

    A ValueError from the steps (an :class:`InvalidValue` or numpy's own) comes out as
    ``InvalidValue("{where}: {message}")``, its fields still worded by the front ends; other
    TomosegErrors (they name their file already) pass unchanged.
    """
    try:
        yield
    except ValueError as err:
        raise InvalidValue(f"{where}: {err}" if where else str(err)) from None
