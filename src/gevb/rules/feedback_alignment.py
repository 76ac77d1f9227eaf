"""Feedback alignment (Lillicrap et al. 2016; docs/rules.md): BP's backward pass through fixed random weights."""

from __future__ import annotations

import torch

from gevb.init import draw_weight, stream_seed
from gevb.layers import WeightLayer
from gevb.models.network import Network
from gevb.rules.base import register_rule
from gevb.rules.bp import BP

FEEDBACK_STREAM = 2  # gevb.init.stream_seed: the model draws from the seed itself, the batch order from stream 1


@register_rule("fa", "FA")
class FeedbackAlignment(BP):
    """BP whose credit travels back through ``B_l`` instead of ``W_l``: ``c_pre = G_pre * (B_l^T c)``.

    One fixed ``B_l`` per weight layer past the first (the first layer's input needs no credit), with
    the layer's weight shape, drawn from ``seed`` the way the layer's own weight is initialized
    (``gevb.init.draw_weight``, same sign regime and role): nonnegative ON/OFF-structured feedback in
    ``nonneg`` networks, He normal in ``mixed`` ones. Buffers ``feedback_<i>`` (layer index i), so
    checkpoints hold them; training never changes them. The weight updates are BP's given the credits.
    """

    def __init__(self, model: Network, seed: int = 0) -> None:
        super().__init__(model, seed)
        generator = torch.Generator().manual_seed(stream_seed(seed, FEEDBACK_STREAM))
        readout = model.weight_indices[-1]
        for i in model.weight_indices[1:]:
            layer = model.layers[i]
            role = "hidden" if i != readout else "readout" if model.vectorized else "paired-readout"
            where = f"{model.name} layers.{i}"
            drawn = draw_weight(layer.block_shape, layer.fan_in, model.sign, role, generator, where)
            weight = layer.weight
            self.register_buffer(f"feedback_{i}", drawn.view(weight.shape).to(device=weight.device, dtype=weight.dtype))

    def backward_weight(self, index: int, layer: WeightLayer) -> torch.Tensor:
        return getattr(self, f"feedback_{index}")
