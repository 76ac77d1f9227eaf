"""What the rules that send BP's credit back through other weights share (feedback alignment, Kolen-Pollack,
weight mirror, sign-concordant feedback; docs/rules.md): draws from a layer's initial distribution, and
``Feedback``, BP through one backward weight ``B_l`` per weight layer past the first, held as a buffer."""

from __future__ import annotations

import torch

from gevb.init import draw_weight, stream_seed
from gevb.layers import WeightLayer
from gevb.models.network import Network
from gevb.rules.bp import BP

FEEDBACK_STREAM = 2  # gevb.init.stream_seed: the model draws from the seed itself, the batch order from stream 1


def feedback_generator(seed: int) -> torch.Generator:
    """The generator of a rule's fixed random feedback, independent of the model's and the batch order's."""
    return torch.Generator().manual_seed(stream_seed(seed, FEEDBACK_STREAM))


def initial_draw(model: Network, index: int, generator: torch.Generator) -> torch.Tensor:
    """A fresh draw of weight layer ``index``'s initial distribution (``gevb.init.draw_weight``: same sign
    regime and role, so nonnegative ON/OFF-structured in ``nonneg`` networks, He normal in ``mixed`` ones), in
    the weight's shape, dtype and device."""
    layer = model.layers[index]
    readout = model.weight_indices[-1]
    role = "hidden" if index != readout else "readout" if model.vectorized else "paired-readout"
    where = f"{model.name} layers.{index}"
    drawn = draw_weight(layer.block_shape, layer.fan_in, model.sign, role, generator, where)
    weight = layer.weight
    return drawn.view(weight.shape).to(device=weight.device, dtype=weight.dtype)


class Feedback(BP):
    """BP whose credit travels back through ``B_l`` instead of ``W_l``: ``c_pre = G_pre * (B_l^T c)``.

    One ``B_l`` per weight layer past the first (the first layer's input needs no credit), with the layer's
    weight shape, first drawn from ``seed`` like the layer's own weight (``initial_draw``). Buffers
    ``feedback_<i>`` (layer index i), so checkpoints hold them. The weight updates are BP's given the credits.
    """

    def __init__(self, model: Network, seed: int = 0, **options: object) -> None:
        super().__init__(model, seed, **options)
        generator = feedback_generator(seed)
        for i in model.weight_indices[1:]:
            self.register_buffer(f"feedback_{i}", initial_draw(model, i, generator))

    def feedback(self, index: int) -> torch.Tensor:
        """``B`` of weight layer ``index``, in the layer's weight shape."""
        return getattr(self, f"feedback_{index}")

    def backward_weight(self, index: int, layer: WeightLayer) -> torch.Tensor:
        return self.feedback(index)
