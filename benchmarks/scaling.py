"""How a training step's cost grows with width and batch size, so a user sees the cost of a wider net first.

For fc-vec, conv-vec and lc-vec at a data set's input shape (random inputs: time depends on shapes only),
GEVB and BP steps (``gevb.train_step`` with fused Adam), two sweeps: the hidden widths at 0.25x to 2x the
paper's (batch 128), and the batch size from 32 to 512 (the paper's widths). Each point: the median step time
(``gevb.cost.step_ms``), its matmul and convolution FLOPs (``gevb.cost.step_flops``) and the step's peak memory
(``gevb.cost.peak_memory_mib``). Prints a table and the measured log-log slopes; ``--plot`` draws time and
memory against width and batch on log-log axes with the FLOP count as the reference line (time proportional to
FLOPs, through the 1x / batch-128 point).

Usage: python benchmarks/scaling.py [--dataset mnist|cifar10] [--models fc-vec,conv-vec,lc-vec]
           [--rules gevb,bp] [--scales 0.25,0.5,1,2] [--batches 32,64,128,256,512] [--calls 3] [--threads N]
           [--json FILE] [--plot FILE]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch
from step_time import SHAPES

from gevb import build_model, keep_freed_memory
from gevb.cost import peak_memory_mib, step_flops, step_ms, training_step
from gevb.models.architectures import resolve_spec
from gevb.provenance import provenance


def measure(model_name: str, rule: str, shape, widths, batch: int, calls: int) -> dict:
    model = build_model(model_name, shape, 10, "nonneg", widths=widths, seed=0)
    return {
        "ms": step_ms(model, rule, batch, calls)["step"],
        "gflop": step_flops(model, rule, batch)["step"] / 1e9,
        "peak_mib": peak_memory_mib(training_step(model, rule, batch), torch.device("cpu")),
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log y against log x."""
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / sum((a - mx) ** 2 for a in lx)


def sweep(args) -> list[dict]:
    shape, points = SHAPES[args.dataset], []
    for name in args.models:
        paper = resolve_spec(name, shape[0]).widths
        for rule in args.rules:
            for scale in args.scales:
                widths = [max(1, round(w * scale)) for w in paper]
                points.append({"model": name, "rule": rule, "sweep": "width", "scale": scale, "widths": widths,
                               "batch": 128, **measure(name, rule, shape, widths, 128, args.calls)})  # fmt: skip
                print_point(points[-1])
            for batch in args.batches:
                points.append({"model": name, "rule": rule, "sweep": "batch", "scale": 1.0, "widths": list(paper),
                               "batch": batch, **measure(name, rule, shape, paper, batch, args.calls)})  # fmt: skip
                print_point(points[-1])
    return points


def print_point(p: dict) -> None:
    memory = "-" if p["peak_mib"] is None else f"{p['peak_mib']:.0f}"
    print(f"{p['model']:9s} {p['rule']:5s} {p['sweep']:5s} x{p['scale']:<5g} batch {p['batch']:4d} "
          f"widths {','.join(map(str, p['widths'])):14s} {p['ms']:9.1f} ms {p['gflop']:8.2f} GFLOP "
          f"{p['gflop'] / p['ms'] * 1e3:6.0f} GFLOP/s {memory:>6s} MiB", flush=True)  # fmt: skip


def slopes(points: list[dict]) -> list[str]:
    lines = []
    for name in dict.fromkeys(p["model"] for p in points):
        for rule in dict.fromkeys(p["rule"] for p in points):
            for kind, x in (("width", "scale"), ("batch", "batch")):
                run = [p for p in points if (p["model"], p["rule"], p["sweep"]) == (name, rule, kind)]
                if len(run) < 2:
                    continue
                xs = [p[x] for p in run]
                parts = [
                    f"time {slope(xs, [p['ms'] for p in run]):.2f}",
                    f"FLOPs {slope(xs, [p['gflop'] for p in run]):.2f}",
                ]
                if all(p["peak_mib"] for p in run):
                    parts.append(f"memory {slope(xs, [p['peak_mib'] for p in run]):.2f}")
                lines.append(f"{name} {rule} against {kind}: log-log slope " + ", ".join(parts))
    return lines


def plot(points: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(p["model"] for p in points))
    figure, axes = plt.subplots(len(models), 4, figsize=(16, 3.6 * len(models)), squeeze=False)
    for row, name in zip(axes, models, strict=True):
        for col, (kind, x, y, label) in enumerate((
            ("width", "scale", "ms", "step ms"), ("batch", "batch", "ms", "step ms"),
            ("width", "scale", "peak_mib", "peak MiB"), ("batch", "batch", "peak_mib", "peak MiB"),
        )):  # fmt: skip
            ax = row[col]
            for rule in dict.fromkeys(p["rule"] for p in points):
                run = [p for p in points if (p["model"], p["rule"], p["sweep"]) == (name, rule, kind) and p[y]]
                if not run:
                    continue
                ax.plot([p[x] for p in run], [p[y] for p in run], "o-", label=rule)
                if y == "ms":  # time proportional to FLOPs, through the paper's point
                    anchor = next((p for p in run if p["scale"] == 1.0 and p["batch"] == 128), run[0])
                    flops = [anchor["ms"] * p["gflop"] / anchor["gflop"] for p in run]
                    ax.plot([p[x] for p in run], flops, ":", color=ax.lines[-1].get_color(), label=f"{rule} FLOPs")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{name}: {label} against {'width (x paper)' if kind == 'width' else 'batch size'}")
            ax.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=tuple(SHAPES), default="mnist")
    parser.add_argument("--models", default="fc-vec,conv-vec,lc-vec", type=lambda s: s.split(","))
    parser.add_argument("--rules", default="gevb,bp", type=lambda s: s.split(","))
    parser.add_argument("--scales", default="0.25,0.5,1,2", type=lambda s: [float(v) for v in s.split(",")])
    parser.add_argument("--batches", default="32,64,128,256,512", type=lambda s: [int(v) for v in s.split(",")])
    parser.add_argument("--calls", type=int, default=3, help="timed steps per point, after two warm-up steps")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", help="write the points and the machine to this file")
    parser.add_argument("--plot", help="write the log-log figure here (needs matplotlib)")
    args = parser.parse_args()
    keep_freed_memory()  # as the gevb command does
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{args.dataset} shapes, {torch.get_num_threads()} threads, torch {torch.__version__}")
    points = sweep(args)
    print("\n".join(slopes(points)))
    if args.json:
        machine = provenance(torch.device("cpu")) | {"threads": torch.get_num_threads()}
        Path(args.json).write_text(
            json.dumps({"machine": machine, "dataset": args.dataset, "points": points}, indent=1)
        )
    if args.plot:
        plot(points, args.plot)


if __name__ == "__main__":
    main()
