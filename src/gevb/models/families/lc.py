"""Locally connected networks (docs/method.md §7): the conv networks' layout without weight sharing."""

from __future__ import annotations

from gevb.models.architectures import register_architecture
from gevb.models.specs import Flatten, LayerSpec, Linear, Local, Pool

SMALL = ((4, 6, 16), (4, 6, 4, 16))  # hidden widths of the test variants (one channel, more)


def lc_layers(channels: int, readin: int) -> tuple[LayerSpec, ...]:
    if channels == 1:
        return Local(32, 3, 1, 1), Pool(), Local(32, 3, 1, 1), Pool(), Flatten(), Linear(1024)
    return Local(64, 5, 1, 2), Pool(), Local(32, 5, 1, 2), Pool(), Local(32, 2, 2, 0), Flatten(), Linear(readin)


@register_architecture("lc-vec", "lc", True, "LC-Vec", SMALL)
def lc_vec(channels: int) -> tuple[LayerSpec, ...]:
    return lc_layers(channels, readin=256)


@register_architecture("lc", "lc", False, "LC", SMALL)
def lc(channels: int) -> tuple[LayerSpec, ...]:
    return lc_layers(channels, readin=512)
