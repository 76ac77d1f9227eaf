"""Training-step time of every registered rule on every registered architecture (docs/rules.md).

One process, random inputs of a data set's shape (timing depends only on shapes), the paper's widths,
batch 128, ``nonneg``: the median of ``--repeats`` calls of ``gevb.train_step`` (forward, the rule's
gradients, fused Adam, clamp) after a warm-up, and each rule's time over BP's on the same network.

Usage: python benchmarks/rule_steps.py [--dataset mnist|cifar10] [--device cpu|cuda] [--repeats 10] [--json]
"""

from __future__ import annotations

import argparse
import json

import torch
from step_time import SHAPES, machine, median_ms

from gevb import ARCHITECTURES, RULES, build_model, keep_freed_memory, make_rule, train_step
from gevb.build import make_optimizer


def rule_step_ms(name: str, shape, device: torch.device, batch: int, repeats: int) -> dict[str, float]:
    """Median step time (ms) of every rule defined for architecture ``name``."""
    x = torch.randn(batch, *shape, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    model = build_model(name, shape, 10, "nonneg", device=device)
    out = {}
    for rule_name, rule_type in RULES.items():
        if model.vectorized not in rule_type.vectorized:
            continue
        rule, optimizer = make_rule(rule_name, model).to(device), make_optimizer(model, 3e-4)
        out[rule_name] = median_ms(lambda r=rule, o=optimizer: train_step(model, r, o, x, y), device, repeats)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist", choices=tuple(SHAPES), help="input shape (default: mnist)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per measurement (default: 10)")
    parser.add_argument("--batch-size", type=int, default=128, help="(default: 128)")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON line at the end")
    args = parser.parse_args()
    keep_freed_memory()
    device = torch.device(args.device)
    results = {}
    for name in ARCHITECTURES:
        times = rule_step_ms(name, SHAPES[args.dataset], device, args.batch_size, args.repeats)
        results[name] = times
        cells = "  ".join(f"{rule} {ms:.1f} ms ({ms / times['bp']:.2f}x bp)" for rule, ms in times.items())
        print(f"{args.dataset}/{name}: {cells}", flush=True)
    if args.json:
        print(json.dumps({"machine": machine(device), "dataset": args.dataset, "step_ms": results}))


if __name__ == "__main__":
    main()
