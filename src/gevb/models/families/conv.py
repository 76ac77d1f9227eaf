"""Convolutional networks (docs/method.md §7): two (MNIST) or three (CIFAR-10) conv blocks, then one linear layer."""

from __future__ import annotations

from gevb.models.architectures import register_architecture
from gevb.models.specs import Conv, Flatten, LayerSpec, Linear, Pool

SMALL = ((4, 6, 16), (4, 6, 4, 16))  # hidden widths of the test variants (one channel, more)


def conv_layers(channels: int) -> tuple[LayerSpec, ...]:
    if channels == 1:
        return Conv(64, 3, 1, 1), Pool(), Conv(32, 3, 1, 1), Pool(), Flatten(), Linear(1024)
    return Conv(128, 5, 1, 2), Pool(), Conv(64, 5, 1, 2), Pool(), Conv(64, 2, 2, 0), Flatten(), Linear(1024)


@register_architecture("conv-vec", "conv", True, "Conv-Vec", SMALL)
def conv_vec(channels: int) -> tuple[LayerSpec, ...]:
    return conv_layers(channels)


@register_architecture("conv", "conv", False, "Conv", SMALL)
def conv(channels: int) -> tuple[LayerSpec, ...]:
    return conv_layers(channels)
