"""The t-gated ReLU (docs/method.md §2) and its K = 1 form, the conventional alternating-sign gate (§3)."""

from __future__ import annotations

import torch
from torch import nn

from gevb.init import alternating_signs, paired_t_vectors


def gate_mask(h: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``G = 1[t . h >= 0]`` per unit: h (B, K, N) or (B, K, C, H, W), t (N or C, K) -> (B, *S) in h's dtype.

    ``t . h`` accumulates one component at a time, so no (B, K, *S) temporary is allocated. Each pass
    multiplies by a contiguous row of ``t^T``: a column of t (stride K) cannot be read in vector loads,
    which made the passes over a locally connected layer's position-major h 3-4x slower.
    """
    shape = (1, t.shape[0], *[1] * (h.dim() - 3))
    rows = t.t().contiguous()  # (K, N or C)
    projection = h[:, 0] * rows[0].view(shape)  # (B, *S)
    for k in range(1, t.shape[1]):
        projection.addcmul_(h[:, k], rows[k].view(shape))
    return (projection >= 0).to(h.dtype)


class TGate(nn.Module):
    """``a_i = G_i h_i`` with ``G_i = 1[t_i . h_i >= 0]``; t is per unit (per channel for maps).

    ``t`` (units, K) is a fixed buffer: saved in ``state_dict`` and never trained. Derivatives
    treat G as constant, so the scalar credit passes as ``c * G``; a ``Trace`` keeps G, not h.
    """

    kind = "gate"

    def __init__(self, units: int, vector_dim: int, device=None, dtype=None) -> None:
        super().__init__()
        self.register_buffer("t", torch.empty(units, vector_dim, device=device, dtype=dtype))

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator) -> None:
        """K > 1: random paired t vectors (docs/method.md §2); K = 1: the signs -1, +1, -1, ... (docs/method.md §3)."""
        units, k = self.t.shape
        t = alternating_signs(units) if k == 1 else paired_t_vectors(units, k, generator)
        self.t.copy_(t)

    def mask(self, h: torch.Tensor) -> torch.Tensor:
        """The gate G: (B, K, *S) -> (B, *S)."""
        return gate_mask(h, self.t)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h * self.mask(h).unsqueeze(1)

    def gate_(self, h: torch.Tensor, projection: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """In-place forward for a network's own intermediate h: returns ``(h *= G, G)``.

        ``projection``: ``t . h`` (B, *S) if the layer before computed it already
        (``WeightLayer.forward_projected``); otherwise it is computed from h.
        """
        mask = self.mask(h) if projection is None else (projection >= 0).to(h.dtype)
        return h.mul_(mask.unsqueeze(1)), mask

    def input_credit(self, c: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``c * G``: (B, *S) -> (B, *S); ``mask`` is G as the trace saved it."""
        return c * mask

    def extra_repr(self) -> str:
        units, k = self.t.shape
        return f"units={units}, vector_dim={k}"
