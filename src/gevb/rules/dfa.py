"""Direct feedback alignment (docs/method.md §5), for conventional networks."""

from __future__ import annotations

import math

import torch

from gevb.models.network import Network, Trace
from gevb.rules.base import Rule, register_rule, set_broadcast_grads


@register_rule("dfa")
class DFA(Rule):
    """Hidden layer l gets ``g = f'(h_l) * (e @ B_l)``; the readout gets its true gradient.

    ``feedback`` (num_classes, max_width) is drawn once from ``seed``: uniform in [0, 1] for
    ``nonneg`` networks, [-1, 1] for ``mixed``; layer l uses its first ``width_l`` columns (its
    output flattened in (C, H, W) order), unnormalized. It is a buffer, so ``state_dict``
    round-trips it, and training never changes it.
    """

    vectorized = (False,)

    def __init__(self, model: Network, seed: int = 0) -> None:
        super().__init__(model, seed)
        self.shapes = model.hidden_shapes()
        width = max(math.prod(shape) for shape in self.shapes)
        low = 0.0 if model.sign == "nonneg" else -1.0
        generator = torch.Generator().manual_seed(seed)
        feedback = low + (1.0 - low) * torch.rand(model.num_classes, width, generator=generator, dtype=torch.float64)
        weight = model.layers[0].weight
        self.register_buffer("feedback", feedback.to(device=weight.device, dtype=weight.dtype))

    def signals(self, error: torch.Tensor) -> list[torch.Tensor]:
        """``e @ B_l`` for every hidden layer, shaped like its output: [(B, *shape_l)]."""
        batch = error.shape[0]
        return [(error @ self.feedback[:, : math.prod(shape)]).view(batch, *shape) for shape in self.shapes]

    def deliver(self, model: Network, output: Trace, error: torch.Tensor) -> None:
        set_broadcast_grads(model, output, error, self.signals(error))

    def hidden_signals(self, model: Network, output: Trace, error: torch.Tensor) -> list[torch.Tensor]:
        """``e @ B_l`` per hidden layer."""
        return self.signals(error)
