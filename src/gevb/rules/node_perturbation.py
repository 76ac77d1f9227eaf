"""Node perturbation (docs/rules.md): the loss change under random noise on the hidden units, times that
noise, as the credit; the noisy global broadcast that GEVB replaces by an exact one."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gevb.init import stream_seed
from gevb.intervals import POSITIVE
from gevb.models.network import Network, Trace
from gevb.rules.base import HiddenSignals, Rule, register_rule
from gevb.rules.options import RuleOption

NOISE_STREAM = 3  # gevb.init.stream_seed; FA's feedback is stream 2


@register_rule("node-perturbation", "node perturbation")
class NodePerturbation(Rule):
    """Extra forward passes: one with every hidden unit's pre-activation perturbed, and a clean one unless the
    trace is plain (``Trace.plain``: its logits are that clean pass's); the readout learns from ``e``.

    Unit i of example b gets ``h_bi + sigma xi_bi u_b`` with xi ~ N(0, 1) per unit and u_b its direction:
    ``e_b / |e_b|`` in a vectorized network, where the true gradient is ``dL/dh_bi = c_bi e_b`` and only
    the scalar c is unknown (so per unit, not per component: N noise values, not K*N); 1 in a
    conventional one. With ``dL_b`` the loss change of example b, ``c^_bi = dL_b xi_bi / sigma``
    estimates ``c_bi |e_b|`` (vectorized; ``dL/dh_bi`` conventional) without bias as sigma -> 0, and the
    layer's gradient is that of the scalar layer with output gradient ``c^`` and input contracted with
    ``u / B``. sigma = ``noise_scale``. The noise of step s is drawn from ``(seed, s)`` alone, so a
    resumed run draws what an uninterrupted one would; the step count is the rule's saved state.
    Under data-parallel training every process draws the same stream for its own slice of the batch.
    """

    options = (
        RuleOption("noise_scale", float, 1e-2, "std of the noise on each hidden unit (sigma)", POSITIVE, (1e-3, 1e-1)),
    )
    lr_search = (1e-5, 3e-3)  # its estimates are noisy: steps larger than BP's do not pay
    noise_scale: float

    def __init__(self, model: Network, seed: int = 0, **options: object) -> None:
        super().__init__(model, seed, **options)
        self.seed, self.steps = seed, 0

    def get_extra_state(self) -> torch.Tensor:
        return torch.tensor(self.steps)

    def set_extra_state(self, state: torch.Tensor) -> None:
        self.steps = int(state)

    def noise(self, step: int, like: list[torch.Tensor]) -> list[torch.Tensor]:
        """xi of ``step``: standard normal tensors shaped like the hidden layers' gates ``like`` [(B, *S_j)], in
        their dtype and device; drawn in float64, so every dtype rounds the same draw."""
        device = like[0].device
        generator = torch.Generator(device=device).manual_seed(stream_seed(self.seed, NOISE_STREAM, step))
        drawn = [torch.randn(m.shape, generator=generator, dtype=torch.float64, device=device) for m in like]
        return [xi.to(m.dtype) for xi, m in zip(drawn, like, strict=True)]

    def signals(self, model: Network, output: Trace, error: torch.Tensor, target: torch.Tensor) -> HiddenSignals:
        """The credit estimates ``c^`` [(B, *S_j)] of this step's noise along the directions u (B, K),
        ungated (the noisy pass went through the gates)."""
        batch, sigma = error.shape[0], self.noise_scale
        if model.vectorized:
            direction = error / error.norm(dim=1, keepdim=True).clamp_min(torch.finfo(error.dtype).tiny)
        else:
            direction = error.new_ones(batch, 1)
        xis = self.noise(self.steps, [output.masks[i] for i in model.gate_indices])
        noise = {}
        for i, xi in zip(model.weight_indices[:-1], xis, strict=True):
            shape = (batch, direction.shape[1], *[1] * (xi.dim() - 1))
            noise[i] = sigma * xi.unsqueeze(1) * direction.view(shape)  # (B, K, *S)
        # the clean loss from a pass of the same kind and precision as the noisy one, so that dL holds the
        # noise's effect alone: a plain trace's, run without autograd as this rule's passes are, else a pass of
        # its own (a gate took t . h from the layer before, the trace came from a bf16 forward, or autograd
        # recorded it, which takes other kernels)
        clean_logits = output.logits
        if not output.plain or output.logits.grad_fn is not None:
            clean_logits = model.perturbed_logits(output.inputs[0], {i: torch.zeros_like(n) for i, n in noise.items()})
        clean = F.cross_entropy(clean_logits, target, reduction="none")
        change = F.cross_entropy(model.perturbed_logits(output.inputs[0], noise), target, reduction="none") - clean
        scale = change / sigma
        return HiddenSignals([scale.view(batch, *[1] * (xi.dim() - 1)) * xi for xi in xis], direction, gated=False)

    def deliver(self, model: Network, output: Trace, error: torch.Tensor, target: torch.Tensor) -> None:
        super().deliver(model, output, error, target)
        self.steps += 1
