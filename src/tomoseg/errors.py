"""The one exception type that front ends turn into a one-line message."""

from __future__ import annotations


class TomosegError(Exception):
    """A problem with the user's input or environment.

    The message is a complete sentence that names the file (or option) and the
    problem; the CLI prints it on one line and exits non-zero, without a traceback.
    """


class VoxelSizeMissing(TomosegError):
    """A file records no voxel size (an MRC header's is 0, a TIFF's metadata say nothing).

    Front ends ask for one: the CLI's ``--voxel-size``, the napari dock's dialog.
    """


class OutputExists(TomosegError):
    """An output file or folder exists already and replacing it was not asked for (``overwrite``).

    Front ends say how to ask: the CLI's ``--overwrite``.
    """


class Cancelled(TomosegError):
    """Long work was interrupted by the user (Ctrl-C, a GUI cancel button)."""

    def __init__(self, message: str = "cancelled by the user") -> None:
        super().__init__(message)
