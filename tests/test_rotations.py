"""Orientations: the Euler convention and the search grids (ops/rotations)."""

from __future__ import annotations

import numpy as np
import torch

from tomoseg.ops.rotations import (
    angles_from_vectors,
    angles_of,
    angular_distance,
    orientation_grid,
    rotate_volumes,
    rotation,
    z_axes,
)


def test_orientation_convention_points_z_along_vectors_and_turns_volumes():
    v = np.array([[1.0, 0, 0], [0, 1, 1], [0.3, -0.2, -0.9]])
    a = angles_from_vectors(v, rot=[10, 20, 30])
    assert np.allclose(z_axes(a), v / np.linalg.norm(v, axis=1)[:, None], atol=1e-9)
    assert np.allclose(angular_distance(a, angles_of(rotation(a))), 0, atol=1e-6)
    # a point on +z of the reference lands on the vector's direction in the turned volume
    vol = torch.zeros(17, 17, 17)
    vol[8 + 5, 8, 8] = 1.0  # z = +5
    out = rotate_volumes(vol, angles_from_vectors([[0, 1, 0]]))[0].numpy()
    assert np.unravel_index(out.argmax(), out.shape) == (8, 8 + 5, 8)  # now at y = +5



def test_orientation_grid_covers_rotations_at_about_the_step():
    grid = orientation_grid(30.0)
    probes = angles_of(__import__("scipy.spatial.transform", fromlist=["R"]).Rotation.random(200, random_state=1))
    nearest = np.array([angular_distance(grid, np.repeat(p[None], len(grid), 0)).min() for p in probes])
    assert nearest.max() < 30.0
