"""Test-time augmentation: the 8 symmetries of the slice grid, and apply --tta N."""

import numpy as np
import pytest
import torch

from tomoseg.nn.engines import DirectEngine, OverlapSaveEngine
from tomoseg.nn.network import SegNet, init_weights
from tomoseg.ops import dihedral
from tomoseg.steps.segment import score_slices


def _net(seed: int = 3) -> SegNet:
    net = init_weights(SegNet(), seed)
    with torch.no_grad():
        for conv in (net.conv1, net.conv3, net.conv4):
            conv.bias.normal_(0, 0.05, generator=torch.Generator().manual_seed(seed))
    return net.eval()


@pytest.mark.parametrize("shape", [(2, 6, 6), (1, 5, 8), (3, 7, 4)])
def test_every_symmetry_is_undone_and_all_eight_differ(shape):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    seen = set()
    for i in range(dihedral.COUNT):
        t = dihedral.transform(x, i)
        assert torch.equal(dihedral.undo(t, i), x)
        seen.add((tuple(t.shape[-2:]), tuple(t.flatten().tolist())))
    assert len(seen) == dihedral.COUNT
    with pytest.raises(ValueError, match="0-7"):
        dihedral.transform(x, 8)


def test_tta_map_is_the_mean_of_maps_of_turned_slices():
    """Independent of the implementation: turn the slices with numpy, score each plainly, turn the
    maps back, average (even sizes, so the pooling grid is the same either way)."""
    rng = np.random.default_rng(1)
    slices = rng.normal(size=(2, 48, 64)).astype(np.float32)
    net, engine = _net(), DirectEngine()
    expected = []
    for i in range(8):
        turned = np.flip(slices, -1) if i & 1 else slices
        turned = np.ascontiguousarray(np.rot90(turned, i // 2, axes=(1, 2)))
        m = score_slices(net, 0.5, turned, engine)
        m = np.rot90(m, -(i // 2), axes=(1, 2))
        expected.append(np.flip(m, -1) if i & 1 else m)
        got = score_slices(net, 0.5, slices, engine, tta=i + 1)
        np.testing.assert_allclose(got, np.mean(expected, axis=0), rtol=1e-4, atol=1e-5)
    assert np.abs(expected[0] - expected[3]).max() > 1e-3  # the turns do change the map


def test_tta_with_the_fft_engine_and_odd_sizes():
    slices = np.random.default_rng(2).normal(size=(2, 37, 51)).astype(np.float32)
    net = _net()
    direct = score_slices(net, 0.5, slices, DirectEngine(), tta=8)
    fft = score_slices(net, 0.5, slices, OverlapSaveEngine(), tta=8)
    assert fft.shape == slices.shape
    np.testing.assert_allclose(fft, direct, rtol=1e-3, atol=1e-4)


def test_a_mirror_symmetric_network_gains_nothing_from_the_mirror():
    net = _net()
    with torch.no_grad():
        for conv in (net.conv1, net.conv3, net.conv4):
            conv.weight.copy_((conv.weight + conv.weight.flip(-1)) / 2)
    slices = np.random.default_rng(3).normal(size=(1, 32, 40)).astype(np.float32)
    np.testing.assert_allclose(score_slices(net, 1.0, slices, DirectEngine(), tta=2),
                               score_slices(net, 1.0, slices, DirectEngine()), rtol=1e-4, atol=1e-6)
