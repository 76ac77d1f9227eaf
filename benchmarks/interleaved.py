"""Two checkouts' forward and training-step times, interleaved: a change measured against run-to-run drift.

On a shared 2-core machine a step's time moves 10-30% between runs minutes apart, more than most changes to
measure. This script alternates the two checkouts round by round, each configuration in a fresh process that
imports gevb from the given ``src`` folder, times the forward pass and the rule's step as ``step_time.py``
does (``--calls`` calls after at least 1.5 s of warm-up, 2 threads) and prints each side's median over the
rounds with its range, and the step's change.

Usage: git worktree add /tmp/before COMMIT
       python benchmarks/interleaved.py --before /tmp/before/src --after src [--configs mnist/lc-vec,...]
           [--rule gevb] [--rounds 4] [--calls 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child(src: str, config: str, rule: str, calls: int) -> None:
    """Runs in the fresh process: prints ``[forward ms, step ms]`` of one configuration with gevb from ``src``."""
    sys.path.insert(0, str(Path(src).resolve()))
    import torch
    from step_time import SHAPES, median_ms

    import gevb
    from gevb.cost import forward_pass, training_step

    if not Path(gevb.__file__).resolve().is_relative_to(Path(src).resolve()):
        sys.exit(f"interleaved: gevb came from {gevb.__file__}, not from {src}")
    torch.set_num_threads(2)
    gevb.keep_freed_memory()
    dataset, name = config.split("/")
    model = gevb.build_model(name, SHAPES[dataset], 10, "nonneg", seed=0)
    cpu = torch.device("cpu")
    forward = median_ms(forward_pass(model, 128), cpu, calls)
    print(json.dumps([forward, median_ms(training_step(model, rule, 128), cpu, calls)]))


def measure(src: str, config: str, rule: str, calls: int) -> list[float]:
    command = [sys.executable, __file__, "--child", src, "--configs", config, "--rule", rule, "--calls", str(calls)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=HERE)
    if done.returncode != 0:
        sys.exit(f"interleaved: {config} with {src} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="the src folder of the checkout before the change")
    parser.add_argument("--after", help="the src folder of the checkout after it")
    parser.add_argument("--configs", default="mnist/conv-vec,mnist/lc-vec,cifar10/conv-vec,cifar10/lc-vec")
    parser.add_argument("--rule", default="gevb")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--calls", type=int, default=7)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.configs, args.rule, args.calls)
    if not (args.before and args.after):
        parser.error("--before and --after name the two checkouts' src folders")
    configs = args.configs.split(",")
    times = {(config, side): [] for config in configs for side in ("before", "after")}
    for round_ in range(args.rounds):
        for config in configs:
            for side in ("before", "after"):
                src = str(Path(getattr(args, side)).resolve())
                times[config, side].append(measure(src, config, args.rule, args.calls))
            before, after = ([f"{ms:.1f}" for ms in times[config, side][-1]] for side in ("before", "after"))
            print(f"round {round_ + 1}: {config} before {before} after {after} (forward, step ms)", flush=True)
    print(f"\n| config | forward ms, before -> after | {args.rule} step ms, before -> after | step |")
    print("|---|---|---|---|")
    for config in configs:
        before, after = times[config, "before"], times[config, "after"]
        change = statistics.median(s for _, s in after) / statistics.median(s for _, s in before) - 1
        forwards = f"{spread([f for f, _ in before])} -> {spread([f for f, _ in after])}"
        steps = f"{spread([s for _, s in before])} -> {spread([s for _, s in after])}"
        print(f"| {config} | {forwards} | {steps} | {change:+.0%} |")


if __name__ == "__main__":
    main()
