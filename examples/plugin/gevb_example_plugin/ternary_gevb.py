"""GEVB that broadcasts a ternary error: each component of e as -1, 0 or +1, 0 where |e_k| <= threshold."""

import torch

from gevb.intervals import Interval
from gevb.rules import HiddenSignals, Rule, register_rule
from gevb.rules.base import unit_signals
from gevb.rules.options import RuleOption


@register_rule("ternary-gevb", "ternary GEVB")
class TernaryGEVB(Rule):
    """Every hidden unit receives ``sign(e) * 1[|e| > threshold]`` (B, K) through its gate, as GEVB sends ``e``."""

    vectorized = (True,)  # a broadcast error vector needs vector units
    options = (RuleOption("threshold", float, 0.05, "errors this small broadcast as 0", Interval(0.0, 1.0)),)
    threshold: float

    def signals(self, model, output, error, target) -> HiddenSignals:
        vector = torch.sign(error) * (error.abs() > self.threshold)
        return HiddenSignals(unit_signals(model, output), vector)
