"""Seeded synthetic tomograms with known ground truth (tests, demo, sample data)."""

from tomoseg.testing.synthetic import SyntheticTomogram, make_tomogram

__all__ = ["SyntheticTomogram", "make_tomogram"]
