"""Vectorized max pooling: per channel and window, the whole K-vector of the position whose components sum
highest (docs/architectures.md, "Layers"). Choosing one position for all K components keeps the layer the
same linear map on every component once the choice is made, so scalar credits pass through it as through
average pooling (docs/method.md §5); the choice is held constant in derivatives, like a gate's. With K = 1
it is ordinary max pooling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from gevb.layers.kinds import Pooling, register_layer


class VecMaxPool2d(nn.Module):
    """(B, K, C, H, W) -> (B, K, C, H // s, W // s), window = stride = ``kernel_size``: each output takes the
    K-vector at the window position of largest ``sum_k a[:, k]``."""

    kind = "maxpool"

    def __init__(self, kernel_size: int = 2) -> None:
        super().__init__()
        if kernel_size < 2:
            raise ValueError(f"VecMaxPool2d needs kernel_size >= 2, got {kernel_size}")
        self.kernel_size = kernel_size

    def winners(self, a: torch.Tensor) -> torch.Tensor:
        """(B, C, H', W'): the flat index ``y * W + x`` of each window's chosen position."""
        return F.max_pool2d(a.sum(1), self.kernel_size, return_indices=True)[1]

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        index = self.winners(a)
        k = a.shape[1]
        chosen = index.flatten(2).unsqueeze(1).expand(-1, k, -1, -1)  # (B, K, C, H'*W')
        return a.flatten(3).gather(3, chosen).view(*a.shape[:3], *index.shape[2:])

    def input_credit(self, c: torch.Tensor, a_in: torch.Tensor) -> torch.Tensor:
        """Transpose of the pooling with the choice held: (B, C, H', W') -> (B, C, H, W), zero elsewhere."""
        credit = c.new_zeros(a_in.shape[0], *a_in.shape[2:])
        return credit.flatten(2).scatter_add_(2, self.winners(a_in).flatten(2), c.flatten(2)).view_as(credit)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}"


@register_layer
@dataclass(frozen=True)
class MaxPool(Pooling):
    """Vectorized max pooling, window = stride = ``kernel``."""

    op: ClassVar[str] = "maxpool"
    module: ClassVar[type[nn.Module]] = VecMaxPool2d
