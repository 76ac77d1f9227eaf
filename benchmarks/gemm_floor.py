"""How close a training step is to its GEMM floor: every matmul and convolution of one step, replayed alone.

One step of each configuration (batch 128, random inputs of the data set's shape) runs under a dispatch
mode that records every GEMM-like op it calls (``mm``, ``addmm(_)``, ``bmm``, ``baddbmm(_)``, convolutions
and their backward, oneDNN's ``_linear_pointwise``) with its arguments' shapes, strides and storage sizes.
Each distinct call is then replayed alone on fresh random tensors laid out the same (strided windows
included), median of ``--repeats`` calls after a warm-up, and its FLOPs counted as ``gevb.cost`` counts them.
The sum is the step's GEMMs at their own shapes with warm caches: a lower bound on the time of any
implementation that makes the same GEMM calls, so FLOPs / that sum bounds the step's GFLOP/s from above.
The step itself is timed as ``step_time.py`` times it; ``rest`` is the step minus its GEMMs alone: the
elementwise passes, copies and Adam, and whatever the GEMMs lose in the step to cold caches.

``copy GB/s`` (bytes read plus written, a 256 MiB tensor copied) gives the scale of the memory-bound rest.

Usage: python benchmarks/gemm_floor.py [--datasets mnist,cifar10] [--models conv-vec,lc-vec] [--rule gevb]
           [--repeats 5] [--threads 2] [--detail 5]
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import torch
from step_time import SHAPES, matmul_gflops, median_ms
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

from gevb import build_model, keep_freed_memory
from gevb.cost import count_flops, training_step

GEMM_OPS = {
    "aten::mm",
    "aten::addmm",
    "aten::addmm_",
    "aten::bmm",
    "aten::baddbmm",
    "aten::baddbmm_",
    "aten::convolution",
    "aten::convolution_backward",
    "mkldnn::_linear_pointwise",
}


class TensorLayout(tuple):
    """(shape, stride, storage offset, storage elements, dtype) of a recorded argument."""


def layout(value):
    if not isinstance(value, torch.Tensor):
        return value
    storage = value.untyped_storage().nbytes() // value.element_size()
    return TensorLayout((tuple(value.shape), value.stride(), value.storage_offset(), storage, value.dtype))


def materialize(value, generator: torch.Generator):
    """A fresh random tensor with a recorded argument's layout (other arguments as recorded)."""
    if not isinstance(value, TensorLayout):
        return value
    shape, stride, offset, storage, dtype = value
    base = torch.randn(storage, generator=generator, dtype=dtype)
    return base.as_strided(shape, stride, offset)


class GemmRecorder(TorchDispatchMode):
    """Records ``(op, argument layouts, keyword layouts)`` of every GEMM-like op run inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func._schema.name in GEMM_OPS:
            self.calls.append((func, tree_map(layout, args), tree_map(layout, kwargs)))
        return func(*args, **kwargs)


def key(call) -> tuple:
    """Calls that differ only in where their windows start in the same storage replay alike."""
    func, args, kwargs = call

    def strip(value):
        return value[:2] + value[3:] if isinstance(value, TensorLayout) else value

    return (func, repr(tree_map(strip, args)), repr(tree_map(strip, kwargs)))


def replay(calls: list[tuple], repeats: int) -> list[tuple[str, str, int, float, int]]:
    """Per distinct call: (op, first argument shapes, calls per step, ms per call alone, FLOPs per call)."""
    groups: dict[tuple, list[tuple]] = defaultdict(list)
    for call in calls:
        groups[key(call)].append(call)
    generator = torch.Generator().manual_seed(0)
    rows = []
    for same in groups.values():
        func, args, kwargs = same[0]
        args, kwargs = tree_map(lambda v: materialize(v, generator), (args, kwargs))

        def call(func=func, args=args, kwargs=kwargs):
            return func(*args, **kwargs)

        shapes = ", ".join("x".join(map(str, a[0])) for a in same[0][1] if isinstance(a, TensorLayout))
        ms = median_ms(call, torch.device("cpu"), repeats, warmup_s=0.05)
        rows.append((func._schema.name, shapes, len(same), ms, count_flops(call)))
    return sorted(rows, key=lambda row: row[2] * row[3], reverse=True)


def copy_gbps(repeats: int) -> float:
    """Bytes read plus written per second copying a 256 MiB tensor."""
    source = torch.randn(64 << 20)
    target = torch.empty_like(source)
    ms = median_ms(lambda: target.copy_(source), torch.device("cpu"), repeats)
    return 2 * source.nbytes / ms / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="mnist,cifar10", type=lambda s: s.split(","))
    parser.add_argument("--models", default="conv-vec,lc-vec", type=lambda s: s.split(","))
    parser.add_argument("--rule", default="gevb")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--detail", type=int, default=5, help="largest GEMM groups listed per configuration")
    args = parser.parse_args()
    keep_freed_memory()
    torch.set_num_threads(args.threads)
    probe = max(matmul_gflops(torch.device("cpu"), args.repeats).values())
    print(f"{args.threads} threads; GEMM probe {probe:.0f} GFLOP/s; copy {copy_gbps(args.repeats):.0f} GB/s")
    columns = ["config", "step ms", "GEMMs alone ms", "rest ms", "GFLOP", "step: GFLOP/s, of probe"]
    columns.append("GEMMs alone: GFLOP/s, of probe")
    print("\n| " + " | ".join(columns) + " |\n" + "|---" * len(columns) + "|")
    details = []
    for dataset in args.datasets:
        for name in args.models:
            model = build_model(name, SHAPES[dataset], 10, "nonneg", seed=0)
            step = training_step(model, args.rule, 128)
            step_ms = median_ms(step, torch.device("cpu"), args.repeats)
            recorder = GemmRecorder()
            with recorder:
                step()
            rows = replay(recorder.calls, args.repeats)
            gemm_ms = sum(calls * ms for _, _, calls, ms, _ in rows)
            gflop = sum(calls * flops for _, _, calls, _, flops in rows) / 1e9
            step_rate, gemm_rate = gflop / step_ms * 1e3, gflop / gemm_ms * 1e3
            print(
                f"| {dataset}/{name} | {step_ms:.1f} | {gemm_ms:.1f} | {step_ms - gemm_ms:.1f} | {gflop:.2f} | "
                f"{step_rate:.0f}, {step_rate / probe:.0%} | {gemm_rate:.0f}, {gemm_rate / probe:.0%} |",
                flush=True,
            )
            details.append((f"{dataset}/{name}", rows[: args.detail]))
    for config, rows in details:
        print(f"\n{config}: largest GEMM groups (ms per step alone, calls, GFLOP/s)")
        for op, shapes, calls, ms, flops in rows:
            rate = flops / ms / 1e6 if ms else 0.0
            print(f"- `{op}` ({shapes}): {calls * ms:.1f} ms, {calls} calls, {rate:.0f} GFLOP/s")


if __name__ == "__main__":
    main()
