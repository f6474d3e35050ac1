"""The training forward pass with hand-written FFT backward passes: same outputs and gradients as conv2d."""

import pytest
import torch

from tomoseg.nn.network import NetworkConfig, SegNet, conv2d_same, init_weights
from tomoseg.nn.spectral import SpectralConv, _max_of_phases, spectral_forward
from tomoseg.steps.train import log_mse_loss


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max().detach() / b.abs().max().detach())


def _outputs_and_grads(net: SegNet, forward, x: torch.Tensor, labels: torch.Tensor):
    net.zero_grad()
    out = forward(x)
    log_mse_loss(out, labels, positive_weight=3.0).backward()
    return out.detach(), [p.grad.clone() for p in net.parameters()]


@pytest.mark.parametrize(
    ("config", "shape"),
    [
        (NetworkConfig(), (3, 1, 64, 64)),  # the paper's network on training tiles
        (NetworkConfig(channels=5, kernel=5), (2, 1, 22, 18)),  # odd channel count (one unpaired map)
        (NetworkConfig(channels=4, kernel=7, pool=3), (2, 1, 31, 35)),  # odd sizes, pooling 3, floor
        (NetworkConfig(context=1), (3, 3, 64, 64)),  # slab context: 3 input slices
        (NetworkConfig(channels=5, kernel=5, context=2), (2, 5, 22, 18)),  # 5 slices, odd channel count
    ],
)
def test_spectral_forward_and_gradients_equal_conv2d(config, shape):
    g = torch.Generator().manual_seed(0)
    net = init_weights(SegNet(config), 1)
    with torch.no_grad():  # random biases too, so ReLUs cut somewhere
        for conv in (net.conv1, net.conv3, net.conv4):
            conv.bias.normal_(0, 0.1, generator=g)
    x = torch.randn(*shape, generator=g) / 3
    out_shape = net(x).shape
    labels = (torch.rand(*out_shape, generator=g) > 0.7).float()
    ref, ref_grads = _outputs_and_grads(net, lambda v: net(v, conv=conv2d_same), x, labels)
    out, grads = _outputs_and_grads(net, lambda v: spectral_forward(net, v), x, labels)
    assert out.shape == ref.shape
    assert _relative(out, ref) < 1e-4
    for name, (grad, ref_grad) in zip([n for n, _ in net.named_parameters()], zip(grads, ref_grads)):
        assert _relative(grad, ref_grad) < 1e-4, name


@pytest.mark.parametrize(("cin", "cout"), [(6, 4), (1, 3), (3, 1)])
def test_spectral_conv_equals_conv2d_with_input_and_kernel_gradients(cin, cout):
    g = torch.Generator().manual_seed(2)
    x1 = torch.randn(2, cin, 21, 26, generator=g, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    w1 = torch.randn(cout, cin, 9, 9, generator=g, requires_grad=True)
    w2 = w1.detach().clone().requires_grad_(True)
    target = torch.randn(2, cout, 21, 26, generator=g)
    ref = conv2d_same(x1, w1, None)
    out = SpectralConv.apply(x2, w2)
    (ref * target).sum().backward()
    (out * target).sum().backward()
    assert _relative(out, ref) < 1e-4
    assert _relative(x2.grad, x1.grad) < 1e-4
    assert _relative(w2.grad, w1.grad) < 1e-4


def test_pooling_sends_ties_to_the_first_maximum():
    phases = torch.tensor([[1.0, 3.0, 3.0, 2.0], [0.0, 0.0, 0.0, 0.0], [-1.0, -2.0, -1.0, 5.0]])
    out, code = _max_of_phases(phases.view(1, 3, 4, 1, 1))
    assert out.flatten().tolist() == [3.0, 0.0, 5.0]
    assert code.flatten().tolist() == [1, 0, 3]


def test_pooling_code_does_not_wrap_for_large_windows():
    phases = torch.zeros(1, 1, 17 * 17, 1, 1)
    phases[0, 0, 270] = 1.0
    out, code = _max_of_phases(phases)
    assert float(out) == 1.0 and int(code) == 270


def test_spectral_forward_refuses_what_it_cannot_compute():
    net = init_weights(SegNet(NetworkConfig(channels=2, kernel=3)), 0)
    with pytest.raises(ValueError, match="float32"):
        spectral_forward(net, torch.zeros(1, 1, 8, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match="input gradient"):
        spectral_forward(net, torch.zeros(1, 1, 8, 8, requires_grad=True))
