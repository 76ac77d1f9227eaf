"""Vectorized locally connected 2-d layer: a convolution without weight sharing (docs/method.md §2).

First (input-expanding) layers: patches and one batched matmul over the L = H'*W' output
positions. Other layers, where ``dispatch.use_row_gemms`` says so (the CPU, kw*C >= 32, no
autograd): kh GEMMs per output row over strided windows of the input, no patch copy
(``_row_gemms``); otherwise the reference path: patches and one batched matmul.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from gevb.layers.base import SpatialWeightLayer, contract, conv_output_size, pair, project_components
from gevb.layers.dispatch import use_row_gemms, use_tap_sums
from gevb.layers.kinds import Window, register_layer


class VecLocal2d(SpatialWeightLayer):
    """Locally connected layer on K-vector channels.

    Weight ``(L, out, F)`` with L = H'*W' positions and F = C_in*kh*kw patch features in
    ``F.unfold`` order (c, i, j); input-expanding first layer: F = K*C_in*kh*kw with feature
    index ``k*C_in*kh*kw + f`` (expanded channel k*C_in + c, as for ``VecConv2d``).
    Input ``(B, K, C_in, H, W)`` (first layer: raw ``(B, C_in, H, W)``), output
    ``(B, K, out, H', W')``, bias ``(K, out, H', W')``.
    """

    kind = "lc"

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

    def _padded_rows(self, x: torch.Tensor) -> torch.Tensor:
        """(*lead, C, H, W), any strides -> the zero-padded input laid out (H + 2ph, N, W + 2pw, C), N the product
        of ``lead`` (B or B, K), in one copy (``flatten`` of a permuted input could copy first)."""
        (ph, pw), lead = self.padding, x.shape[:-3]
        c, height, width = x.shape[-3:]
        rows = x.new_zeros(height + 2 * ph, math.prod(lead), width + 2 * pw, c)
        interior = rows[ph : ph + height, :, pw : pw + width].unflatten(1, lead)  # (H, *lead, W, C)
        m = len(lead)
        interior.copy_(x.permute(m + 1, *range(m), m + 2, m))
        return rows

    def _patches(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """(N, C, H, W), any strides -> contiguous patches (L, N, F); with ``extra`` (N, E):
        (L, N, F + E), those E columns appended at every position (ones carry the bias through the
        forward GEMM, the error the bias gradient through the update's).

        The padded input is laid out (H, N, W, C) first, so that patches are copied from it in the
        layout ``bmm`` reads, with no ``F.unfold`` and no transposing copy after it: a kernel row of a
        window is then kw*C contiguous values (twice as fast to copy as runs of C when C is small).
        Feature order: the weight's own (c, i, j) for an input-expanding layer (few channels,
        large weights, which then need no reordering), *tap-major* (i, j, c) for the others, whose
        many channels make runs of contiguous values, which copy faster than single elements.
        """
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        n, c = x.shape[:2]
        rows = self._padded_rows(x)
        windows = rows.unfold(0, kh, sh).unfold(2, kw, sw).transpose(1, 2)  # (H', W', N, C, kh, kw)
        if not self.expand_input:
            windows = windows.permute(0, 1, 2, 4, 5, 3)  # (H', W', N, kh, kw, C)
        features = kh * kw * c
        if extra is None:
            return windows.reshape(-1, n, features)
        patches = x.new_empty(*windows.shape[:3], features + extra.shape[1])
        patches[..., :features].view(windows.shape).copy_(windows)
        patches[..., features:] = extra
        return patches.view(-1, n, patches.shape[-1])

    def _tap_major(self, w: torch.Tensor, inverse: bool = False) -> torch.Tensor:
        """Weight rows (*, C*kh*kw) from unfold order (c, i, j) to tap-major (i, j, c), or back."""
        taps = math.prod(self.kernel_size)
        return w.unflatten(-1, (taps, -1) if inverse else (-1, taps)).transpose(-2, -1).flatten(-2)

    def _expanded(self, x: torch.Tensor, t: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """First layer: per position, one GEMM of the patches (with a ones column) by the K*out
        component filters (component-major, bias as a last column) and, given t, one by the out
        projected filters ``sum_k t_ok W[l, o, k]`` (their own GEMM, so that ``t . h`` comes out dense:
        the gate's mask on an out-wide block of a wider output took 4-6x longer).
        Returns h (B, K, out, H', W') as a view of position-major memory (H', W', B, K, out), the layout
        the next layer reads fastest, and ``t . h`` (B, out, H', W') of memory (H', W', B, out), or None."""
        k, out, positions, features = self.vector_dim, self.out_channels, self.weight.shape[0], self.fan_in
        weight, bias = self.weight.view(positions, out, k, features), self.bias.flatten(2).permute(2, 1, 0)
        patches = self._patches(x, x.new_ones(x.shape[0], 1))  # (L, B, F + 1)
        filters = weight.new_empty(positions, k, out, features + 1)  # written once
        filters[..., :-1] = weight.transpose(1, 2)
        filters[..., -1] = bias.transpose(1, 2)
        h = torch.bmm(patches, filters.flatten(1, 2).transpose(1, 2))  # (L, B, K * out)
        h = h.view(*self.output_size, x.shape[0], k, out).permute(2, 3, 4, 0, 1)  # (B, K, out, H', W')
        if t is None:
            return h, None
        projected = weight.new_empty(positions, out, features + 1)
        projected[..., :-1] = project_components(weight, t)
        projected[..., -1] = project_components(bias.unsqueeze(-1), t).squeeze(-1)
        projection = torch.bmm(patches, projected.transpose(1, 2))  # (L, B, out)
        return h, projection.view(*self.output_size, x.shape[0], out).permute(2, 3, 0, 1)  # (B, out, H', W')

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        """Returns (B, K, out, H', W') as a view of position-major memory (H', W', B, K, out): no
        transposing copy; elementwise ops, pooling and the next layer's patches follow it."""
        batch, k, out = a.shape[0], self.vector_dim, self.out_channels
        if self.expand_input:
            return self._expanded(a, None)[0]
        if not use_row_gemms(a, self.weight, self.kernel_size[1], self.in_channels):
            filters = self._tap_major(self.weight)  # (L, out, F)
            h = torch.bmm(self._patches(a.flatten(0, 1)), filters.transpose(1, 2))  # (L, B*K, out)
            h = h.view(*self.output_size, batch, k, out).permute(2, 3, 4, 0, 1)  # (B, K, out, H', W')
            return h.add_(self.bias)
        return self._row_gemms(a)

    def _row_gemms(self, a: torch.Tensor) -> torch.Tensor:
        """Fast path without autograd, no patch copy: (B, K, C, H, W) -> (B, K, out, H', W').

        The padded input is laid out (H, N, W, C), N = B*K, so the window of kernel row i at output
        (y, x) is an (N, kw*C) matrix with row stride W*C: a strided view, which BLAS reads in place.
        Output row y is ``bias + sum_i windows_i @ filters``, with the positions x batched in
        ``ceil(kw / sw)`` interleaved groups whose windows do not overlap (``bmm`` copies
        overlapping batches). Output memory (H', W', B, K, out), as the reference path's.
        """
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        batch, k, c = a.shape[:3]
        (rows_out, cols_out), n, out = self.output_size, batch * k, self.out_channels
        padded = self._padded_rows(a)
        filters = self.weight.view(rows_out, cols_out, out, c, kh, kw).permute(0, 4, 1, 5, 3, 2)
        filters = filters.reshape(rows_out, kh, cols_out, kw * c, out)  # (H', kh, W', kw*C, out)
        h = torch.empty(rows_out, cols_out, batch, k, out, dtype=a.dtype, device=a.device)
        h.copy_(self.bias.permute(2, 3, 0, 1).contiguous().unsqueeze(2))  # from a contiguous copy: 4x faster
        h = h.view(rows_out, cols_out, n, out)
        groups = -(-kw // sw)
        (row_stride, n_stride, _, _), offset = padded.stride(), padded.storage_offset()
        for y in range(rows_out):
            for i in range(kh):
                for first in range(min(groups, cols_out)):
                    count = len(range(first, cols_out, groups))
                    start = offset + (y * sh + i) * row_stride + first * sw * c
                    windows = padded.as_strided((count, n, kw * c), (groups * sw * c, n_stride, 1), start)
                    h[y, first::groups].baddbmm_(windows, filters[y, i, first::groups])
        return h.view(rows_out, cols_out, batch, k, out).permute(2, 3, 4, 0, 1)

    def input_credit(self, c: torch.Tensor, a_in: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Transpose of the scalar layer with ``weight`` (L, out, F) (default: the layer's own):
        (B, out, H', W') -> (B, C_in, H, W), ``F.fold`` of the per-position credits (L, B, F).

        Fast path (``dispatch.use_tap_sums``, the CPU): the credits in tap-major order, then each kernel
        tap's (H', W', B, C) block added into a zero-padded (H, W, B, C) map, kh*kw strided additions instead
        of fold's transposing copy and ``col2im`` (22 against 7.4 ms at MNIST lc-vec's second layer, 154
        against 52 at CIFAR-10's); the result is a view of that position-major memory.
        """
        weight = self.weight if weight is None else weight
        columns = c.flatten(2).permute(2, 0, 1).contiguous()  # (L, B, out)
        size, (kh, kw), (sh, sw), (ph, pw) = a_in.shape[-2:], self.kernel_size, self.stride, self.padding
        if not use_tap_sums(c):
            credit = torch.bmm(columns, weight)  # (L, B, F)
            return F.fold(credit.permute(1, 2, 0), size, self.kernel_size, padding=self.padding, stride=self.stride)
        (rows, cols), batch, channels = self.output_size, c.shape[0], weight.shape[-1] // (kh * kw)
        credit = torch.bmm(columns, self._tap_major(weight)).view(rows, cols, batch, kh, kw, channels)
        padded = c.new_zeros(size[0] + 2 * ph, size[1] + 2 * pw, batch, channels)
        for i in range(kh):
            for j in range(kw):
                padded[i : i + sh * (rows - 1) + 1 : sh, j : j + sw * (cols - 1) + 1 : sw].add_(credit[:, :, :, i, j])
        return padded[ph : ph + size[0], pw : pw + size[1]].permute(2, 3, 0, 1)

    def set_grads(self, a_in: torch.Tensor, err: torch.Tensor, g: torch.Tensor) -> None:
        """``dW[l] = g[:, :, l]^T x~_patches[l]`` per position (docs/method.md §5); g: (B, out, H', W').

        First layer: ``dW[l, o, k*F + f] = sum_b g[b, o, l] (err[b, k] x_patches[l, b, f])``.
        The bias gradient ``sum_b err[b, k] g[b, o, l]`` comes out of the same GEMM: its patches
        carry a ones column (first layer, scaled by err like the rest) or the K columns of err.
        """
        positions, out, k = self.weight.shape[0], self.out_channels, self.vector_dim
        credit = g.flatten(2).permute(2, 1, 0)  # (L, out, B), a transposed view bmm reads in place
        if self.expand_input:  # error times [patches, 1] first: one (out x B)(B x K*(F+1)) GEMM per position
            patches = self._patches(a_in, a_in.new_ones(a_in.shape[0], 1))  # (L, B, F + 1), weight order
            scaled = (err.view(1, *err.shape, 1) * patches.unsqueeze(2)).flatten(2)  # (L, B, K*(F+1))
            grad = torch.bmm(credit, scaled).view(positions, out * k, -1)
            self.weight.grad = grad[..., :-1].reshape(self.weight.shape).contiguous()
            bias = grad[..., -1]
        else:
            grad = torch.bmm(credit, self._patches(contract(err, a_in), err))  # (L, out, F + K) tap-major
            self.weight.grad = self._tap_major(grad[..., :-k], inverse=True).contiguous()
            bias = grad[..., -k:]
        self.bias.grad = bias.reshape(positions, out, k).permute(2, 1, 0).contiguous().view(self.bias.shape)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, input_size={self.input_size}"


@register_layer
@dataclass(frozen=True)
class Local(Window):
    """Locally connected (a convolution without weight sharing)."""

    op: ClassVar[str] = "local"

    def build(self, shape, k, expand, vectorized, factory):
        geometry = (self.kernel, shape[1:], k, self.stride, self.padding, expand)
        layer = VecLocal2d(shape[0], self.width, *geometry, **factory)
        return layer, (self.width, *layer.output_size)
