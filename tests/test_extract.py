"""Subtomogram extraction (steps/extract)."""

from __future__ import annotations

import numpy as np
import pytest

from tomoseg.steps.extract import ExtractConfig, extract_subtomograms


def test_extract_cuts_centred_cubes_bins_inverts_and_fills_edges():
    vol = np.arange(20 * 30 * 40, dtype=np.float32).reshape(20, 30, 40)
    cubes, inside = extract_subtomograms(vol, np.array([[20, 15, 10]]), ExtractConfig(box=6, normalise=False))
    assert np.array_equal(cubes[0], vol[7:13, 12:18, 17:23]) and inside[0] == 1
    binned, _ = extract_subtomograms(vol, np.array([[20, 15, 10]]), ExtractConfig(box=4, bin=2, normalise=False,
                                                                                 invert=True))
    assert binned.shape == (1, 4, 4, 4)
    assert np.isclose(-binned[0, 2, 2, 2], vol[10:12, 15:17, 20:22].mean(), atol=1e-3)
    edge, inside = extract_subtomograms(vol, np.array([[0, 0, 0]]), ExtractConfig(box=8))
    assert inside[0] == pytest.approx(4**3 / 8**3) and np.isfinite(edge).all()
    assert edge[0].mean() == pytest.approx(0, abs=1e-5) and edge[0].std() == pytest.approx(1, abs=1e-4)
