"""Files in, files out: what the CLI and the GUI call.

The functions below are imported on first use (PEP 562), so that importing one workflow module
(an annotation project, say) does not load torch with the others.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "average_file": "particles", "classify_file": "particles", "export_file": "particles",
    "extract_file": "particles", "pick_file": "particles",
    "apply_file": "pipeline", "apply_files": "pipeline", "consensus_files": "pipeline", "merge_files": "pipeline",
    "preprocess_file": "pipeline", "train_file": "pipeline", "trainset_file": "pipeline",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"tomoseg.workflows.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'tomoseg.workflows' has no attribute {name!r}")
