"""Fully connected networks (docs/method.md §7): MNIST 784 -> 1024 -> 512 -> readout, CIFAR-10 one more 512."""

from __future__ import annotations

from gevb.models.architectures import register_architecture
from gevb.models.specs import LayerSpec, Linear

SMALL = ((16, 12), (16, 12, 8))  # hidden widths of the test variants (one channel, more)


def fc_layers(channels: int) -> tuple[LayerSpec, ...]:
    if channels == 1:
        return Linear(1024), Linear(512)
    return Linear(1024), Linear(512), Linear(512)


@register_architecture("fc-vec", "fc", True, "FC-Vec", SMALL)
def fc_vec(channels: int) -> tuple[LayerSpec, ...]:
    return fc_layers(channels)


@register_architecture("fc", "fc", False, "FC", SMALL)
def fc(channels: int) -> tuple[LayerSpec, ...]:
    return fc_layers(channels)
