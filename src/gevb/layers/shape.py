"""Layers without weights that change an activation's shape: average pooling and flatten (docs/method.md §2)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from gevb.layers.dispatch import use_strided_sum_pooling
from gevb.layers.kinds import LayerSpec, Pooling, register_layer


class VecAvgPool2d(nn.Module):
    """Average pooling of each component, window = stride = ``kernel_size``.

    (B, K, C, H, W) -> (B, K, C, H // s, W // s).
    """

    kind = "pool"

    def __init__(self, kernel_size: int = 2) -> None:
        super().__init__()
        if kernel_size < 2:
            raise ValueError(f"VecAvgPool2d needs kernel_size >= 2, got {kernel_size}")
        self.kernel_size = kernel_size

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        """On the CPU (``dispatch.use_strided_sum_pooling``): sums of strided views, which beat ``F.avg_pool2d``'s
        general kernel there (docs/design.md, "Efficiency"); elsewhere ``F.avg_pool2d``. Equal up to rounding
        (tests compare). Maps whose columns are contiguous (B, K, C, H, W) sum the window's rows, then its
        columns, s - 1 additions each; position-major maps (a locally connected layer's output, each position
        a run of B*K*C values) add the s * s window positions straight into the output, one pass fewer
        (9.7 against 5.9 ms on MNIST lc-vec's first map)."""
        s = self.kernel_size
        if not use_strided_sum_pooling(a):
            return F.avg_pool2d(a.flatten(0, 1), s).unflatten(0, a.shape[:2])
        height, width = a.shape[-2] // s * s, a.shape[-1] // s * s
        a = a[..., :height, :width]
        if a.stride(-1) != 1:  # position-major
            views = [a[..., i::s, j::s] for i in range(s) for j in range(s)]
        else:
            rows = a[..., 0::s, :] + a[..., 1::s, :]  # (..., H', W)
            for i in range(2, s):
                rows.add_(a[..., i::s, :])
            views = [rows[..., j::s] for j in range(s)]
        pooled = views[0] + views[1]  # (..., H', W')
        for view in views[2:]:
            pooled.add_(view)
        return pooled.mul_(1 / s**2)

    def input_credit(self, c: torch.Tensor, a_in: torch.Tensor) -> torch.Tensor:
        """Transpose of the pooling: (B, C, H', W') -> (B, C, H, W)."""
        size = [self.kernel_size] * 2
        return torch.ops.aten.avg_pool2d_backward(c, a_in[:, 0], size, size, [0, 0], False, True, None)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}"


class VecFlatten(nn.Module):
    """(B, K, C, H, W) -> (B, K, C*H*W) in one of two feature orders.

    ``order="hwc"`` (vectorized networks, docs/method.md §2): channel fastest, feature ``(y*W + x)*C + c``,
    so paired channels 2m, 2m+1 land on adjacent features 2n, 2n+1, the pairs of the next layer's
    ON/OFF columns. ``order="chw"`` (conventional networks, as published, docs/method.md §3): feature
    ``(c*H + y)*W + x``, so a column pair is two neighbouring positions of one channel.
    """

    ORDERS = ("hwc", "chw")
    kind = "flatten"

    def __init__(self, order: str = "hwc") -> None:
        super().__init__()
        if order not in self.ORDERS:
            raise ValueError(f"VecFlatten order must be one of {', '.join(self.ORDERS)}, got {order!r}")
        self.order = order

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return a.permute(0, 1, 3, 4, 2).flatten(2) if self.order == "hwc" else a.flatten(2)

    def input_credit(self, c: torch.Tensor, a_in: torch.Tensor) -> torch.Tensor:
        """(B, C*H*W) -> (B, C, H, W)."""
        channels, height, width = a_in.shape[2:]
        if self.order == "chw":
            return c.view(c.shape[0], channels, height, width)
        return c.view(c.shape[0], height, width, channels).permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return f"order={self.order!r}"


@register_layer
@dataclass(frozen=True)
class Pool(Pooling):
    """Average pooling, window = stride = ``kernel``."""

    op: ClassVar[str] = "pool"
    module: ClassVar[type[nn.Module]] = VecAvgPool2d


@register_layer
@dataclass(frozen=True)
class Flatten(LayerSpec):
    """Feature maps to a vector, in the order of the network's kind (docs/method.md §2, §3)."""

    op: ClassVar[str] = "flatten"

    def build(self, shape, k, expand, vectorized, factory):
        order = "hwc" if vectorized else "chw"  # conventional networks as published (docs/method.md §3)
        return VecFlatten(order), (math.prod(shape),)
