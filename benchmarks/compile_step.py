"""Does ``torch.compile`` pay for a training step? The GEVB and BP steps of each vectorized network, eager
against compiled (Inductor), at a data set's input shape, batch 128, random inputs.

Per configuration, in one process: the eager step's median time; the compiled step's first call (compilation)
and median time after it, with the engine's CPU fast paths or, where Inductor cannot lower one of their kernels
(oneDNN's linear), with the reference paths (``gevb.layers.dispatch.reference_paths``); how far the compiled
step's weights are from the eager step's after the same steps from the same start (largest relative difference
over the parameters); or, where compiling fails, the first line of the error. Not a test: it prints what it
measured (docs/design.md, "Efficiency").

Usage: python benchmarks/compile_step.py [--dataset mnist|cifar10] [--models fc-vec,conv-vec,lc-vec]
           [--rules gevb,bp] [--steps 5] [--threads N] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import statistics
import time
from pathlib import Path

import torch
from step_time import SHAPES

import gevb.layers.dispatch as dispatch
from gevb import build_model, keep_freed_memory, make_rule, train_step
from gevb.build import make_optimizer
from gevb.cost import random_batch


def timed(fn, steps: int) -> tuple[float, list[float]]:
    """(the first call's seconds, the next ``steps`` calls' ms)."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(1e3 * (time.perf_counter() - start))
    return first, times


def compare(name: str, rule_name: str, shape, steps: int) -> dict:
    model = build_model(name, shape, 10, "nonneg", seed=0)
    x, y = random_batch(model, 128)
    runs, failures = {}, {}
    for mode in ("eager", "compiled", "compiled_reference"):
        copied = copy.deepcopy(model)
        rule, optimizer = make_rule(rule_name, copied, seed=0), make_optimizer(copied, 3e-4)

        def step(copied=copied, rule=rule, optimizer=optimizer):
            return train_step(copied, rule, optimizer, x, y, check=False)

        fn = step if mode == "eager" else torch.compile(step)
        with dispatch.reference_paths() if mode == "compiled_reference" else contextlib.nullcontext():
            try:
                first, times = timed(fn, steps)
            except Exception as error:  # Inductor cannot lower every kernel the engine calls, nor Dynamo trace
                failures[mode] = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:160]}"
                torch._dynamo.reset()
                continue
        runs[mode] = {"first_s": first, "ms": statistics.median(times), "model": copied}
    result = {"model": name, "rule": rule_name, "eager_ms": runs["eager"]["ms"], "failures": failures}
    compiled = runs.get("compiled") or runs.get("compiled_reference")
    if compiled is None:
        return result
    gap = max(
        ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()
        for a, b in zip(compiled["model"].parameters(), runs["eager"]["model"].parameters(), strict=True)
    )
    return result | {
        "paths": "fast" if "compiled" in runs else "reference", "compiled_ms": compiled["ms"],
        "compile_s": compiled["first_s"] - runs["eager"]["first_s"], "largest_relative_gap": gap,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=tuple(SHAPES), default="mnist")
    parser.add_argument("--models", default="fc-vec,conv-vec,lc-vec", type=lambda s: s.split(","))
    parser.add_argument("--rules", default="gevb,bp", type=lambda s: s.split(","))
    parser.add_argument("--steps", type=int, default=5, help="timed steps after the first (default: 5)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    keep_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{args.dataset} shapes, batch 128, {torch.get_num_threads()} threads, torch {torch.__version__}")
    results = []
    for name in args.models:
        for rule in args.rules:
            r = compare(name, rule, SHAPES[args.dataset], args.steps)
            results.append(r)
            for mode, failure in r["failures"].items():
                paths = "reference" if mode == "compiled_reference" else "fast"
                print(f"{name:9s} {rule:5s} eager {r['eager_ms']:8.1f} ms; compiled with the {paths} paths: {failure}")
            if "compiled_ms" not in r:
                continue
            gap = r["largest_relative_gap"]
            print(f"{name:9s} {rule:5s} eager {r['eager_ms']:8.1f} ms  compiled ({r['paths']} paths) "
                  f"{r['compiled_ms']:8.1f} ms "
                  f"({r['compiled_ms'] / r['eager_ms']:.2f}x) after {r['compile_s']:.1f} s of compilation; "
                  f"weights differ by {gap:.1e}",
                  flush=True)  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
