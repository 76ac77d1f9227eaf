"""Median time of a training step, and of each rule's gradients alone, against a forward pass.

Timing only depends on shapes, so random inputs of the data set's shape are used; no accuracy
is measured here. Usage: python benchmarks/step_time.py [--model fc-vec] [--shape 1 28 28]
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import torch
from torch.optim import Adam

from gevb import RULES, build_model, make_rule, train_step


def median_ms(fn, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def forward_and_gradients(model, rule, x, y) -> None:
    with torch.set_grad_enabled(rule.needs_graph):
        output = model.trace(x)
    rule.set_grads(model, output, y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fc-vec")
    parser.add_argument("--shape", type=int, nargs=3, default=(1, 28, 28), metavar=("C", "H", "W"))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    model = build_model(args.model, args.shape, 10, "nonneg")
    x = torch.randn(args.batch_size, *args.shape)
    y = torch.randint(0, 10, (args.batch_size,))
    with torch.no_grad():
        forward = median_ms(lambda: model(x), args.repeats)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", end=", ")
    print(f"{args.model} {tuple(args.shape)}, batch {args.batch_size}")
    print(f"{'forward':12s} {forward:8.1f} ms")
    print("rule         full step (forward, rule, Adam, clamp) | forward + the rule's gradients")
    for name, rule_cls in RULES.items():
        if model.vectorized not in rule_cls.vectorized:
            continue
        rule = make_rule(name, model)
        step = median_ms(partial(train_step, model, rule, Adam(model.parameters()), x, y), args.repeats)
        grads = median_ms(partial(forward_and_gradients, model, rule, x, y), args.repeats)
        print(f"{name:12s} {step:8.1f} ms = {step / forward:.2f} x forward | {grads:6.1f} ms = {grads / forward:.2f} x")


if __name__ == "__main__":
    main()
