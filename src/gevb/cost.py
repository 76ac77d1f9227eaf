"""What a network costs to train: matmul and convolution FLOPs of a forward pass and of a training step, and
their measured time on a device (``gevb summary``, ``benchmarks/``).

FLOPs come from ``torch.utils.flop_counter`` with formulas for the two kernels the engine calls that it does
not count: oneDNN's ``a @ w.T`` (``mkldnn._linear_pointwise``) and the LC row GEMMs' in-place ``baddbmm_``.
Elementwise work (gates, pooling, Adam) is not counted: on these networks it is memory bound, not FLOP bound.
"""

from __future__ import annotations

import copy
import json
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from gevb.build import make_optimizer
from gevb.layers.dispatch import onednn_matmul
from gevb.models import Network
from gevb.rules import make_rule, train_step


def linear_pointwise_flops(a_shape, w_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of oneDNN's ``a @ w.T``: a (M, K), w (N, K): 2 M K N."""
    return 2 * a_shape[0] * a_shape[1] * w_shape[0]


def inplace_baddbmm_flops(self_shape, batch1_shape, batch2_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of ``baddbmm_`` (the LC row GEMMs): batch1 (P, M, K), batch2 (P, K, N): 2 P M K N."""
    batch, rows, inner = batch1_shape
    return 2 * batch * rows * inner * batch2_shape[2]


def count_flops(fn: Callable[[], object]) -> int:
    """Matmul and convolution FLOPs of one call of ``fn``."""
    custom = {torch.ops.aten.baddbmm_: inplace_baddbmm_flops}
    if onednn_matmul():
        custom[torch.ops.mkldnn._linear_pointwise] = linear_pointwise_flops
    with FlopCounterMode(display=False, custom_mapping=custom) as counter:
        fn()
    return counter.get_total_flops()


def random_batch(model: Network, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs in [-1, 1] of the model's shape and labels: (B, *input_shape), (B,). Cost depends on shapes only."""
    weight = model.layers[0].weight
    x = torch.rand(batch_size, *model.input_shape, dtype=weight.dtype, device=weight.device) * 2 - 1
    return x, torch.randint(0, model.num_classes, (batch_size,), device=weight.device)


def training_step(model: Network, rule_name: str, batch_size: int) -> Callable[[], object]:
    """One ``train_step`` of ``rule_name`` with Adam on a random batch, on a copy of ``model`` (left unchanged)."""
    copied = copy.deepcopy(model)
    rule, optimizer = make_rule(rule_name, copied, seed=0), make_optimizer(copied, 1e-6)
    x, y = random_batch(copied, batch_size)
    return lambda: train_step(copied, rule, optimizer, x, y)


def forward_pass(model: Network, batch_size: int) -> Callable[[], object]:
    """Inference on a random batch (``no_grad``)."""
    x, _ = random_batch(model, batch_size)

    def forward() -> torch.Tensor:
        with torch.no_grad():
            return model(x)

    return forward


def step_flops(model: Network, rule_name: str, batch_size: int) -> dict[str, int]:
    """``forward`` and ``step`` (the rule's training step, optimizer included) FLOPs for one batch."""
    return {
        "forward": count_flops(forward_pass(model, batch_size)),
        "step": count_flops(training_step(model, rule_name, batch_size)),
    }


def median_ms(fn: Callable[[], object], calls: int, warmup: int = 2) -> float:
    """Median wall time of ``calls`` calls of ``fn`` in ms, after ``warmup`` calls (CUDA: synchronized)."""
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(calls):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times)


def step_ms(model: Network, rule_name: str, batch_size: int, calls: int = 5) -> dict[str, float]:
    """Measured ``forward`` and ``step`` time (median ms of ``calls`` after two warm-up calls) for one batch."""
    return {
        "forward": median_ms(forward_pass(model, batch_size), calls),
        "step": median_ms(training_step(model, rule_name, batch_size), calls),
    }


def peak_memory_mib(fn: Callable[[], object], device: torch.device) -> float | None:
    """Peak memory of one call of ``fn``, parameters and optimizer state included (MiB).

    CUDA: ``max_memory_allocated``. CPU: the profiler's memory timeline (None if unavailable).
    """
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / 2**20
    try:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as p:
            fn()
        with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            p.export_memory_timeline(f"{folder}/memory.json", device="cpu")
            _, sizes = json.loads(Path(f"{folder}/memory.json").read_text())
        return max(sum(categories) for categories in sizes) / 2**20
    except (AttributeError, RuntimeError, ValueError, OSError):
        return None
