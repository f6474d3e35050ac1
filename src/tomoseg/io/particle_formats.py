"""The particle formats, by name: one registry for reading, writing, the CLI's choices and batch.

A format is a module in ``io/`` with a writer ``write(path, picks, info)`` and a reader
``read(path, info=None, tomo_name=None) -> (picks, metadata)`` (``info``: the tomogram the picks
are wanted on; ``tomo_name``: which tomogram of a file that holds several) that convert at their border
(the one coordinate convention: :mod:`tomoseg.io.particles`). To add one: write the module, then
one :class:`ParticleFormat` entry below. Entries name their module, imported on use, so the CLI
lists the formats without loading pandas or starfile.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ParticleFormat:
    """name: as in ``--format``. extension: of its files (the first format of an extension is the one
    that extension implies). module, writer, reader: where its functions live."""

    name: str
    extension: str
    module: str
    writer: str
    reader: str
    help: str

    @property
    def write(self) -> Callable:
        return getattr(importlib.import_module(self.module), self.writer)

    @property
    def read(self) -> Callable:
        return getattr(importlib.import_module(self.module), self.reader)


PARTICLE_FORMATS: dict[str, ParticleFormat] = {f.name: f for f in (
    ParticleFormat("csv", ".csv", "tomoseg.io.particles", "write_csv", "read_csv",
                   "voxel and Angstrom coordinates, score, size, angles"),
    ParticleFormat("relion5", ".star", "tomoseg.io.star", "write_relion5", "read_star",
                   "RELION 5: centred Angstrom"),
    ParticleFormat("relion3", ".star", "tomoseg.io.star", "write_relion3", "read_star",
                   "RELION 3.1: pixels"),
    ParticleFormat("dynamo", ".tbl", "tomoseg.io.dynamo", "write_tbl", "read_tbl", "Dynamo table"),
    ParticleFormat("imod", ".mod", "tomoseg.io.imod", "write_mod", "read_mod", "IMOD model"),
    ParticleFormat("eman2", ".json", "tomoseg.io.eman2", "write_eman2", "read_eman2", "EMAN2 info JSON"),
)}
"""The particle formats by name, the default (csv) first."""

FORMATS = tuple(PARTICLE_FORMATS)
EXTENSIONS: dict[str, str] = {}
"""Each extension and the format it implies (``.star``: RELION 5)."""
for _format in PARTICLE_FORMATS.values():
    EXTENSIONS.setdefault(_format.extension, _format.name)
