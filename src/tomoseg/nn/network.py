"""The fixed 4-layer network of Chen et al. 2017 (METHOD.md section 3).

| layer | operation |
| 1 | conv 1 -> 40, 15 x 15, zero "same" padding, + bias, ReLU (2K + 1 -> 40 with slab context K) |
| 2 | 2 x 2 max pooling, stride 2 |
| 3 | conv 40 -> 40, 15 x 15, "same", + bias, ReLU |
| 4 | conv 40 -> 1, 15 x 15, "same", + bias (linear) |

The output activation differs between training (``min(1, y)``) and applying
(``max(0, y)``), so :meth:`SegNet.forward` returns the linear layer-4 output and
callers apply their own. How convolutions are computed is a parameter
(``conv``), so the same weights run with ``conv2d`` or FFT convolutions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tomoseg.ops.context import check_context

ConvFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]

INPUT_SCALE = 1.0 / 3.0
"""Inputs are multiplied by this before layer 1, so a +-3 sd clamp maps to +-1."""


def conv2d_same(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Direct cross-correlation with zero "same" padding (torch's conv2d)."""
    return F.conv2d(x, weight, bias, padding=weight.shape[-1] // 2)


@dataclass(frozen=True)
class NetworkConfig:
    """Structure of the network; the paper's values are the defaults."""

    channels: int = 40
    kernel: int = 15
    pool: int = 2
    context: int = 0
    """Slab context (2.5D, :mod:`tomoseg.ops.context`): layer 1 sees ``2 context + 1`` slices as
    input channels. 0 is the paper's network."""

    def __post_init__(self) -> None:
        if self.kernel % 2 == 0:
            raise ValueError(f"kernel size must be odd, got {self.kernel}")
        check_context(self.context)

    @property
    def inputs(self) -> int:
        """Input channels of layer 1: ``2 context + 1`` slices."""
        return 2 * self.context + 1

    def to_dict(self) -> dict:
        """The fields; ``context`` only when set, so a paper network's record is as it always was."""
        data = asdict(self)
        if not self.context:
            del data["context"]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> NetworkConfig:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


class SegNet(nn.Module):
    """One feature's network. Input (B, 2 context + 1, H, W) (context 0: one slice), output (B, 1, H/2, W/2)."""

    def __init__(self, config: NetworkConfig = NetworkConfig()) -> None:
        super().__init__()
        self.config = config
        c, k = config.channels, config.kernel
        self.conv1 = nn.Conv2d(config.inputs, c, k, padding=k // 2)
        self.conv3 = nn.Conv2d(c, c, k, padding=k // 2)
        self.conv4 = nn.Conv2d(c, 1, k, padding=k // 2)

    def forward(self, x: torch.Tensor, conv: ConvFn = conv2d_same) -> torch.Tensor:
        """Linear layer-4 output for input ``x`` already scaled by :data:`INPUT_SCALE`."""
        p = self.config.pool
        h = F.relu(conv(x, self.conv1.weight, self.conv1.bias))
        h = F.max_pool2d(h, p, p)
        h = F.relu(conv(h, self.conv3.weight, self.conv3.bias))
        return conv(h, self.conv4.weight, self.conv4.bias)

    def kernels(self) -> list[torch.Tensor]:
        """The convolution kernels (weight-decayed); biases are not included."""
        return [self.conv1.weight, self.conv3.weight, self.conv4.weight]


def init_weights(net: SegNet, seed: int) -> SegNet:
    """Small uniform kernels around zero, zero biases (Glorot-uniform bounds).

    The bound is ``sqrt(6 / (fan_in + fan_out))`` with ``fan_out`` divided by the
    pooling area, as in the reference implementation. Seeded and in place.
    """
    rng = np.random.default_rng(seed)
    pool_area = net.config.pool**2
    with torch.no_grad():
        for conv in (net.conv1, net.conv3, net.conv4):
            cout, cin, kh, kw = conv.weight.shape
            fan_in = cin * kh * kw
            fan_out = cout * kh * kw / pool_area
            bound = float(np.sqrt(6.0 / (fan_in + fan_out)))
            values = rng.uniform(-bound, bound, size=conv.weight.shape).astype(np.float32)
            conv.weight.copy_(torch.from_numpy(values))
            conv.bias.zero_()
    return net


def receptive_field(config: NetworkConfig = NetworkConfig()) -> int:
    """Receptive field of one output pixel, in input pixels."""
    k, p = config.kernel, config.pool
    # layer 1 (k) -> pool (p) -> layer 3 (k at stride p) -> layer 4 (k at stride p)
    return k + (p - 1) + 2 * (k - 1) * p
