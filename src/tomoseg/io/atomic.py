"""Outputs that appear whole or not at all."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tomoseg.errors import OutputExists, TomosegError


def _umask() -> int:
    """The process's umask, read without changing it where the system says it (Linux's
    ``/proc/self/status``); elsewhere from a file created for the purpose (``os.umask`` can only be
    read by setting it, which would race with other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with tempfile.TemporaryDirectory() as folder:
        probe = Path(folder) / "probe"
        probe.touch(mode=0o666)
        return probe.stat().st_mode & 0o777 ^ 0o666


def _usual_mode(path: Path, directory: bool = False) -> None:
    """Give a temporary file (``mkstemp``: 0600) or folder (``mkdtemp``: 0700) the permissions a
    newly created one gets (0666 or 0777 less the umask), so that outputs are as readable as any."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def check_writable(
    path: str | os.PathLike, inputs: tuple[str | os.PathLike, ...] = (), overwrite: bool = True
) -> Path:
    """Fail early (before long work) if ``path`` cannot be written.

    Refuses to overwrite any of ``inputs`` (always), and an existing ``path`` unless
    ``overwrite`` (:class:`~tomoseg.errors.OutputExists`). The workflows pass their own
    ``overwrite`` (default False: every command refuses to replace an output unless asked);
    the default True here serves the inner writers, which run after that check. Returns
    ``path`` as a Path.
    """
    out = Path(path)
    for inp in inputs:
        if Path(inp).exists() and out.exists() and out.resolve() == Path(inp).resolve():
            raise TomosegError(f"{out}: refusing to overwrite an input file")
    if out.is_dir() and out.suffix.lower() != ".zarr":  # an OME-Zarr volume is a folder
        raise TomosegError(f"{out}: is a directory, expected a file path")
    if not overwrite and (out.exists() or out.is_symlink()):
        raise OutputExists(f"{out}: exists already")
    _check_parent(out)
    return out


def _check_parent(out: Path) -> Path:
    """The folder ``out`` goes in, if it exists and is writable."""
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise TomosegError(f"{out}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise TomosegError(f"{out}: the folder {parent} is not writable")
    return parent


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` on success.

    On any exception (including KeyboardInterrupt) the temporary file is
    removed and ``path`` is left untouched.
    """
    out = check_writable(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent or ".")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _usual_mode(tmp_path)
        os.replace(tmp_path, out)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def check_folder(
    path: str | os.PathLike, overwrite: bool = False, inputs: tuple[str | os.PathLike, ...] = ()
) -> Path:
    """Fail early (before long work) if ``path`` cannot become an output folder; see :func:`atomic_directory`."""
    out = Path(path)
    for inp in inputs:
        if Path(inp).resolve().is_relative_to(out.resolve()):
            raise TomosegError(f"{out}: the output folder holds the input {inp}; choose another folder")
    if out.exists() and not out.is_dir():
        raise TomosegError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputExists(f"{out}: folder exists and is not empty")
    _check_parent(out)
    return out


@contextlib.contextmanager
def atomic_directory(
    path: str | os.PathLike, overwrite: bool = False, inputs: tuple[str | os.PathLike, ...] = ()
) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it becomes ``path`` on success.

    An existing non-empty ``path`` is an error unless ``overwrite`` (then it is
    replaced only once the new folder is complete). ``inputs`` inside ``path``
    are refused (replacing the folder would delete them). On any exception the
    temporary folder is removed and ``path`` is left untouched.
    """
    import shutil

    out = check_folder(path, overwrite, inputs)
    parent = out.parent if str(out.parent) else Path(".")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=parent))
    try:
        yield tmp
        _usual_mode(tmp, directory=True)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=parent))
            os.replace(out, old / out.name)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
