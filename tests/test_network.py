import pytest
import torch

from tomoseg.nn.network import NetworkConfig, SegNet, init_weights, receptive_field


def test_output_is_half_the_input_size():
    net = init_weights(SegNet(), 0)
    for h, w in [(64, 64), (96, 40)]:
        assert net(torch.zeros(2, 1, h, w)).shape == (2, 1, h // 2, w // 2)


def test_parameter_count_matches_the_paper():
    net = SegNet()
    n = sum(p.numel() for p in net.parameters())
    assert n == 40 * 225 + 40 + 40 * 40 * 225 + 40 + 40 * 225 + 1
    assert 370_000 < n < 380_000  # "about 378 k"


@torch.no_grad()
def test_init_is_small_uniform_seeded_with_zero_bias():
    a, b = init_weights(SegNet(), 5), init_weights(SegNet(), 5)
    torch.testing.assert_close(a.conv3.weight, b.conv3.weight)
    assert not torch.equal(a.conv3.weight, init_weights(SegNet(), 6).conv3.weight)
    for conv in (a.conv1, a.conv3, a.conv4):
        assert float(conv.bias.abs().max()) == 0.0
        assert float(conv.weight.abs().max()) < 0.3
        assert abs(float(conv.weight.mean())) < 0.01


def test_receptive_field_is_72_pixels():
    assert receptive_field(NetworkConfig()) == 72
    net = init_weights(SegNet(), 0).double()
    with torch.no_grad():  # make every weight positive so no path cancels
        for p in net.parameters():
            p.abs_().add_(0.01)
    x = torch.zeros(1, 1, 160, 160, dtype=torch.float64, requires_grad=True)
    net(x)[0, 0, 40, 40].backward()
    cols = torch.nonzero(x.grad[0, 0].abs().sum(0))
    rows = torch.nonzero(x.grad[0, 0].abs().sum(1))
    # the 2x2 pooling window adds one pixel on one side
    assert int(cols.max() - cols.min() + 1) == int(rows.max() - rows.min() + 1)
    assert int(cols.max() - cols.min() + 1) in (71, 72)


def test_even_kernel_is_rejected():
    with pytest.raises(ValueError):
        NetworkConfig(kernel=14)
