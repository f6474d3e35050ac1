"""One suite that every inference engine must pass: the same numbers as conv2d."""

import numpy as np
import pytest
import torch

from tomoseg.nn.engines import ENGINES, DirectEngine, get_engine
from tomoseg.nn.fftconv import fft_conv2d_same
from tomoseg.nn.network import SegNet, conv2d_same, init_weights
from tomoseg.steps.segment import score_slices


def _random_net(seed: int) -> SegNet:
    net = init_weights(SegNet(), seed)
    with torch.no_grad():  # random biases too, so ReLUs cut somewhere
        for conv in (net.conv1, net.conv3, net.conv4):
            conv.bias.normal_(0, 0.05, generator=torch.Generator().manual_seed(seed))
    return net.eval()


@pytest.mark.parametrize("shape", [(2, 3, 33, 47), (1, 1, 64, 64), (3, 40, 20, 31)])
def test_fft_conv_equals_conv2d(shape):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g)
    w = torch.randn(5, shape[1], 15, 15, generator=g)
    b = torch.randn(5, generator=g)
    ref = conv2d_same(x, w, b)
    out = fft_conv2d_same(x, w, b)
    assert float((out - ref).abs().max() / ref.abs().max()) < 1e-4


def test_fft_conv_gradients_equal_conv2d():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 24, 24, generator=g)
    w1 = torch.randn(3, 4, 15, 15, generator=g, requires_grad=True)
    w2 = w1.detach().clone().requires_grad_(True)
    conv2d_same(x, w1, None).square().sum().backward()
    fft_conv2d_same(x, w2, None).square().sum().backward()
    assert float((w1.grad - w2.grad).abs().max() / w1.grad.abs().max()) < 1e-4


@pytest.mark.parametrize("name", sorted(ENGINES))
@pytest.mark.parametrize("size", [(64, 64), (50, 78), (31, 45)])
def test_engine_matches_direct_on_random_weights_and_inputs(name, size):
    net = _random_net(3)
    rng = np.random.default_rng(4)
    slices = np.clip(rng.normal(size=(2, *size)), -3, 3).astype(np.float32)
    ref = score_slices(net, 0.7, slices, DirectEngine())
    out = score_slices(net, 0.7, slices, get_engine(name))
    assert out.shape == slices.shape and out.dtype == np.float32
    assert float(np.abs(out - ref).max()) <= 1e-4 * max(float(np.abs(ref).max()), 1e-6)


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_engine_matches_direct_on_a_trained_model(name, particle_model, small_pre):
    slices = small_pre[10:13]
    ref = score_slices(particle_model.net, particle_model.amplitude, slices, DirectEngine())
    out = score_slices(particle_model.net, particle_model.amplitude, slices, get_engine(name))
    assert float(np.abs(out - ref).max()) <= 1e-4 * float(np.abs(ref).max())


def test_unknown_engine_is_an_error():
    with pytest.raises(ValueError, match="unknown `engine`"):
        get_engine("magic")
