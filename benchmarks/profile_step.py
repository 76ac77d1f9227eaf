"""Where a training step's time goes: ``torch.profiler``'s per-op table of one step, for the paper's networks
at a data set's input shape, batch 128, random inputs (time depends on shapes only).

Each configuration is warmed up (3 steps), then 3 steps are profiled and the ops' self CPU time per step is
printed, largest first, with each op's share of the step. The profiler adds its own overhead per op and has been
seen to attribute time to the wrong op (docs/investigations/suite-time: a 0.64 ms copy reported as 2 ms), so a
share here is where to look, not a measurement to quote alone: time a suspect directly.

Usage: python benchmarks/profile_step.py [--datasets mnist,cifar10] [--models conv-vec,lc-vec] [--rule gevb]
           [--top 12] [--threads N]
"""

from __future__ import annotations

import argparse

import torch
from step_time import SHAPES
from torch.profiler import ProfilerActivity, profile

from gevb import build_model, keep_freed_memory
from gevb.cost import training_step

PROFILED = 3


def top_ops(name: str, rule: str, shape, top: int) -> tuple[list[tuple[str, float, int]], float]:
    """(op, self CPU ms per step, calls per step) of the ``top`` ops by self CPU time, and every op's self CPU
    ms per step summed."""
    step = training_step(build_model(name, shape, 10, "nonneg", seed=0), rule, 128)
    for _ in range(3):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(PROFILED):
            step()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    ops = [(e.key, e.self_cpu_time_total / 1e3 / PROFILED, e.count // PROFILED) for e in events[:top]]
    return ops, sum(e.self_cpu_time_total for e in events) / 1e3 / PROFILED


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="mnist,cifar10", type=lambda s: s.split(","))
    parser.add_argument("--models", default="conv-vec,lc-vec", type=lambda s: s.split(","))
    parser.add_argument("--rule", default="gevb")
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    keep_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    for dataset in args.datasets:
        for name in args.models:
            ops, total = top_ops(name, args.rule, SHAPES[dataset], args.top)
            print(f"\n{dataset}/{name} {args.rule}, {torch.get_num_threads()} threads: {total:.1f} ms of ops a step")
            print("| op | self ms/step | share | calls/step |\n|---|---|---|---|")
            for key, ms, calls in ops:
                print(f"| `{key}` | {ms:.1f} | {100 * ms / total:.0f}% | {calls} |")


if __name__ == "__main__":
    main()
