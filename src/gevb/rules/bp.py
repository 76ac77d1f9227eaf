"""Backpropagation: the fast scalar-credit path (docs/method.md §5) and autograd, its reference."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gevb.layers import WeightLayer
from gevb.models.network import Network, Trace
from gevb.rules.base import HiddenSignals, Rule, backward_credits, error_vector, register_rule


@register_rule("bp")
class BP(Rule):
    """Exact backpropagation passing one scalar per unit backwards.

    In a vectorized network every Jacobian is a scalar times the K x K identity, so
    ``dL/dh_i = c_i e`` with ``c = 1`` at the readout and ``c_pre = G_pre * (W^T c)`` (through the
    transposes of pooling / flatten in between): K times cheaper than autograd. In a
    conventional network (K = 1) the same recursion carries the ordinary deltas, starting from
    ``e`` at the readout. Both equal autograd's gradient of the mean cross-entropy.

    Rules that send the credit back through other weights (feedback alignment, sign-symmetry)
    subclass this one and override ``backward_weight``.
    """

    def backward_weight(self, index: int, layer: WeightLayer) -> torch.Tensor:
        """The weight that weight layer ``index`` transposes on the way back: its own, for BP."""
        return layer.weight

    def credits(self, model: Network, output: Trace, error: torch.Tensor):
        """This rule's scalar credit at the output of every layer, readout first: (i, c_i)."""
        return backward_credits(model, output, error, self.backward_weight)

    def signals(self, model: Network, output: Trace, error: torch.Tensor, target: torch.Tensor) -> HiddenSignals:
        """The credit this rule's backward pass brings to each hidden layer's output (before its gate)."""
        gates = set(model.gate_indices)
        credits = {i: credit for i, credit in self.credits(model, output, error) if i in gates}
        return HiddenSignals([credits[i] for i in model.gate_indices], error_vector(model, error))


@register_rule("bp-autograd", "BP (autograd)")
class AutogradBP(Rule):
    """Reference BP: ``torch.autograd.grad`` of the mean cross-entropy (carries K-vectors back)."""

    needs_graph = True
    per_unit_signals = False  # autograd carries K-vectors back; the alignment analysis reports its updates only

    def set_grads(self, model: Network, output: Trace, target: torch.Tensor) -> torch.Tensor:
        if not output.logits.requires_grad:
            raise ValueError(
                "bp-autograd needs a forward pass recorded by autograd; run model.trace(x) with grad enabled"
            )
        loss = F.cross_entropy(output.logits, target)
        params = list(model.parameters())
        for param, grad in zip(params, torch.autograd.grad(loss, params), strict=True):
            param.grad = grad
        return loss.detach()
