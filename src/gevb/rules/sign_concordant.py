"""Sign-concordant feedback (Liao, Leibo & Poggio 2016; docs/rules.md): BP's backward pass through the forward
weights' signs, ``B_l = s_l * sign(W_l)``, with one of three magnitudes s_l:

- ``usf`` (uniform sign-concordant feedback): ``s_l = c_l``, the standard deviation of the layer's initial
  weight distribution, fixed at construction (the old ``sign-symmetry``, which scaled by ``mean|W_l|``);
- ``frsf`` (fixed random magnitude): ``s_l = |M_l|``, M drawn once from the initial distribution;
- ``brsf`` (batchwise random magnitude): the same with M redrawn for every batch.

The signs are read from the current weights at every step. A magnitude below ``ZERO_FLOOR * c_l`` counts as 0:
a weight the nonneg clamp left at 0 in one summation order and at 1e-12 in another would otherwise flip its
sign from 0 to 1. In a ``nonneg`` network every weight past the first layer is >= 0, so ``sign(W_l)`` is the
indicator of its support ``1[W_l > 0]``: uSF sends the credit back through the constant c_l on that support,
frSF and brSF through positive random magnitudes on it.
"""

from __future__ import annotations

import torch

from gevb.init import stream_seed
from gevb.layers import WeightLayer
from gevb.models.network import Network, Trace
from gevb.rules.base import register_alias, register_rule
from gevb.rules.bp import BP
from gevb.rules.feedback import Feedback, feedback_generator, initial_draw

ZERO_FLOOR = 1e-6
MAGNITUDE_STREAM = 4  # gevb.init.stream_seed: brSF's draw of step s is stream 4, step s (FA's feedback is stream 2)


def concordant(weight: torch.Tensor, magnitude: torch.Tensor | float, scale: float) -> torch.Tensor:
    """``magnitude * sign(weight)``, 0 where ``|weight| <= ZERO_FLOOR * scale``."""
    return torch.where(weight.abs() > ZERO_FLOOR * scale, torch.sign(weight) * magnitude, 0.0)


def initial_scales(model: Network, seed: int) -> dict[int, float]:
    """c_l of every weight layer past the first: the standard deviation of one draw of its initial distribution."""
    generator = feedback_generator(seed)
    return {i: initial_draw(model, i, generator).std().item() for i in model.weight_indices[1:]}


@register_rule("usf", "uSF")
class UniformSignConcordant(BP):
    """``B_l = c_l sign(W_l)``. No state: c_l is drawn again from the seed whenever the rule is built."""

    def __init__(self, model: Network, seed: int = 0, **options: object) -> None:
        super().__init__(model, seed, **options)
        self.scales = initial_scales(model, seed)

    def backward_weight(self, index: int, layer: WeightLayer) -> torch.Tensor:
        return concordant(layer.weight, self.scales[index], self.scales[index])


register_alias("sign-symmetry", "usf", "sign-symmetry is now usf, scaled by the initial weights' std, not mean|W|")


@register_rule("frsf", "frSF")
class FixedRandomSignConcordant(Feedback):
    """``B_l = |M_l| sign(W_l)``, M_l the fixed buffer ``feedback_<l>`` (``Feedback``'s draw)."""

    def __init__(self, model: Network, seed: int = 0, **options: object) -> None:
        super().__init__(model, seed, **options)
        self.scales = initial_scales(model, seed)

    def backward_weight(self, index: int, layer: WeightLayer) -> torch.Tensor:
        return concordant(layer.weight, self.feedback(index).abs(), self.scales[index])


@register_rule("brsf", "brSF")
class BatchRandomSignConcordant(BP):
    """``B_l = |M_l| sign(W_l)`` with M_l of step s drawn from ``(seed, s)`` alone (so a resumed run draws what
    an uninterrupted one would); the step count is the rule's saved state, advanced by ``deliver``."""

    def __init__(self, model: Network, seed: int = 0, **options: object) -> None:
        super().__init__(model, seed, **options)
        self.seed, self.steps = seed, 0
        self.scales = initial_scales(model, seed)
        self.drawn: tuple[int, dict[int, torch.Tensor]] = (-1, {})

    def get_extra_state(self) -> torch.Tensor:
        return torch.tensor(self.steps)

    def set_extra_state(self, state: torch.Tensor) -> None:
        self.steps = int(state)

    def magnitudes(self, model: Network, step: int) -> dict[int, torch.Tensor]:
        """|M_l| of ``step`` for every weight layer past the first (drawn once per step, then kept)."""
        if self.drawn[0] != step:
            generator = torch.Generator().manual_seed(stream_seed(self.seed, MAGNITUDE_STREAM, step))
            self.drawn = (step, {i: initial_draw(model, i, generator).abs() for i in model.weight_indices[1:]})
        return self.drawn[1]

    def credits(self, model: Network, output: Trace, error: torch.Tensor):
        self.magnitudes(model, self.steps)  # this step's, for ``backward_weight``
        return super().credits(model, output, error)

    def backward_weight(self, index: int, layer: WeightLayer) -> torch.Tensor:
        return concordant(layer.weight, self.drawn[1][index], self.scales[index])

    def deliver(self, model: Network, output: Trace, error: torch.Tensor, target: torch.Tensor) -> None:
        super().deliver(model, output, error, target)
        self.steps += 1
