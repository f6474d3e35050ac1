"""Files in, files out: what the CLI and the GUI call."""

from tomoseg.workflows.particles import average_file, classify_file, export_file, extract_file, pick_file
from tomoseg.workflows.pipeline import (
    apply_file,
    apply_files,
    consensus_files,
    merge_files,
    preprocess_file,
    train_file,
    trainset_file,
)

__all__ = [
    "apply_file", "apply_files", "average_file", "classify_file", "consensus_files", "export_file", "extract_file", "merge_files",
    "pick_file", "preprocess_file", "train_file", "trainset_file",
]
