"""Choosing the torch device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""

from __future__ import annotations

import torch

from tomoseg.errors import InvalidValue


def resolve_device(name: str = "auto") -> torch.device:
    """The device called ``name``; ``auto`` is the first CUDA GPU if there is one, else the CPU.

    Raises ValueError for an unknown name or a CUDA device that is not present.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InvalidValue(f"unknown `device` {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidValue(f"`device` {name!r}: CUDA is not available on this machine")
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise InvalidValue(f"`device` {name!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    elif device.type != "cpu":
        raise InvalidValue(f"unsupported `device` {name!r}; use auto, cpu, cuda or cuda:N")
    return device
