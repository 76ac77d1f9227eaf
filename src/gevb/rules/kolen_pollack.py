"""Kolen-Pollack (Akrout, Wilson, Humphreys, Lillicrap & Tweed 2019, eqs. 16-17; docs/rules.md): backward
weights that receive the forward weights' own updates, transposed, and the same decay, so they converge to them."""

from __future__ import annotations

import torch

from gevb.intervals import Interval
from gevb.models.network import Network, Trace
from gevb.rules.base import register_rule
from gevb.rules.feedback import Feedback
from gevb.rules.options import RuleOption


@register_rule("kolen-pollack", "KP")
class KolenPollack(Feedback):
    """BP through ``B_l`` (``Feedback``, first drawn like FA's), where after every step of the optimizer

        ``W_l <- d (W_l + D_l)``,  ``B_l <- d (B_l + D_l)``,  d = 1 - ``decay``,

    with ``D_l`` the step the optimizer actually applied to ``W_l`` (after the nonneg clamp; under Adam not the
    raw gradient), measured as the weight's change over the step. B keeps W's layout, which is the paper's
    ``B <- d B - eta dW^T`` in its transposed one (a conv kernel's in its own layout). Then
    ``W_l - B_l = d^t (W_l - B_l)`` at the start: the backward weights converge to the forward ones at the rate
    of the decay, which must therefore be on (d = 1 would keep them apart forever). The decay acts on every
    weight with a backward weight (the layers past the first); biases and the first layer are the optimizer's.
    """

    options = (
        RuleOption(
            "decay", float, 3e-3, "decay per step of W and B (d = 1 - decay); over t steps the gap shrinks to d**t",
            Interval(0.0, 1.0, open_low=True, open_high=True), (1e-4, 3e-2),
        ),
    )  # fmt: skip
    decay: float

    def __init__(self, model: Network, seed: int = 0, **options: object) -> None:
        super().__init__(model, seed, **options)
        self.before: dict[int, torch.Tensor] = {}

    def deliver(self, model: Network, output: Trace, error: torch.Tensor, target: torch.Tensor) -> None:
        super().deliver(model, output, error, target)
        self.before = {i: model.layers[i].weight.detach().clone() for i in model.weight_indices[1:]}

    @torch.no_grad()
    def after_update(self, model: Network) -> None:
        keep = 1.0 - self.decay
        for i, before in self.before.items():
            weight = model.layers[i].weight
            self.feedback(i).add_(weight - before).mul_(keep)
            weight.mul_(keep)
        self.before = {}
