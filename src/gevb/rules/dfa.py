"""Direct feedback alignment (docs/method.md §5), for conventional networks."""

from __future__ import annotations

import math

import torch

from gevb.models.network import Network, Trace
from gevb.rules.base import HiddenSignals, Rule, error_vector, register_rule


def random_feedback(model: Network, seed: int, signed: bool) -> torch.Tensor:
    """A fixed feedback matrix (num_classes, max hidden width), drawn from ``seed`` in float64 on the
    CPU, then in the model's dtype and device: uniform in [-1, 1] if ``signed``, else in [0, 1];
    unnormalized. Hidden layer l uses its first ``width_l`` columns."""
    width = max(math.prod(shape) for shape in model.hidden_shapes())
    low = -1.0 if signed else 0.0
    generator = torch.Generator().manual_seed(seed)
    feedback = low + (1.0 - low) * torch.rand(model.num_classes, width, generator=generator, dtype=torch.float64)
    weight = model.layers[0].weight
    return feedback.to(device=weight.device, dtype=weight.dtype)


def projected(vector: torch.Tensor, feedback: torch.Tensor, shapes: list[tuple[int, ...]]) -> list[torch.Tensor]:
    """``vector @ B_l`` for every hidden layer l, shaped like its output: (B, classes) -> [(B, *shape_l)]."""
    batch = vector.shape[0]
    return [(vector @ feedback[:, : math.prod(shape)]).view(batch, *shape) for shape in shapes]


@register_rule("dfa")
class DFA(Rule):
    """Hidden layer l gets ``g = f'(h_l) * (e @ B_l)``; the readout gets its true gradient.

    ``feedback`` (num_classes, max_width) is ``random_feedback(model, seed)``: uniform in [0, 1] for
    ``nonneg`` networks, [-1, 1] for ``mixed``; layer l uses its first ``width_l`` columns (its output
    flattened in (C, H, W) order). It is a buffer, so ``state_dict`` round-trips it, and training never
    changes it.
    """

    vectorized = (False,)

    def __init__(self, model: Network, seed: int = 0, **options: object) -> None:
        super().__init__(model, seed, **options)
        self.shapes = model.hidden_shapes()
        self.register_buffer("feedback", random_feedback(model, seed, signed=model.sign == "mixed"))

    def signals(self, model: Network, output: Trace, error: torch.Tensor, target: torch.Tensor) -> HiddenSignals:
        """``e @ B_l`` per hidden layer."""
        return HiddenSignals(projected(error, self.feedback, self.shapes), error_vector(model, error))
