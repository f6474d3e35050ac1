"""The picking modes, by name: one registry for the workflows, the CLI and the dock.

A mode is a frozen config class (with ``threshold`` and ``edge`` besides its own options) and a
function ``pick(scores, voxel_size, config) -> Picks``. To add one: write its module in ``steps/``
(config and function, as :mod:`tomoseg.steps.continuous`), then one :class:`PickingMode` entry
below. ``tomoseg pick --mode``, ``batch --pick FEATURE:MODE`` and the dock's list come from here.
The entries name their module, which is imported when the mode is used: the CLI lists the modes
without loading scipy, scikit-image or torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tomoseg.errors import InvalidValue

if TYPE_CHECKING:
    import numpy as np

    from tomoseg.types import Picks


@dataclass(frozen=True)
class PickingMode:
    """One way of turning a score map into particles.

    options: the config's fields a user may set besides ``threshold`` and ``edge`` (CLI flags and
    dock fields of the same names). what: what one pick is, for messages ("particles").
    """

    name: str
    module: str
    config_name: str
    pick_name: str
    options: tuple[str, ...]
    what: str
    help: str

    @property
    def config(self) -> type:
        return getattr(importlib.import_module(self.module), self.config_name)

    @property
    def pick(self) -> Callable[[np.ndarray, float, Any], Picks]:
        return getattr(importlib.import_module(self.module), self.pick_name)


PICKING_MODES: dict[str, PickingMode] = {m.name: m for m in (
    PickingMode("blob", "tomoseg.steps.pick", "PickConfig", "pick_particles",
                ("diameter", "min_size", "min_distance", "split"),
                "particles", "one pick per particle (connected piece, split where pieces touch)"),
    PickingMode("filament", "tomoseg.steps.continuous", "FilamentConfig", "pick_filaments",
                ("diameter", "spacing", "min_length"),
                "points along filaments", "points along centre lines, with the filament's axis"),
    PickingMode("membrane", "tomoseg.steps.continuous", "MembraneConfig", "pick_membranes", ("spacing", "min_area"),
                "points on membranes", "points on the surface, with the normal"),
)}
"""The picking modes by name, the default (blob) first."""


def picking_mode(name: str) -> PickingMode:
    try:
        return PICKING_MODES[name]
    except KeyError:
        raise InvalidValue(f"unknown picking `mode` {name!r}; choose one of {', '.join(PICKING_MODES)}") from None


def mode_of(config: Any) -> PickingMode:
    """The mode a config belongs to."""
    for mode in PICKING_MODES.values():
        if isinstance(config, mode.config):
            return mode
    raise InvalidValue(f"{type(config).__name__} is not the config of a picking mode")


def pick_config(mode: str, threshold: float = 1.0, edge: float = 0.0, **options) -> Any:
    """The configuration of picking ``mode``. ``options`` left at None take the mode's defaults; one
    that does not apply to the mode, or a value the mode rejects, is an :class:`InvalidValue`."""
    chosen = picking_mode(mode)
    given = {k: v for k, v in options.items() if v is not None}
    for name in given:
        if name not in chosen.options:
            raise InvalidValue(f"`{name}` does not apply to {mode} picking")
    return chosen.config(threshold=threshold, edge=edge, **given)


def pick(scores: np.ndarray, voxel_size: float, config: Any) -> Picks:
    """Pick with the mode ``config`` belongs to."""
    return mode_of(config).pick(scores, voxel_size, config)
