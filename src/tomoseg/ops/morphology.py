"""Binary morphology with large balls, by bounded distance passes.

``ndimage.binary_closing`` with a ball of radius r costs O(r^3) per voxel (a 27^3
ball took 77 s on 64 x 384 x 384) and ``distance_transform_edt`` ~100-180 ns per
voxel with 20 bytes of temporaries. Whether a voxel lies within r of a set is a
squared Euclidean distance <= r^2, which is separable: three 1D passes, each a
minimum over the 2r + 1 offsets d of (value at the offset + d^2), on small
integers (int16), in cache-sized chunks. Exact, O(r) per voxel with a small
constant (0.97 s on that volume). Memory: about 7 bytes per voxel of the padded
volume (two int16 buffers, the padded mask and the boolean results).
"""

from __future__ import annotations

import numpy as np

CHUNK_VOXELS = 1 << 21
"""Voxels per chunk of a pass (a few MB of int16: stays in cache)."""


def within_distance(mask: np.ndarray, radius: int) -> np.ndarray:
    """True where a True voxel of the 3D ``mask`` lies within Euclidean distance ``radius``
    (the mask dilated by the ball ``x^2 + y^2 + z^2 <= radius^2``; nothing outside the volume)."""
    r = int(radius)
    far = r * r + 1  # "farther than r": every value is capped there, so int16 holds the sums
    cur = np.full(mask.shape, far, dtype=np.int16 if 2 * r * r + 1 < 2**15 else np.int32)
    cur[mask] = 0
    nxt = np.empty_like(cur)
    for axis in range(3):
        other = 1 if axis == 0 else 0  # chunks along another axis
        per = max(1, CHUNK_VOXELS * cur.shape[other] // cur.size)
        whole = list(cur.shape)
        whole[other] = min(per, cur.shape[other])
        scratch = np.empty(whole, dtype=cur.dtype)
        for c0 in range(0, cur.shape[other], per):
            part = [slice(None)] * 3
            part[other] = slice(c0, c0 + per)
            src, dst = cur[tuple(part)], nxt[tuple(part)]
            dst[...] = src  # values only decrease from here: they stay <= far
            tmp = scratch[tuple(slice(0, n) for n in src.shape)]
            for d in range(1, min(r, cur.shape[axis] - 1) + 1):
                lo, hi = [slice(None)] * 3, [slice(None)] * 3
                lo[axis], hi[axis] = slice(d, None), slice(None, -d)
                lo, hi = tuple(lo), tuple(hi)
                np.add(src[hi], d * d, out=tmp[lo])
                np.minimum(dst[lo], tmp[lo], out=dst[lo])  # from d before
                np.add(src[lo], d * d, out=tmp[lo])
                np.minimum(dst[hi], tmp[lo], out=dst[hi])  # from d after
        cur, nxt = nxt, cur
    return cur <= r * r


def binary_closing_ball(mask: np.ndarray, radius: int) -> np.ndarray:
    """Closing of a 3D boolean ``mask`` with the ball ``x^2 + y^2 + z^2 <= radius^2``
    (``skimage.morphology.ball``), with nothing outside the volume: equal to
    ``ndimage.binary_closing(np.pad(mask, r), ball(r))`` cropped back."""
    r = int(radius)
    if r < 1:
        return mask.astype(bool, copy=True)
    dilated = within_distance(np.pad(mask, r), r)
    closed = ~within_distance(~dilated, r)  # the padding keeps the volume's edge r away from the border
    return np.ascontiguousarray(closed[r:-r, r:-r, r:-r])  # not a view that keeps the padded volume
