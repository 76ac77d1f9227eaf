"""A rule switched off: its hidden layers' gradients and signals become zeros, or random ones of the same norm.

A test of a learning rule proves something only if it fails for such a rule (``tests/test_corruption.py``
runs every learning check under both). The readout keeps its true gradient, as under every rule, so a
switched-off rule trains the readout on the hidden layers' fixed (``zero``) or drifting (``random``) features.
"""

from __future__ import annotations

import dataclasses

import torch

from gevb.models.network import Network, Trace
from gevb.rules import HiddenSignals, Rule

CORRUPTIONS = ("zero", "random")


def corrupted_like(value: torch.Tensor, mode: str, generator: torch.Generator) -> torch.Tensor:
    """Zeros, or a standard normal draw scaled to ``value``'s norm, of ``value``'s shape, dtype and device."""
    if mode == "zero":
        return torch.zeros_like(value)
    drawn = torch.randn(value.shape, generator=generator, dtype=torch.float64).to(value)
    return drawn * (value.norm() / drawn.norm().clamp_min(torch.finfo(drawn.dtype).tiny))


class Corrupted(Rule):
    """``rule`` with every hidden weight layer's ``.grad`` (weight and bias) and every hidden signal replaced
    (``corrupted_like``, ``mode`` zero or random); random draws come from ``seed``, a new draw every step."""

    def __init__(self, rule: Rule, mode: str, seed: int = 0) -> None:
        torch.nn.Module.__init__(self)
        if mode not in CORRUPTIONS:
            raise ValueError(f"unknown corruption {mode!r}; use one of {', '.join(CORRUPTIONS)}")
        self.inner, self.mode = rule, mode
        self.name, self.needs_graph, self.per_unit_signals = rule.name, rule.needs_graph, rule.per_unit_signals
        self.generator = torch.Generator().manual_seed(seed)

    def signals(self, model: Network, output: Trace, error: torch.Tensor, target: torch.Tensor) -> HiddenSignals:
        signals = self.inner.signals(model, output, error, target)
        scalars = [corrupted_like(s, self.mode, self.generator) for s in signals.scalars]
        return dataclasses.replace(signals, scalars=scalars)

    def set_grads(self, model: Network, output: Trace, target: torch.Tensor) -> torch.Tensor:
        loss = self.inner.set_grads(model, output, target)
        for layer in model.weight_layers[:-1]:
            for param in (layer.weight, layer.bias):
                param.grad = corrupted_like(param.grad, self.mode, self.generator)
        return loss
