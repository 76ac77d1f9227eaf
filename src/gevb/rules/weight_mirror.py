"""Weight mirror (Akrout, Wilson, Humphreys, Lillicrap & Tweed 2019; docs/rules.md): backward weights learned
in a mirror phase, where each layer, driven by its own noise, correlates its input with its output."""

from __future__ import annotations

import torch

from gevb.init import stream_seed
from gevb.intervals import COUNT, FRACTION, POSITIVE, Interval
from gevb.models.network import Network
from gevb.rules.base import register_rule
from gevb.rules.feedback import Feedback
from gevb.rules.options import RuleOption

MIRROR_STREAM = 5  # gevb.init.stream_seed: mirror batch s draws from stream 5, batch s (FA's feedback is stream 2)


@register_rule("weight-mirror", "WM")
class WeightMirror(Feedback):
    """BP through ``B_l`` (``Feedback``, first drawn like FA's), which a mirror batch updates as

        ``B_l <- (1 - mirror_decay) B_l + mirror_lr * sum_b y_b x_b^T``,  ``y = f(W_l x + b_l)``,

    x (``mirror_batch`` samples of the scalar layer) uniform in [-``mirror_noise``, ``mirror_noise``] at the
    layer's input, f the gate after the layer (none after the readout). In a vectorized network each unit's K
    components are K samples of the scalar layer (they share its gate), so a mirror batch holds
    ``ceil(mirror_batch / K)`` examples there: the same number of samples, and the same step of B, as in a
    conventional network. ``sum_b y_b x_b^T`` is computed as the gradient of
    ``<y, h(x)>`` with respect to W, so it has W's layout (B is kept in W's layout; the paper's B is its
    transpose) for every layer kind. For zero-mean noise ``E[y x^T]`` is W times the noise's variance (times the
    gate's share, for a gated layer), so B turns toward W. ``mirror_warmup`` batches run when the rule is
    built, then one after every step of the optimizer. Mirror batch s draws from ``(seed, s)`` alone; the count
    is the rule's saved state, so a resumed run mirrors as an uninterrupted one would.
    """

    options = (
        RuleOption("mirror_lr", float, 1e-2, "learning rate of B in the mirror phase (eta_B)", POSITIVE, (1e-3, 1e-1)),
        RuleOption("mirror_noise", float, 5e-2, "amplitude of the uniform noise that drives each layer", POSITIVE),
        RuleOption("mirror_decay", float, 1e-2, "decay of B per mirror batch", FRACTION),
        RuleOption("mirror_warmup", int, 100, "mirror batches before training", Interval(0, 2**31 - 1)),
        RuleOption("mirror_batch", int, 128, "noise samples per mirror batch (an example of K components: K)", COUNT),
    )
    mirror_lr: float
    mirror_noise: float
    mirror_decay: float
    mirror_warmup: int
    mirror_batch: int

    def __init__(self, model: Network, seed: int = 0, **options: object) -> None:
        super().__init__(model, seed, **options)
        self.seed, self.mirrored = seed, 0
        weight = model.layers[0].weight
        with torch.no_grad():
            probe = torch.zeros(1, *model.input_shape, dtype=weight.dtype, device=weight.device)
            self.input_shapes = {i: model.activation_before(probe, i).shape[1:] for i in model.weight_indices[1:]}
        for _ in range(self.mirror_warmup):
            self.mirror(model)

    def get_extra_state(self) -> torch.Tensor:
        return torch.tensor(self.mirrored)

    def set_extra_state(self, state: torch.Tensor) -> None:
        self.mirrored = int(state)

    def mirror_inputs(self, batch: int, like: torch.Tensor) -> dict[int, torch.Tensor]:
        """The noise x of mirror batch ``batch`` for every layer with a B, (ceil(mirror_batch / K), K, *input shape),
        drawn in float64 (so every dtype rounds the same draw) in ``like``'s dtype and device."""
        generator = torch.Generator(device=like.device).manual_seed(stream_seed(self.seed, MIRROR_STREAM, batch))
        drawn = {}
        for i, shape in self.input_shapes.items():
            examples = -(-self.mirror_batch // shape[0])  # shape[0] = K
            uniform = torch.rand((examples, *shape), generator=generator, dtype=torch.float64, device=like.device)
            drawn[i] = ((2 * uniform - 1) * self.mirror_noise).to(like.dtype)
        return drawn

    def mirror(self, model: Network) -> None:
        """One mirror batch: every B_l updated from its own layer's response to fresh noise."""
        readout = model.weight_indices[-1]
        for i, x in self.mirror_inputs(self.mirrored, model.layers[0].weight).items():
            layer = model.layers[i]
            with torch.enable_grad():
                h = layer(x)
            with torch.no_grad():
                y = h if i == readout else model.layers[i + 1](h)
            (correlation,) = torch.autograd.grad(h, layer.weight, y)  # sum_b y_b x_b^T, in W's layout
            with torch.no_grad():
                self.feedback(i).mul_(1 - self.mirror_decay).add_(correlation, alpha=self.mirror_lr)
        self.mirrored += 1

    def after_update(self, model: Network) -> None:
        self.mirror(model)
