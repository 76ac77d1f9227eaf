"""Sign-symmetry (Liao, Leibo & Poggio 2016; docs/rules.md): BP's backward pass through the weights' signs."""

from __future__ import annotations

import torch

from gevb.layers import WeightLayer
from gevb.rules.base import register_rule
from gevb.rules.bp import BP

ZERO_FLOOR = 1e-6


@register_rule("sign-symmetry", "sign-symmetry")
class SignSymmetry(BP):
    """BP whose credit travels back through ``sign(W_l) * mean|W_l|``: the forward weights' signs, at the
    layer's mean magnitude, so the credit keeps BP's scale (learning rates carry over; Adam is indifferent
    to the scale). In a ``nonneg`` network sign(W) is 1 where W > 0 and 0 where the clamp left W at 0.
    Magnitudes below ``ZERO_FLOOR`` times the mean count as 0: a weight the clamp left at 0 in one
    summation order and at 1e-12 in another would otherwise flip from 0 to 1. No state: the signs are
    read from the current weights at every step.
    """

    def backward_weight(self, index: int, layer: WeightLayer) -> torch.Tensor:
        weight = layer.weight
        scale = weight.abs().mean()
        return torch.where(weight.abs() > ZERO_FLOOR * scale, torch.sign(weight) * scale, 0.0)
