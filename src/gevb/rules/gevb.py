"""Global error-vector broadcasting (docs/method.md §5): every hidden unit receives the same error vector e."""

from __future__ import annotations

import torch

from gevb.models.network import Network, Trace
from gevb.rules.base import HiddenSignals, Rule, register_rule, unit_signals


@register_rule("gevb")
class GEVB(Rule):
    """``dW_ij = sum_b G_i (e . a_j) / B``: presynaptic activity, postsynaptic gate, broadcast error.

    Equal to exact BP with each unit's scalar credit c_i replaced by its gate G_i. Vectorized
    networks only.
    """

    vectorized = (True,)

    def signals(self, model: Network, output: Trace, error: torch.Tensor, target: torch.Tensor) -> HiddenSignals:
        """All ones times ``e``: every unit receives ``e`` itself (the gate then multiplies it)."""
        return HiddenSignals(unit_signals(model, output), error)
