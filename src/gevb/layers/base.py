"""The protocol every layer of a vectorized network follows, and the shared tensor math.

Activations carry the vector dimension K in axis 1: ``(B, K, N)`` or ``(B, K, C, H, W)``.
A conventional network is the same stack with K = 1 (docs/method.md §3).

Learning rules talk to layers through two methods (docs/method.md §5):

* ``input_credit(c, saved)``: carry a *scalar* credit per output unit back to one scalar per
  input unit (the transpose of the scalar layer), ``(B, *out) -> (B, *in)``; ``saved`` is
  what ``Trace.saved(i)`` keeps for the layer (its input; for a gate, its mask). A weight layer
  takes ``input_credit(c, saved, weight)``: the transpose of the scalar layer whose weight is
  ``weight`` (any tensor of the layer's weight shape; its own when None), so a learning rule
  chooses what travels backwards (BP: W; feedback alignment: a fixed B; sign-symmetry: sign(W))
  and no layer knows any rule.
* ``WeightLayer.set_grads(a_in, err, g)``: set ``weight.grad`` / ``bias.grad`` to the gradient
  of the scalar layer whose input is the error-contracted activity ``x~ = sum_k err_k a_in[:, k]``
  and whose output gradient is ``g``; ``bias.grad[k, m] = sum_b err[b, k] g[b, m]``.
  ``err`` already carries the 1/B of the batch mean. Each gradient has its parameter's own memory
  layout (``same_layout``): torch's fused Adam reads ``.grad`` as if it had the parameter's
  strides, so a permuted view would move weights the wrong way (docs/design.md, "Gradients").
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gevb.init import draw_weight
from gevb.layers.dispatch import use_onednn_gemm


def same_layout(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two tensors of one shape lay their elements out alike (equal strides wherever a size is > 1)."""
    return a.shape == b.shape and all(x == y for x, y, n in zip(a.stride(), b.stride(), a.shape, strict=True) if n > 1)


