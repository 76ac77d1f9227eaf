"""A network: a stack of layers ending in a readout, vectorized (K = classes) or conventional (K = 1)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from gevb.init import SIGNS
from gevb.layers import TGate, WeightLayer
from gevb.models.specs import ArchitectureSpec


@dataclass
class Trace:
    """What one forward pass leaves for a learning rule.

    logits: (B, num_classes); inputs[i]: the input of ``layers[i]`` (inputs[0] is the first
    layer's input: the raw batch for a vectorized network, ``(B, 1, ...)`` for a conventional
    one), None for gates, which gate in place; masks[i]: gate i's G (B, *S). ``plain``: every gate
    computed ``t . h`` from h (no layer handed it a projection), as ``Network.perturbed_logits`` does, so
    the logits are those of a perturbed pass without noise (node perturbation's clean pass).
    """

    logits: torch.Tensor
    inputs: list[torch.Tensor | None]
    masks: dict[int, torch.Tensor]
    plain: bool = False

    def saved(self, i: int) -> torch.Tensor:
        """What ``layers[i].input_credit`` needs: its input, or a gate's mask."""
        return self.masks[i] if i in self.masks else self.inputs[i]


class Network(nn.Module):
    """``[weight layer, TGate, (pooling | flatten)*]* -> readout`` (docs/method.md §2, §3).

    Every weight layer but the last is followed by a gate; the last is the readout, one vector
    unit (vectorized, K = num_classes) or ``num_classes`` scalar units (conventional, K = 1).
    ``sign='nonneg'`` keeps every weight past the first layer >= 0 via ``apply_constraint``.
    """

    def __init__(
        self,
        layers: list[nn.Module],
        input_shape: tuple[int, ...],
        num_classes: int,
        vectorized: bool,
        sign: str,
        name: str = "network",
        spec: ArchitectureSpec | None = None,
    ) -> None:
        super().__init__()
        if sign not in SIGNS:
            raise ValueError(f"unknown sign regime {sign!r}; use one of {', '.join(SIGNS)}")
        self.layers = nn.ModuleList(layers)
        self.input_shape, self.num_classes = tuple(input_shape), num_classes
        self.vectorized, self.sign, self.name = vectorized, sign, name
        self.spec = spec  # the ArchitectureSpec it was built from (gevb.models.specs), if any
        self.weight_indices = [i for i, layer in enumerate(layers) if isinstance(layer, WeightLayer)]
        self.gate_indices = [i + 1 for i in self.weight_indices[:-1]]  # the TGate after each hidden weight layer
        self._check_structure()

    def _check_structure(self) -> None:
        readout = self.layers[-1]
        if not getattr(readout, "flat_input", False) or self.weight_indices[-1] != len(self.layers) - 1:
            raise ValueError(f"{self.name}: the last layer must be the readout, a weight layer on features")
        for i in self.weight_indices[:-1]:
            if not isinstance(self.layers[i + 1], TGate):
                raise ValueError(f"{self.name}: layers.{i} is a weight layer not followed by a TGate")

    def extra_repr(self) -> str:
        kind = "vectorized" if self.vectorized else "conventional"
        shape = f"input_shape={self.input_shape}, num_classes={self.num_classes}"
        return f"name={self.name!r}, {kind}, {shape}, sign={self.sign!r}"

    @property
    def weight_layers(self) -> list[WeightLayer]:
        return [self.layers[i] for i in self.weight_indices]

    @property
    def flat_input(self) -> bool:
        return getattr(self.layers[0], "flat_input", False)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Check the raw batch and shape it for the first layer."""
        shapes = [self.input_shape] + ([(math.prod(self.input_shape),)] if self.flat_input else [])
        if x.dim() < 2 or tuple(x.shape[1:]) not in shapes:
            wanted = " or ".join(f"(B, {', '.join(map(str, s))})" for s in shapes)
            raise ValueError(
                f"{self.name} expects input of shape {wanted}, got {tuple(x.shape)}; "
                "reshape the batch or build the model with this input_shape"
            )
        dtype = self.layers[0].weight.dtype
        if x.dtype != dtype:
            raise ValueError(f"{self.name} has {dtype} weights but got a {x.dtype} input; convert with x.to({dtype})")
        if self.flat_input:
            x = x.flatten(1)
        return x if self.vectorized else x.unsqueeze(1)

    def _logits(self, out: torch.Tensor) -> torch.Tensor:
        """Readout output (B, K, n_out) -> logits (B, num_classes)."""
        return out[:, :, 0] if self.vectorized else out[:, 0, :]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, *input_shape) -> logits (B, num_classes)."""
        return self._logits(self._run(self._prepare(x))[0])

    def activation_before(self, x: torch.Tensor, index: int) -> torch.Tensor:
        """The input of ``layers[index]`` for the batch x: (B, *input_shape), e.g. (B, K, C, H, W)."""
        return self._run(self._prepare(x), stop=index)[0]

    def trace(self, x: torch.Tensor) -> Trace:
        """Forward pass that keeps every layer's input and every gate's mask for a learning rule.

        Gates act in place on their input, a fresh output of the layer before them.
        """
        a, inputs, masks, projected = self._run(self._prepare(x), keep_inputs=True)
        return Trace(self._logits(a), inputs, masks, plain=not projected)

    def perturbed_logits(self, prepared: torch.Tensor, noise: dict[int, torch.Tensor]) -> torch.Tensor:
        """Logits of a forward pass with ``noise[i]`` added to the output h of weight layer i, before its gate.

        ``prepared``: the first layer's input as a trace keeps it (``Trace.inputs[0]``); noise[i] has
        h's shape (B, K, *S). The gates act on the perturbed h (node perturbation, docs/rules.md).
        """
        return self._logits(self._run(prepared, perturb=noise)[0])

    def _run(
        self,
        a: torch.Tensor,
        stop: int | None = None,
        keep_inputs: bool = False,
        perturb: dict[int, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor | None], dict[int, torch.Tensor], bool]:
        """Run ``layers[:stop]`` on the prepared batch a; returns (output, layer inputs, gate masks, whether a
        gate took ``t . h`` from the layer before).

        A weight layer followed by a gate also hands the gate ``t . h`` when it computes it cheaper
        than the gate would (``WeightLayer.forward_projected``). Inputs are kept only if asked;
        ``perturb[i]`` is added to the output of layer i.
        """
        inputs: list[torch.Tensor | None] = []
        masks: dict[int, torch.Tensor] = {}
        projection, projected = None, False
        for i, layer in enumerate(self.layers[:stop]):
            if keep_inputs:
                inputs.append(None if isinstance(layer, TGate) else a)
            if isinstance(layer, TGate):
                projected |= projection is not None
                a, masks[i] = layer.gate_(a, projection)
            elif isinstance(layer, WeightLayer) and i + 1 < len(self.layers):
                a, projection = layer.forward_projected(a, self.layers[i + 1].t)
            else:
                a = layer(a)
            if perturb is not None and i in perturb:
                a, projection = a + perturb[i], None
        return a, inputs, masks, projected

    def split_error(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Split the output error e = dL/dy (B, num_classes) between the two factors of docs/method.md §5.

        Returns ``(err, c)``: err (B, K), contracted with every layer's input and carrying the 1/B
        of the batch mean; c (B, n_out), the credit at the readout's scalar output.
        Vectorized: ``(e / B, 1)``; conventional: ``(1 / B, e)``.
        """
        batch = e.shape[0]
        ones = torch.ones(batch, 1, dtype=e.dtype, device=e.device)
        return (e / batch, ones) if self.vectorized else (ones / batch, e)

    @torch.no_grad()
    def hidden_shapes(self) -> list[tuple[int, ...]]:
        """Per-example scalar shape of each hidden weight layer's output, e.g. [(1024,), (64, 14, 14)]."""
        weight = self.layers[0].weight
        probe = torch.zeros(1, *self.input_shape, dtype=weight.dtype, device=weight.device)
        masks = self.trace(probe).masks
        return [tuple(masks[i].shape[1:]) for i in self.gate_indices]

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Draw all weights and gate vectors from ``generator`` in layer order (docs/method.md §4).

        A conventional network's readout rows are ON/OFF-paired like a hidden layer's, as published (docs/method.md §3).
        """
        first, readout = self.weight_indices[0], self.weight_indices[-1]
        roles = {first: "first", readout: "readout" if self.vectorized else "paired-readout"}
        for i, layer in enumerate(self.layers):
            if isinstance(layer, WeightLayer):
                role = roles.get(i, "hidden")
                layer.reset_parameters(self.sign, role, generator, f"{self.name} layers.{i} ({type(layer).__name__})")
            elif isinstance(layer, TGate):
                layer.reset_parameters(generator)

    @torch.no_grad()
    def apply_constraint(self) -> None:
        """``nonneg``: clamp every weight past the first layer to >= 0 (call after each optimizer step)."""
        if self.sign == "nonneg":
            for layer in self.weight_layers[1:]:
                layer.weight.clamp_(min=0)
