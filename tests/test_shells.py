"""Fourier shells of cubic boxes: missing wedge, FSC, resolution (ops/shells)."""

from __future__ import annotations

import numpy as np

from tomoseg.ops.shells import fsc, resolution_at, wedge_mask


def test_wedge_fsc_and_resolution():
    w = wedge_mask(32, (-60, 60))
    assert 0.6 < w.mean() < 0.72  # 120 of 180 degrees measured
    assert w[0, 0, 5] == 1 and w[5, 0, 0] == 0  # kx axis measured, kz axis missing
    rng = np.random.default_rng(0)
    a = rng.standard_normal((32, 32, 32))
    assert np.allclose(fsc(a, a)[1:], 1.0)
    assert abs(fsc(a, rng.standard_normal((32, 32, 32)))[1:]).mean() < 0.1
    curve = np.array([1.0, 0.9, 0.5, 0.2, 0.1, 0.0])  # crosses 0.143 between shells 3 and 4
    res = resolution_at(curve, 10, 10.0)
    assert 10 * 10 / 4 < res < 10 * 10 / 3
