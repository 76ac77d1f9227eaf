"""Sign matching (docs/method.md §6): per example, the fraction of weights whose rule update and BP gradient have
opposite signs. Zero for every layer of a fully connected nonneg VNN trained by GEVB (BP's update of
unit i is c_i >= 0 times GEVB's); weight sharing (conv) and mixed signs break the guarantee.
"""

from __future__ import annotations

import torch

from gevb.alignment import grads_kept, layer_names, weight_updates
from gevb.models import Network
from gevb.rules import Rule, make_rule


def opposite_sign_fractions(model: Network, rule: Rule, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(examples, weight layers): per example (batch of one), the fraction of each layer's weights where
    ``rule``'s update times the true gradient is < 0. x: (N, *input_shape); target: (N,)."""
    reference = make_rule("bp", model)
    fractions = torch.zeros(len(x), len(model.weight_indices), dtype=torch.float64)
    with grads_kept(model, rule):
        for n in range(len(x)):
            example, label = x[n : n + 1], target[n : n + 1]
            updates = weight_updates(model, rule, example, label)
            gradients = weight_updates(model, reference, example, label)
            for layer, (u, g) in enumerate(zip(updates, gradients, strict=True)):
                fractions[n, layer] = ((u * g) < 0).double().mean()
    return fractions


def sign_check(model: Network, rule: Rule, x: torch.Tensor, target: torch.Tensor) -> dict[str, dict[str, float]]:
    """Per weight layer (``layers.<i>``): mean and max over examples of the opposite-sign fraction, and
    the fraction of examples with any opposite sign."""
    fractions = opposite_sign_fractions(model, rule, x, target)
    return {
        name: {
            "mean_fraction": fractions[:, j].mean().item(),
            "max_fraction": fractions[:, j].max().item(),
            "examples_with_any": (fractions[:, j] > 0).double().mean().item(),
        }
        for j, name in enumerate(layer_names(model))
    }
