"""Direct random target projection (Frenkel et al. 2021; docs/rules.md): the broadcast rules with the
target in place of the error, so no hidden layer waits for the output."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gevb.models.network import Network, Trace
from gevb.rules.base import HiddenSignals, Rule, error_vector, register_rule, unit_signals
from gevb.rules.dfa import projected, random_feedback


def target_vector(target: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``-onehot(target)``: the part of the output error ``e = softmax(y) - onehot`` that does not depend
    on the output, (B,) -> (B, classes) in ``like``'s dtype."""
    return -F.one_hot(target, like.shape[1]).to(like.dtype)


@register_rule("drtp")
class DRTP(Rule):
    """Hidden layers learn from ``-onehot(target)`` where DFA and GEVB use ``e``; the readout from ``e``.

    Conventional: ``g_l = f'(h_l) * (-y @ B_l)`` with B uniform in [-1, 1] in both sign regimes (DFA's
    draw from ``seed``): a nonnegative B would give every unit a signal of one sign whatever the class
    (``-y @ B <= 0``), and every hidden weight would move the same way. Vectorized: GEVB's broadcast
    of ``-y`` instead of ``e``,
    ``dW_ij = -sum_b G_i a_j[y_b] / B`` (each unit's components are the classes, so the projection
    onto a unit is the identity and needs no random matrix).
    """

    def __init__(self, model: Network, seed: int = 0, **options: object) -> None:
        super().__init__(model, seed, **options)
        if not model.vectorized:
            self.shapes = model.hidden_shapes()
            self.register_buffer("feedback", random_feedback(model, seed, signed=True))

    def signals(self, model: Network, output: Trace, error: torch.Tensor, target: torch.Tensor) -> HiddenSignals:
        """Vectorized: all ones times ``-y`` (each unit gets ``-y`` itself); conventional: ``-y @ B_l``."""
        vector = target_vector(target, error)
        if model.vectorized:
            return HiddenSignals(unit_signals(model, output), vector)
        return HiddenSignals(projected(vector, self.feedback, self.shapes), error_vector(model, error))
