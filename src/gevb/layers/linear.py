"""Vectorized fully connected layer (docs/method.md §2): ``h_i = sum_j W_ij a_j + b_i``, b_i a K-vector."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from gevb.layers.base import WeightLayer, bias_grad, contract, matmul_nt
from gevb.layers.kinds import LayerSpec, register_layer


class VecLinear(WeightLayer):
    """Linear layer on K-vector units.

    Plain: weight ``(out, in)``, input ``(B, K, in)``.
    Input-expanding first layer (``expand_input=True``): weight ``(out, K, in)``, raw input
    ``(B, in)``, ``h[b, k, i] = sum_d W[i, k, d] x[b, d] + b[k, i]`` (the expansion is implicit).
    Output ``(B, K, out)``; bias ``(K, out)``. With K = 1 this is an ordinary linear layer.
    """

    kind = "fc"
    flat_input = True

    def __init__(
        self,
        in_features: int,
        out_features: int,
        vector_dim: int,
        expand_input: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.in_features, self.out_features = in_features, out_features
        self.vector_dim, self.expand_input = vector_dim, expand_input
        self.fan_in = in_features
        shape = (out_features, vector_dim, in_features) if expand_input else (out_features, in_features)
        self.weight = nn.Parameter(torch.empty(shape, **factory))
        self.bias = nn.Parameter(torch.zeros(vector_dim, out_features, **factory))

    @property
    def block_shape(self) -> tuple[int, int, int, int]:
        width = self.vector_dim * self.in_features if self.expand_input else self.in_features
        return (1, self.out_features, width, 1)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        batch = a.shape[0]
        if self.expand_input:
            h = matmul_nt(a, self.weight.view(-1, self.in_features))  # (B, out*K)
            h = h.view(batch, self.out_features, self.vector_dim).transpose(1, 2)  # (B, K, out)
        else:
            h = matmul_nt(a.reshape(-1, self.in_features), self.weight)  # (B*K, out)
            h = h.view(batch, -1, self.out_features)  # (B, K, out)
        return h + self.bias

    def input_credit(self, c: torch.Tensor, a_in: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """``W^T c``: (B, out) -> (B, in), W = ``weight`` (default: the layer's own, (out, in))."""
        return c @ (self.weight if weight is None else weight)

    def set_grads(self, a_in: torch.Tensor, err: torch.Tensor, g: torch.Tensor) -> None:
        """``dW = g^T x~``; first layer ``dW[i, k, d] = sum_b g[b, i] err[b, k] x[b, d]`` (docs/method.md §5).

        a_in: (B, K, in) or raw (B, in); err: (B, K); g: (B, out).
        """
        if self.expand_input:  # credit built transposed, (out*K, B), so the GEMM reads it without a copy
            credit = g.t().contiguous().unsqueeze(1) * err.t().contiguous().unsqueeze(0)  # (out, K, B)
            self.weight.grad = matmul_nt(credit.view(-1, g.shape[0]), a_in.t()).view(self.weight.shape)
        else:
            self.weight.grad = matmul_nt(g.t(), contract(err, a_in).t())
        self.bias.grad = bias_grad(err, g)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"vector_dim={self.vector_dim}, expand_input={self.expand_input}"
        )


@register_layer
@dataclass(frozen=True)
class Linear(LayerSpec):
    """Fully connected: ``width`` vector units (after a ``flatten``, or on the raw input if first)."""

    width: int
    op: ClassVar[str] = "linear"
    weighted: ClassVar[bool] = True
    flat: ClassVar[bool] = True

    def build(self, shape, k, expand, vectorized, factory):
        return VecLinear(shape[0], self.width, k, expand, **factory), (self.width,)