def matmul_nt(a: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``a @ w.T``: a (M, K), w (N, K) -> (M, N).

    Fast path (``dispatch.use_onednn_gemm``): on the CPU in fp32 without autograd, oneDNN's GEMM, which
    uses AVX-512 on CPUs where MKL's does not (BENCHMARKS.md measures both). Reference: ``a @ w.t()``
    (tests check they agree).
    """
    if use_onednn_gemm(a, w):
        return torch.ops.mkldnn._linear_pointwise(a.contiguous(), w.contiguous(), None, "none", [], "")
    return a @ w.t()


def contract(err: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Error-contracted activity ``x~[b, ...] = sum_k err[b, k] a[b, k, ...]``.

    err: (B, K); a: (B, K, *S) -> (B, *S). One ``bmm`` for contiguous a; for another layout (a
    locally connected layer's position-major output) K accumulating passes, which read a in
    place instead of making the permuted copy ``reshape`` would (docs/design.md, "Efficiency").
    """
    batch, k = err.shape
    if a.is_contiguous():
        return torch.bmm(err.view(batch, 1, k), a.view(batch, k, -1)).view(batch, *a.shape[2:])
    scale = err.view(batch, k, *[1] * (a.dim() - 2))  # any other layout: K passes, no copy of a
    out = a[:, 0] * scale[:, 0]
    for i in range(1, k):
        out.addcmul_(a[:, i], scale[:, i])
    return out


def project_components(w: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Per-unit filters (or biases) projected on the gate's t: ``sum_k t[o, k] w[..., o, k, :]``.

    w: (*P, out, K, F); t: (out, K) -> (*P, out, F). A broadcast matmul: no (*P, out, K, F) temporary.
    """
    return torch.matmul(t.unsqueeze(-2), w).squeeze(-2)


def expand_input(x: torch.Tensor, vector_dim: int) -> torch.Tensor:
    """Reference only: the materialized block-sparse expanded input (docs/method.md §2).

    x: (B, D) or (B, C, H, W) -> (B, K, K*D) or (B, K, K*C, H, W), where input (k', d) is
    ``x_d`` times the k'-th basis vector: ``out[b, k, k'*D + d] = delta(k, k') x[b, d]``.
    K times the memory and compute of the implicit first layer; used only in tests.
    """
    eye = torch.eye(vector_dim, dtype=x.dtype, device=x.device)
    spatial = x.shape[2:] if x.dim() == 4 else ()
    channels = x.shape[1]
    expanded = eye.view(1, vector_dim, vector_dim, 1, *[1] * len(spatial)) * x.unsqueeze(1).unsqueeze(1)
    return expanded.reshape(x.shape[0], vector_dim, vector_dim * channels, *spatial)


def bias_grad(err: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``sum_b err[b, k] g[b, m]``: err (B, K), g (B, *S) -> (K, *S)."""
    return (err.t() @ g.reshape(g.shape[0], -1)).view(err.shape[1], *g.shape[1:])


class WeightLayer(nn.Module):
    """A layer with scalar weights shared over the K components and a K-vector bias.

    Subclasses set ``weight``, ``bias``, ``vector_dim``, ``expand_input`` and ``fan_in`` and
    implement ``forward``, ``input_credit``, ``set_grads`` and ``block_shape``; ``flat_input``: whether it
    takes features (B, K, N) rather than feature maps (a readout does).
    """

    flat_input: bool = False
    weight: nn.Parameter
    bias: nn.Parameter
    vector_dim: int
    expand_input: bool
    fan_in: int

    @property
    def block_shape(self) -> tuple[int, int, int, int]:
        """The weight viewed as ``(P, out, in, R)`` for initialization (see ``gevb.init``)."""
        raise NotImplementedError

    def forward_projected(self, a: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(h, t . h)`` for the gate that follows, t (units, K); ``t . h`` (B, *S) or None.

        Input-expanding spatial layers override this: component k of unit i has its own filter
        ``W[i, k]``, so ``t_i . h_i = (sum_k t_ik W[i, k]) * x + t_i . b_i`` is one more filter per
        unit in the same call (1/K more work) instead of K passes over the large h. Elsewhere
        None: the gate computes ``t . h`` from h.
        """
        return self(a), None

    def input_credit(self, c: torch.Tensor, a_in: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """``weight^T c`` for the scalar layer with ``weight`` (default: ``self.weight``): (B, *out) -> (B, *in)."""
        raise NotImplementedError

    def set_grads(self, a_in: torch.Tensor, err: torch.Tensor, g: torch.Tensor) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def reset_parameters(self, sign: str, role: str, generator: torch.Generator, name: str = "layer") -> None:
        """Draw the weight for ``sign`` and ``role`` (docs/method.md §4) and zero the bias."""
        drawn = draw_weight(self.block_shape, self.fan_in, sign, role, generator, name)
        self.weight.copy_(drawn.view(self.weight.shape))
        self.bias.zero_()


def pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a convolution window sliding over ``size`` positions."""
    return (size + 2 * padding - kernel) // stride + 1


class SpatialWeightLayer(WeightLayer):
    """Geometry shared by convolution and locally connected layers (they differ in sharing)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        vector_dim: int,
        stride: int | tuple[int, int],
        padding: int | tuple[int, int],
        expand_input: bool,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = pair(kernel_size), pair(stride), pair(padding)
        self.vector_dim, self.expand_input = vector_dim, expand_input
        self.fan_in = in_channels * math.prod(self.kernel_size)

    def _expanded(self, x: torch.Tensor, t: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Input-expanding forward: h and, given t, ``t . h`` from projected filters in the same call."""
        raise NotImplementedError

    def forward_projected(self, a: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.expand_input and self.vector_dim > 1:
            return self._expanded(a, t)
        return super().forward_projected(a, t)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, vector_dim={self.vector_dim}, expand_input={self.expand_input}"
        )
