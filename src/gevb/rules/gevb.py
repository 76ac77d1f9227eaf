"""Global error-vector broadcasting (docs/method.md §5): every hidden unit receives the same error vector e."""

from __future__ import annotations

import torch

from gevb.models.network import Network, Trace
from gevb.rules.base import Rule, register_rule, set_broadcast_grads, unit_signals


@register_rule("gevb")
class GEVB(Rule):
    """``dW_ij = sum_b G_i (e . a_j) / B``: presynaptic activity, postsynaptic gate, broadcast error.

    Equal to exact BP with each unit's scalar credit c_i replaced by its gate G_i. Vectorized
    networks only.
    """

    vectorized = (True,)

    def deliver(self, model: Network, output: Trace, error: torch.Tensor, target: torch.Tensor) -> None:
        set_broadcast_grads(model, output, error)

    def hidden_signals(
        self, model: Network, output: Trace, error: torch.Tensor, target: torch.Tensor
    ) -> list[torch.Tensor]:
        """All ones: every unit receives ``e`` itself (the gate then multiplies it)."""
        return unit_signals(model, output)
