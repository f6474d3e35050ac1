"""Primitives on numpy arrays and torch tensors: no files, no printing."""
