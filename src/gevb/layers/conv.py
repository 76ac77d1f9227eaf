"""Vectorized 2-d convolution (docs/method.md §2): the scalar convolution applied to each of the K components."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from gevb.layers.base import SpatialWeightLayer, bias_grad, contract, conv_output_size, project_components
from gevb.layers.dispatch import use_conv_gemm
from gevb.layers.kinds import Window, register_layer


class VecConv2d(SpatialWeightLayer):
    """Convolution on K-vector channels.

    Plain: weight ``(out, C_in, kh, kw)``, input ``(B, K, C_in, H, W)``.
    Input-expanding first layer: weight ``(out, K*C_in, kh, kw)`` (expanded channel k*C_in + c),
    raw input ``(B, C_in, H, W)``; component k of the output is the convolution of x with the
    filters ``W[:, k*C_in:(k+1)*C_in]``, computed as one convolution with K*out filters.
    Output ``(B, K, out, H', W')``; bias ``(K, out)``.
    """

    kind = "conv"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        vector_dim: int,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        expand_input: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, vector_dim, stride, padding, expand_input)
        factory = {"device": device, "dtype": dtype}
        width = vector_dim * in_channels if expand_input else in_channels
        self.weight = nn.Parameter(torch.empty(out_channels, width, *self.kernel_size, **factory))
        self.bias = nn.Parameter(torch.zeros(vector_dim, out_channels, **factory))

    @property
    def block_shape(self) -> tuple[int, int, int, int]:
        _, width, kh, kw = self.weight.shape
        return (1, self.out_channels, width, kh * kw)

    def _component_filters(self) -> torch.Tensor:
        """First layer's filters as one bank ``(K*out, C_in, kh, kw)``, component-major."""
        k, out = self.vector_dim, self.out_channels
        w = self.weight.view(out, k, self.in_channels, *self.kernel_size)
        return w.transpose(0, 1).reshape(k * out, self.in_channels, *self.kernel_size)

    def _expanded(self, x: torch.Tensor, t: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """First layer: one convolution with the K*out component filters (bias (K, out) flattens to
        their component-major order), plus, given t, the out projected filters ``sum_k t_ok W[o, k]``.
        Returns h (B, K, out, H', W') and ``t . h`` (B, out, H', W') or None."""
        k, out = self.vector_dim, self.out_channels
        filters, bias = self._component_filters(), self.bias.flatten()
        if t is not None:
            projected = project_components(self.weight.view(out, k, -1), t)
            filters = torch.cat([filters.view(k, out, -1), projected.view(1, out, -1)]).view(-1, *filters.shape[1:])
            bias = torch.cat([self.bias, project_components(self.bias.t().unsqueeze(-1), t).t()]).flatten()
        h = self._convolve(x, filters, bias).unflatten(1, (-1, out))  # (B, K[+1], out, H', W')
        return h[:, :k], None if t is None else h[:, k]

    def _convolve(self, x: torch.Tensor, filters: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """``F.conv2d(x, filters, bias)``: (B, C_in, H, W) -> (B, N, H', W'). Fast path (``dispatch.use_conv_gemm``,
        thin filters on the CPU): one GEMM of the filters, bias as a last column, by the unfolded patches with
        a ones row; the output has the convolution's layout."""
        if not use_conv_gemm(x, filters):
            return F.conv2d(x, filters, bias, self.stride, self.padding)
        batch, n = x.shape[0], filters.shape[0]
        patches = F.unfold(x, self.kernel_size, padding=self.padding, stride=self.stride)  # (B, F, L)
        rows = patches.new_empty(batch, patches.shape[1] + 1, patches.shape[2])
        rows[:, :-1], rows[:, -1] = patches, 1
        h = torch.matmul(torch.cat([filters.view(n, -1), bias.view(n, 1)], 1), rows)  # (B, N, L)
        geometry = zip(x.shape[-2:], self.kernel_size, self.stride, self.padding, strict=True)
        return h.view(batch, n, *[conv_output_size(*sizes) for sizes in geometry])

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        batch, k = a.shape[0], self.vector_dim
        if self.expand_input:
            return self._expanded(a, None)[0]
        h = F.conv2d(a.flatten(0, 1), self.weight, stride=self.stride, padding=self.padding)
        h = h.view(batch, k, self.out_channels, *h.shape[-2:])  # (B, K, out, H', W')
        return h.add_(self.bias.view(1, k, self.out_channels, 1, 1))

    def input_credit(self, c: torch.Tensor, a_in: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Transposed convolution with ``weight`` (default: the layer's own): (B, out, H', W') -> (B, C_in, H, W)."""
        shape = (a_in.shape[0], *a_in.shape[2:])
        weight = self.weight if weight is None else weight
        return torch.nn.grad.conv2d_input(shape, weight, c, stride=self.stride, padding=self.padding)

    def set_grads(self, a_in: torch.Tensor, err: torch.Tensor, g: torch.Tensor) -> None:
        """Conv weight gradient of ``x~`` and ``g`` (docs/method.md §5); g: (B, out, H', W').

        First layer: ``dW[o, k, f] = sum_b err[b, k] P[b, o, f]`` with the per-example scalar
        weight gradient ``P[b] = g[b] @ unfold(x[b])^T`` (K times cheaper than convolving the
        error-expanded input).
        """
        if self.expand_input:
            batch = g.shape[0]
            patches = F.unfold(a_in, self.kernel_size, padding=self.padding, stride=self.stride)  # (B, F, L)
            per_example = torch.bmm(g.reshape(batch, self.out_channels, -1), patches.transpose(1, 2))  # (B, out, F)
            grad = err.t() @ per_example.reshape(batch, -1)  # (K, out*F)
            grad = grad.view(self.vector_dim, self.out_channels, -1).transpose(0, 1)  # (out, K, F)
            self.weight.grad = grad.contiguous().view(self.weight.shape)
        else:
            self.weight.grad = torch.nn.grad.conv2d_weight(
                contract(err, a_in), self.weight.shape, g, stride=self.stride, padding=self.padding
            )
        self.bias.grad = bias_grad(err, g.sum((2, 3)))


@register_layer
@dataclass(frozen=True)
class Conv(Window):
    """Convolution (the window's weights shared over positions)."""

    op: ClassVar[str] = "conv"

    def build(self, shape, k, expand, vectorized, factory):
        layer = VecConv2d(shape[0], self.width, self.kernel, k, self.stride, self.padding, expand, **factory)
        sizes = [conv_output_size(size, self.kernel, self.stride, self.padding) for size in shape[1:]]
        return layer, (self.width, *sizes)
