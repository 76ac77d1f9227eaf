"""Vectorized locally connected 2-d layer: a convolution without weight sharing (SPEC §2).

Implemented as unfold + one batched matmul over the L = H'*W' output positions; no Python
loop over positions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gevb.layers.base import SpatialWeightLayer, bias_grad, contract, conv_output_size, pair


class VecLocal2d(SpatialWeightLayer):
    """Locally connected layer on K-vector channels.

    Weight ``(L, out, F)`` with L = H'*W' positions and F = C_in*kh*kw patch features in
    ``F.unfold`` order (c, i, j); input-expanding first layer: F = K*C_in*kh*kw with feature
    index ``k*C_in*kh*kw + f`` (expanded channel k*C_in + c, as for ``VecConv2d``).
    Input ``(B, K, C_in, H, W)`` (first layer: raw ``(B, C_in, H, W)``), output
    ``(B, K, out, H', W')``, bias ``(K, out, H', W')``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        input_size: int | tuple[int, int],
        vector_dim: int,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        expand_input: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, vector_dim, stride, padding, expand_input)
        factory = {"device": device, "dtype": dtype}
        self.input_size = pair(input_size)
        self.output_size = tuple(map(conv_output_size, self.input_size, self.kernel_size, self.stride, self.padding))
        if min(self.output_size) < 1:
            raise ValueError(
                f"VecLocal2d: input {self.input_size} is smaller than kernel {self.kernel_size}; "
                "use a larger input or a smaller kernel"
            )
        features = self.fan_in * (vector_dim if expand_input else 1)
        positions = math.prod(self.output_size)
        self.weight = nn.Parameter(torch.empty(positions, out_channels, features, **factory))
        self.bias = nn.Parameter(torch.zeros(vector_dim, out_channels, *self.output_size, **factory))

    @property
    def block_shape(self) -> tuple[int, int, int, int]:
        taps = math.prod(self.kernel_size)
        positions, out, features = self.weight.shape
        return (positions, out, features // taps, taps)

    def _unfold(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> patches (L, N, F)."""
        patches = F.unfold(x, self.kernel_size, padding=self.padding, stride=self.stride)  # (N, F, L)
        return patches.permute(2, 0, 1)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        batch, k, out = a.shape[0], self.vector_dim, self.out_channels
        if self.expand_input:
            filters = self.weight.view(-1, out * k, self.fan_in).transpose(1, 2)  # (L, F, out*K)
            h = torch.bmm(self._unfold(a), filters)  # (L, B, out*K)
            h = h.view(-1, batch, out, k).permute(1, 3, 2, 0)  # (B, K, out, L)
        else:
            h = torch.bmm(self._unfold(a.flatten(0, 1)), self.weight.transpose(1, 2))  # (L, B*K, out)
            h = h.view(-1, batch, k, out).permute(1, 2, 3, 0)  # (B, K, out, L)
        return h.reshape(batch, k, out, *self.output_size) + self.bias

    def input_credit(self, c: torch.Tensor, a_in: torch.Tensor) -> torch.Tensor:
        """Transpose of the scalar layer: (B, out, H', W') -> (B, C_in, H, W)."""
        credit = torch.bmm(c.flatten(2).permute(2, 0, 1), self.weight)  # (L, B, F)
        return F.fold(
            credit.permute(1, 2, 0), a_in.shape[-2:], self.kernel_size, padding=self.padding, stride=self.stride
        )

    def set_grads(self, a_in: torch.Tensor, err: torch.Tensor, g: torch.Tensor) -> None:
        """``dW[l] = g[:, :, l]^T x~_patches[l]`` per position (SPEC §5); g: (B, out, H', W').

        First layer: ``dW[l, o, k*F + f] = sum_b g[b, o, l] err[b, k] x_patches[l, b, f]``.
        """
        credit = g.flatten(2).permute(2, 1, 0)  # (L, out, B)
        if self.expand_input:
            credit = credit.unsqueeze(2) * err.t()  # (L, out, K, B)
            grad = torch.bmm(credit.flatten(1, 2), self._unfold(a_in))  # (L, out*K, F)
            self.weight.grad = grad.view(self.weight.shape)
        else:
            self.weight.grad = torch.bmm(credit, self._unfold(contract(err, a_in)))
        self.bias.grad = bias_grad(err, g)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, input_size={self.input_size}"
