"""Training-step time of every vectorized architecture, side by side with its references.

For each of the paper's vectorized networks (fc-vec, conv-vec, lc-vec) at MNIST and CIFAR-10
input shapes, in one process: the forward pass; the GEVB, fast-BP and autograd-BP training
steps (forward, the rule's gradients, fused Adam, clamp: ``gevb.train_step``); the forward pass
with the materialized expanded input; the conventional network's forward, BP and DFA steps.
Also FLOPs per step (matmul / convolution FLOPs, ``torch.utils.flop_counter``), achieved
GFLOP/s against this machine's dense fp32 matmul GFLOP/s measured in the same run, and peak
memory. Timing depends only on shapes, so inputs are random; no accuracy is measured here.

Usage: python benchmarks/step_time.py [--json] [--device cpu|cuda] [--repeats 10]
                                      [--datasets mnist,cifar10] [--models fc-vec,conv-vec,lc-vec]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from gevb import build_model, keep_freed_memory, make_rule, train_step
from gevb.build import make_optimizer
from gevb.cost import count_flops, peak_memory_mib
from gevb.data.registry import definition
from gevb.layers import VecConv2d, VecLinear, VecLocal2d, expand_input
from gevb.layers.base import matmul_nt
from gevb.layers.dispatch import onednn_matmul
from gevb.models.architectures import counterpart
from gevb.provenance import provenance

# the paper's two data sets' input shapes, from their definitions (no data is read)
SHAPES = {name: definition(name).input_shape for name in ("mnist", "cifar10")}
ROOT = Path(__file__).resolve().parents[1]


WARMUP_S = 1.5


def median_ms(fn: Callable[[], object], device: torch.device, repeats: int, warmup_s: float | None = None) -> float:
    """Median wall time of ``fn`` in ms (CUDA: events around each call, after a synchronize).

    Warm-up: at least 3 calls and ``warmup_s`` seconds (the first steps of a process are slower
    on the CPU while the allocator's heap grows to its working size).
    """
    start_s, calls = time.perf_counter(), 0
    while calls < 3 or time.perf_counter() - start_s < (WARMUP_S if warmup_s is None else warmup_s):
        fn()
        calls += 1
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:
            start_s = time.perf_counter()
            fn()
            times.append(1e3 * (time.perf_counter() - start_s))
    return statistics.median(times)


def matmul_gflops(device: torch.device, repeats: int) -> dict[str, float]:
    """Dense fp32 GEMM GFLOP/s of this machine: ``torch.matmul`` (MKL on the CPU) and, on the CPU,
    oneDNN's GEMM (``gevb.layers.base.matmul_nt``'s fast path), each the best of three square sizes."""
    paths = {"torch_matmul": lambda a, b: a @ b}
    if device.type == "cpu" and onednn_matmul():
        paths["onednn"] = lambda a, b: matmul_nt(a, b)
    best = dict.fromkeys(paths, 0.0)
    for n in (1024, 2048, 4096):
        a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
        for name, fn in paths.items():
            ms = median_ms(lambda fn=fn, a=a, b=b: fn(a, b), device, max(3, repeats // 2))
            best[name] = max(best[name], 2 * n**3 / ms / 1e6)
    return best


def materialized_first_layer(layer: nn.Module) -> nn.Module:
    """Reference: the plain layer taking the expanded input (K*C channels), sharing ``layer``'s weight."""
    k = layer.vector_dim
    if isinstance(layer, VecLinear):
        twin = VecLinear(k * layer.in_features, layer.out_features, k, device=layer.weight.device)
    elif isinstance(layer, VecConv2d):
        twin = VecConv2d(
            k * layer.in_channels, layer.out_channels, layer.kernel_size, k, layer.stride, layer.padding,
            device=layer.weight.device,
        )  # fmt: skip
    else:
        twin = VecLocal2d(
            k * layer.in_channels, layer.out_channels, layer.kernel_size, layer.input_size, k, layer.stride,
            layer.padding, device=layer.weight.device,
        )  # fmt: skip
    twin.weight = nn.Parameter(layer.weight.detach().view(twin.weight.shape))
    twin.bias = layer.bias
    return twin


def bench_vectorized(model, x, y, device, repeats) -> dict[str, float]:
    """Forward, the three training steps, FLOPs, memory, and the first layer implicit vs materialized."""
    out: dict[str, float] = {}
    with torch.no_grad():
        out["forward_ms"] = median_ms(lambda: model(x), device, repeats)
        first, rest = model.layers[0], model.layers[1:]
        twin = materialized_first_layer(first)
        prepared = model._prepare(x)
        expanded = expand_input(prepared, first.vector_dim)  # (B, K, K*D) or (B, K, K*C, H, W)
        out["first_layer_implicit_ms"] = median_ms(lambda: first(prepared), device, repeats)
        out["first_layer_materialized_ms"] = median_ms(lambda: twin(expanded), device, repeats)

        def materialized_forward():
            a = twin(expanded)
            for layer in rest:
                a = layer(a)
            return a

        out["materialized_forward_ms"] = median_ms(materialized_forward, device, repeats)
        out["forward_gflop"] = count_flops(lambda: model(x)) / 1e9
    for name in ("gevb", "bp", "bp-autograd"):
        rule, optimizer = make_rule(name, model).to(device), make_optimizer(model, 3e-4)
        step = lambda rule=rule, optimizer=optimizer: train_step(model, rule, optimizer, x, y)  # noqa: E731
        out[f"{name.replace('-autograd', '_autograd')}_step_ms"] = median_ms(step, device, repeats)
        if name == "gevb":
            out["gevb_step_gflop"] = count_flops(step) / 1e9
            out["gevb_peak_mib"] = peak_memory_mib(step, device)
    return out


