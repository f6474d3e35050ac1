import numpy as np
import pytest
import torch

from tomoseg.ops.tiles import cut_tile, flip_pairs, reduce_masks, rotate_pairs, tile_bounds


def test_tile_is_centred_and_bounds_are_checked():
    img = np.arange(100 * 120).reshape(100, 120)
    tile = cut_tile(img, x=40, y=50, size=64)
    assert tile.shape == (64, 64)
    assert tile[32, 32] == img[50, 40]
    assert tile_bounds(40, 64) == (8, 72)
    with pytest.raises(ValueError, match="sticks out"):
        cut_tile(img, x=20, y=50, size=64)
    cut_tile(img, x=32, y=32, size=64)  # touching the border is fine


def _pair(seed=0):
    rng = np.random.default_rng(seed)
    tiles = torch.from_numpy(rng.normal(size=(3, 1, 64, 64)).astype(np.float32))
    masks = (tiles > 0.5).float()  # the mask is a function of the tile
    return tiles, masks


@pytest.mark.parametrize("angle,k", [(90.0, 1), (180.0, 2), (270.0, 3)])
def test_right_angle_rotation_is_exact_and_keeps_tile_and_mask_aligned(angle, k):
    tiles, masks = _pair()
    rt, rm = rotate_pairs(tiles, masks, np.full(3, angle))
    # counter-clockwise in the displayed (x right, y down) image = np.rot90 with k
    expected = torch.rot90(tiles, k=-k, dims=(-2, -1))
    torch.testing.assert_close(rt, expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(rm, (rt > 0.5).float(), atol=1e-4, rtol=0)


def test_arbitrary_rotation_moves_tile_and_mask_together():
    tiles, _ = _pair(1)
    masks = tiles.clone()  # identical content: rotated results must stay identical
    rt, rm = rotate_pairs(tiles, masks, np.array([17.0, 123.0, 301.0]))
    torch.testing.assert_close(rt, rm)
    # zero fill outside the original tile, content kept in the middle
    assert float(rt[0, 0, 0, 0]) == 0.0
    assert float(rt[:, :, 24:40, 24:40].abs().mean()) > 0.5


def test_rotation_by_zero_is_identity_and_flips_mirror_x():
    tiles, masks = _pair(2)
    rt, rm = rotate_pairs(tiles, masks, np.zeros(3))
    torch.testing.assert_close(rt, tiles, atol=1e-4, rtol=0)
    ft, fm = flip_pairs(tiles, masks, np.array([True, False, True]))
    torch.testing.assert_close(ft[0], tiles[0].flip(-1))
    torch.testing.assert_close(ft[1], tiles[1])
    torch.testing.assert_close(fm[2], masks[2].flip(-1))


def test_reduce_masks_is_a_2x2_block_mean():
    m = torch.zeros(1, 1, 4, 4)
    m[0, 0, 0, 0] = 1
    m[0, 0, 2:, 2:] = 1
    r = reduce_masks(m)
    assert r.shape == (1, 1, 2, 2)
    torch.testing.assert_close(r[0, 0], torch.tensor([[0.25, 0.0], [0.0, 1.0]]))
