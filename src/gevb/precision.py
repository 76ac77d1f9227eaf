"""Numerical precision of a run (``--precision``): fp32, tf32 or bf16, set for the run and restored after.

- ``fp32``: float32 everywhere; on CUDA TF32 is switched off for matmuls and cuDNN convolutions
  (torch lets cuDNN use TF32 by default).
- ``tf32``: float32 tensors, with TF32 tensor-core matmuls and convolutions allowed (CUDA; the CPU
  has no TF32, so there it computes as fp32).
- ``bf16``: the forward pass runs under ``torch.autocast(dtype=bfloat16)`` without its cast cache (the
  block spans many steps, each changing the weights in place); parameters, gradients and optimizer
  state stay float32. The trace a rule reads is converted back to float32
  (``fp32_trace``), so the rule's update arithmetic is fp32 on the bf16 forward's activations.

Every setting is process-wide in torch, so ``precision`` restores what it found (importing gevb
changes nothing; training in a precision changes it only while it trains).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch

from gevb.models.network import Trace

PRECISIONS = ("fp32", "tf32", "bf16")


@contextmanager
def precision(kind: str, device: torch.device) -> Iterator[None]:
    """Compute in ``kind`` (``PRECISIONS``) on ``device`` inside the block."""
    if kind not in PRECISIONS:
        raise ValueError(f"unknown precision {kind!r}; use one of {', '.join(PRECISIONS)}")
    saved = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision("high" if kind == "tf32" else "highest")
    torch.backends.cudnn.allow_tf32 = kind == "tf32"
    # no cast cache: it keys bf16 weight copies by tensor, and the block spans steps whose optimizer
    # changes the weights in place, so a cached copy would hand later forwards the old weights
    bf16 = kind == "bf16"
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False) if bf16 else nullcontext()
    try:
        with autocast:
            yield
    finally:
        torch.set_float32_matmul_precision(saved[0])
        torch.backends.cudnn.allow_tf32 = saved[1]


def fp32_trace(output: Trace, dtype: torch.dtype) -> Trace:
    """A trace with every tensor in ``dtype`` (the parameters'): bf16 activations of an autocast forward
    pass, converted for the rule's fp32 update; a trace already in ``dtype`` is returned as it is."""

    def cast(tensor: torch.Tensor | None) -> torch.Tensor | None:
        return tensor if tensor is None or not tensor.is_floating_point() else tensor.to(dtype)

    tensors = [output.logits, *output.inputs, *output.masks.values()]
    if all(t is None or t.dtype == dtype or not t.is_floating_point() for t in tensors):
        return output
    return Trace(cast(output.logits), [cast(a) for a in output.inputs], {i: cast(m) for i, m in output.masks.items()})