def bench_conventional(model, x, y, device, repeats) -> dict[str, float]:
    out = {}
    with torch.no_grad():
        out["forward_ms"] = median_ms(lambda: model(x), device, repeats)
    for name in ("bp", "dfa"):
        rule, optimizer = make_rule(name, model).to(device), make_optimizer(model, 3e-4)
        out[f"{name}_step_ms"] = median_ms(lambda r=rule, o=optimizer: train_step(model, r, o, x, y), device, repeats)
    return out


def ratios(vec: dict[str, float], peak_gflops: float) -> dict[str, float]:
    achieved = vec["gevb_step_gflop"] / (vec["gevb_step_ms"] / 1e3)
    return {
        "gevb_over_forward": vec["gevb_step_ms"] / vec["forward_ms"],
        "gevb_over_fast_bp": vec["gevb_step_ms"] / vec["bp_step_ms"],
        "fast_bp_over_autograd_bp": vec["bp_step_ms"] / vec["bp_autograd_step_ms"],
        "gevb_fraction_of_matmul_peak": achieved / peak_gflops,
        "gevb_gflops": achieved,
        "gevb_step_ms": vec["gevb_step_ms"],
        "implicit_over_materialized_first_layer": vec["first_layer_implicit_ms"] / vec["first_layer_materialized_ms"],
    }


def machine(device: torch.device) -> dict[str, object]:
    info = provenance(device)
    return {key: info[key] for key in ("device", "device_name", "threads", "torch", "python", "git_commit")}


COLUMNS = [  # (header, width, value of (vectorized, ratios, conventional))
    ("forward ms", 10, lambda v, r, c: f"{v['forward_ms']:.1f}"),
    ("gevb ms", 8, lambda v, r, c: f"{v['gevb_step_ms']:.1f}"),
    ("bp ms", 8, lambda v, r, c: f"{v['bp_step_ms']:.1f}"),
    ("autograd ms", 11, lambda v, r, c: f"{v['bp_autograd_step_ms']:.1f}"),
    ("gevb/fwd", 8, lambda v, r, c: f"{r['gevb_over_forward']:.2f}"),
    ("gevb/bp", 7, lambda v, r, c: f"{r['gevb_over_fast_bp']:.2f}"),
    ("bp/autograd", 11, lambda v, r, c: f"{r['fast_bp_over_autograd_bp']:.2f}"),
    ("GFLOP/s", 7, lambda v, r, c: f"{r['gevb_gflops']:.0f}"),
    ("of peak", 7, lambda v, r, c: f"{100 * r['gevb_fraction_of_matmul_peak']:.0f}%"),
    ("1st implicit/mat.", 17, lambda v, r, c: f"{r['implicit_over_materialized_first_layer']:.3f}"),
    ("peak MiB", 8, lambda v, r, c: "-" if v["gevb_peak_mib"] is None else f"{v['gevb_peak_mib']:.0f}"),
    ("conv. bp ms", 11, lambda v, r, c: f"{c['bp_step_ms']:.1f}"),
    ("conv. dfa ms", 12, lambda v, r, c: f"{c['dfa_step_ms']:.1f}"),
]


def print_table(results: dict, gemm: dict[str, float]) -> None:
    print(", ".join(f"{name} GEMM {value:.0f} GFLOP/s" for name, value in gemm.items()))
    print(f"{'config':17s} " + " ".join(f"{header:>{width}s}" for header, width, _ in COLUMNS))
    for key, entry in results.items():
        v, r, c = entry["vectorized"], entry["ratios"], entry["conventional"]
        print(f"{key:17s} " + " ".join(f"{value(v, r, c):>{width}s}" for _, width, value in COLUMNS))


def main() -> None:
    global WARMUP_S
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--repeats", type=int, default=10, help="timed repeats per measurement (default: 10)")
    parser.add_argument("--batch-size", type=int, default=128, help="(default: 128)")
    parser.add_argument("--datasets", default="mnist,cifar10", help="(default: mnist,cifar10)")
    parser.add_argument("--models", default="fc-vec,conv-vec,lc-vec", help="(default: fc-vec,conv-vec,lc-vec)")
    parser.add_argument(
        "--warmup-s", type=float, default=WARMUP_S, help="warm-up seconds per measurement (default: 1.5)"
    )
    parser.add_argument("--json", action="store_true", help="print all results as one JSON line at the end")
    args = parser.parse_args()
    WARMUP_S = args.warmup_s
    device = torch.device(args.device)
    gemm = matmul_gflops(device, args.repeats)
    peak = max(gemm.values())
    results = {}
    for dataset in args.datasets.split(","):
        shape = SHAPES[dataset]
        x = torch.randn(args.batch_size, *shape, device=device)
        y = torch.randint(0, 10, (args.batch_size,), device=device)
        for name in args.models.split(","):
            vectorized = build_model(name, shape, 10, "nonneg", device=device)
            conventional = build_model(counterpart(name), shape, 10, "nonneg", device=device)
            vec = bench_vectorized(vectorized, x, y, device, args.repeats)
            results[f"{dataset}/{name}"] = {
                "vectorized": vec,
                "conventional": bench_conventional(conventional, x, y, device, args.repeats),
                "ratios": ratios(vec, peak),
            }
    print_table(results, gemm)
    if args.json:
        summary = {key: dict(entry["ratios"]) for key, entry in results.items()}
        for key, entry in summary.items():
            if key != "mnist/fc-vec":
                entry.pop("implicit_over_materialized_first_layer")
        report = {"machine": machine(device), "batch_size": args.batch_size, "matmul_gflops": peak, "gemm": gemm}
        print(json.dumps({**report, "ratios": summary, "results": results}))


if __name__ == "__main__":
    keep_freed_memory()  # as the gevb command does
    main()
