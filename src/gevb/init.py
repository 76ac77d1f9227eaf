"""Weight initialization for both sign regimes (docs/method.md §4).

Every weight layer presents its weight as a 4-d block view ``(P, out, in, R)``:
P independent positions (1, or H'*W' for a locally connected layer), ``out`` output
units/channels, ``in`` input units/channels (``K*C_in`` for an input-expanding first
layer) and R kernel taps. Pairing acts on the ``out`` and ``in`` axes.
All draws are float64 on the CPU from an explicit generator, so a seed gives the same
network for every dtype and device.
"""

from __future__ import annotations

import math

import numpy as np
import torch

SIGNS = ("nonneg", "mixed")
ROLES = ("first", "hidden", "readout", "paired-readout")


def interleave(even: torch.Tensor, odd: torch.Tensor, dim: int) -> torch.Tensor:
    """Interleave two equal tensors along ``dim``: ``out[2m] = even[m]``, ``out[2m+1] = odd[m]``."""
    return torch.stack((even, odd), dim=dim + 1).flatten(dim, dim + 1)


def alternating_signs(n: int) -> torch.Tensor:
    """The conventional gate's signs ``s = -1, +1, -1, ...`` as a ``(n, 1)`` tensor (docs/method.md §3)."""
    return interleave(-torch.ones(n // 2 + 1, 1), torch.ones(n // 2 + 1, 1), 0)[:n]


def paired_t_vectors(n: int, vector_dim: int, generator: torch.Generator) -> torch.Tensor:
    """Random gate vectors ``t`` in {-1,+1}^K, shape ``(n, K)``; unit 2m+1 gets ``-t[2m]`` (docs/method.md §2)."""
    half = torch.randint(0, 2, ((n + 1) // 2, vector_dim), generator=generator, dtype=torch.float64) * 2 - 1
    return interleave(half, -half, 0)[:n]


def draw_weight(
    block_shape: tuple[int, int, int, int],
    fan_in: int,
    sign: str,
    role: str,
    generator: torch.Generator,
    name: str = "layer",
) -> torch.Tensor:
    """Draw a weight in block view ``(P, out, in, R)`` (float64, CPU).

    ``mixed``: He normal, std = 1/sqrt(f * fan_in), f = 1 for the first layer, 0.5 later.
    ``nonneg`` (ON/OFF): first layer ``W[2m] = V_m, W[2m+1] = -V_m`` with V ~ N(0, 1/fan_in);
    later layers ``W[2m,2n] = W[2m+1,2n+1] = relu(M)``, ``W[2m,2n+1] = W[2m+1,2n] = relu(-M)``
    with M ~ N(0, 4/fan_in) of shape ``(out/2, in/2)``. ``readout`` (a VNN's one unit): unpaired
    rows, ``out`` rows of M. ``paired-readout`` (a conventional network's class rows, as published):
    rows paired like a hidden layer's; with an odd count the last row is drawn as an unpaired one.
    """
    if sign not in SIGNS:
        raise ValueError(f"unknown sign regime {sign!r}; use one of {', '.join(SIGNS)}")
    if role not in ROLES:
        raise ValueError(f"unknown layer role {role!r}; use one of {', '.join(ROLES)}")
    positions, out, inp, taps = block_shape
    if sign == "mixed":
        f = 1.0 if role == "first" else 0.5
        std = 1.0 / math.sqrt(f * fan_in)
        return torch.randn(block_shape, generator=generator, dtype=torch.float64) * std
    if role == "paired-readout":
        paired = (positions, out - out % 2, inp, taps)
        rows = [draw_weight(paired, fan_in, sign, "hidden", generator, name)]
        if out % 2:
            rows.append(draw_weight((positions, 1, inp, taps), fan_in, sign, "readout", generator, name))
        return torch.cat(rows, 1)
    if role != "readout" and out % 2:
        raise ValueError(
            f"{name} has {out} output units/channels, but sign='nonneg' pairs them (ON/OFF); "
            "use an even width or sign='mixed'"
        )
    if role == "first":
        v = torch.randn((positions, out // 2, inp, taps), generator=generator, dtype=torch.float64)
        v = v / math.sqrt(fan_in)
        return interleave(v, -v, 1)
    if inp % 2:
        raise ValueError(
            f"{name} has {inp} input units/channels, but sign='nonneg' pairs them (ON/OFF); "
            "use an even width in the layer before it or sign='mixed'"
        )
    rows = out if role == "readout" else out // 2
    m = torch.randn((positions, rows, inp // 2, taps), generator=generator, dtype=torch.float64)
    m = m * (2.0 / math.sqrt(fan_in))
    on, off = m.clamp(min=0), (-m).clamp(min=0)
    if role == "readout":
        return interleave(on, off, 2)
    return interleave(interleave(on, off, 2), interleave(off, on, 2), 1)


def stream_seed(seed: int, stream: int, *more: int) -> int:
    """A 63-bit seed for random stream ``stream`` of a run seeded ``seed`` (and ``more``, e.g. a step):
    independent of the model's own draws, which use ``seed`` itself."""
    return int(np.random.SeedSequence([seed, stream, *more]).generate_state(2, np.uint64)[0] >> np.uint64(1))
