"""``gevb width-scaling``, ``sign-check``, ``cluster-quality`` and ``plot``: how each rule follows the gradient."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import torch

from gevb.analysis.clusters import cluster_quality
from gevb.analysis.sign import sign_check
from gevb.analysis.width import width_scaling, width_table
from gevb.build import RunParts, build_run, load_run
from gevb.cli.common import (
    DATASET_METAVAR,
    MODEL_METAVAR,
    InputPath,
    IntList,
    Number,
    add_data_flags,
    check_figure,
    data_flags_given,
    emitters,
    figure_file,
    save_figure,
)
from gevb.config import COUNT, SEED, SEED_COUNT, WIDTH, Interval, TrainConfig, check_applies
from gevb.cost import step_flops, step_ms
from gevb.files import json_text
from gevb.init import SIGNS
from gevb.models import architecture_names, build_model
from gevb.models.summary import summary_rows, summary_text
from gevb.paper import broadcast_rule, dataset_title, model_title
from gevb.rules import RULES
from gevb.runs import Run, RunFolder
from gevb.text import counted
from gevb.threads import torch_threads


def command_width_scaling(args: argparse.Namespace) -> int:
    check_applies([TrainConfig(dataset=args.dataset)], data_flags_given(args))
    log, _ = emitters(args.json, args.quiet)
    plot = args.plot.replace("{model}", args.model)  # not str.format: other braces are part of the name
    if plot != "-":
        check_figure(plot)
    result = width_scaling(
        args.model, args.widths, args.seeds, args.dataset, args.batch_size, args.device, args.data_dir, args.download,
        log=log,
    )  # fmt: skip
    if not args.json:
        print(width_table(result))
        print("summary: " + ", ".join(f"{key} {value:.3g}" for key, value in result["summary"].items()))
    if plot != "-":
        from gevb.analysis.plots import width_scaling_figure

        save_figure(lambda: width_scaling_figure(result), plot)
    if args.json:
        print(json_text(result))
    return 0


# The flags that describe a fresh model (sign-check, summary), each command's subset, and their defaults.
FRESH_MODEL = {"model": "fc-vec", "rule": None, "sign": "nonneg", "seed": 0, "dataset": "digits", "widths": None}


def saved_or_fresh(args: argparse.Namespace, rule: Callable[[str], str]) -> RunParts:
    """The parts of the saved run ``args.run``, or of a fresh model built from the fresh-model flags (each
    command's subset of ``FRESH_MODEL``; ``rule``: its rule for a model name when ``--rule`` is not given). A
    fresh-model flag given with a saved run is an error naming it: the run keeps its own settings."""
    flags = [name for name in FRESH_MODEL if hasattr(args, name)]
    if args.run:
        given = [name for name in flags if getattr(args, name) is not None]
        if given:
            flag = f"--{given[0]}"
            saved = f"{args.run} is a saved run, which keeps its own"
            raise ValueError(f"{flag} sets up a fresh model, but {saved}; drop {flag}")
        return load_run(args.run, args.device, args.data_dir, args.download)
    settings = {name: FRESH_MODEL[name] if getattr(args, name) is None else getattr(args, name) for name in flags}
    settings["rule"] = settings.get("rule") or rule(settings["model"])
    config = TrainConfig(**settings, device=args.device, data_dir=args.data_dir, download=args.download)
    check_applies([config.validate()], data_flags_given(args))
    return build_run(config)


def command_sign_check(args: argparse.Namespace) -> int:
    parts = saved_or_fresh(args, broadcast_rule)
    what = f"{args.run} (epoch {parts.epoch})" if args.run else "a fresh model (initialization)"
    config, train_split = parts.config, parts.data.train
    x, y = train_split.x[: args.examples], train_split.y[: args.examples]
    result = sign_check(parts.model, parts.rule, x, y)
    if args.json:
        print(json_text({"config": config.to_dict(), "examples": len(x), "layers": result}))
        return 0
    print(f"{config.model} / {config.rule} / {config.sign} on {config.dataset}, {what}, {counted(len(x), 'example')}:")
    print("fraction of weights whose update and BP gradient have opposite signs, per example")
    for name, row in result.items():
        print(
            f"  {name:>10}: mean {row['mean_fraction']:.4%}  max {row['max_fraction']:.4%}  "
            f"examples with any {row['examples_with_any']:.1%}"
        )
    return 0


def command_summary(args: argparse.Namespace) -> int:
    parts = saved_or_fresh(args, broadcast_rule)
    model, rule, batch = parts.model, parts.config.rule, parts.config.batch_size
    cost = {"rule": rule, "batch_size": batch, "gflop": {k: v / 1e9 for k, v in step_flops(model, rule, batch).items()}}
    if args.time:
        with torch_threads(args.threads):
            cost |= {"ms": step_ms(model, rule, batch, args.time), "threads": torch.get_num_threads()}
    if args.json:
        print(json_text({"layers": summary_rows(model), "cost": cost}))
        return 0
    print(summary_text(model))
    flops = cost["gflop"]
    print(f"per batch of {batch}: forward {flops['forward']:.3g} GFLOP, {rule} training step {flops['step']:.3g} GFLOP")
    if args.time:
        ms, where = cost["ms"], f"{parts.device.type}, {counted(cost['threads'], 'thread')}"
        print(
            f"measured here ({where}, median of {args.time}): forward {ms['forward']:.1f} ms, step {ms['step']:.1f} ms"
        )
    return 0


def command_cluster_quality(args: argparse.Namespace) -> int:
    run_dir = Path(args.run) if Path(args.run).is_dir() else Path(args.run).parent
    plot = args.plot or str(run_dir / "cluster-quality.png")
    if plot != "-":
        check_figure(plot)
    parts = load_run(args.run, args.device, args.data_dir, args.download)
    c, data = parts.config, parts.data
    initial = build_model(c.model, data.input_shape, data.num_classes, c.sign, c.widths, c.seed, device=parts.device)
    split = data.test if args.split == "test" else data.train
    x, y = split.x[: args.examples], split.y[: args.examples]
    result = cluster_quality(initial, parts.model, x, y)
    summary = {
        "run": str(args.run), "model": c.model, "rule": c.rule, "sign": c.sign, "dataset": c.dataset,
        "epoch": parts.epoch, "split": args.split, "examples": len(x), "initial_ratio": result["initial"]["ratio"],
        "trained_ratio": result["trained"]["ratio"], "improvement": result["improvement"],
    }  # fmt: skip
    if plot != "-":
        from gevb.analysis.plots import cluster_figure

        what = f"{model_title(c.model)} / {c.rule} / {c.sign} on {dataset_title(c.dataset)}, epoch {parts.epoch}"
        title = f"{what}: last conv block features"
        save_figure(lambda: cluster_figure(result, y.cpu().numpy(), title), plot)
    if args.json:
        print(json_text(summary))
    else:
        print(
            f"within-class / overall RMS distance of the t-SNE embedding ({len(x)} {args.split} examples): "
            f"{summary['initial_ratio']:.3f} at initialization, {summary['trained_ratio']:.3f} after "
            f"{counted(parts.epoch, 'epoch')} (improvement {summary['improvement']:+.3f})"
        )
    return 0


def command_plot(args: argparse.Namespace) -> int:
    folder = RunFolder(args.run)
    if not folder.holds_run():
        raise ValueError(f"{args.run} holds no gevb run (no config.yaml); pass a --out folder of gevb train")
    run = Run.read(folder)
    if not run.metrics:
        raise ValueError(f"{args.run} has no evaluation yet; train it further or pass another run")
    from gevb.analysis.plots import run_figure

    save_figure(lambda: run_figure(run), args.plot or str(folder.path / "curves.png"))
    return 0


def add_run_or_fresh_model(parser: argparse.ArgumentParser) -> None:
    """A saved run to read (positional, optional), or ``--model`` for a fresh one (sign-check, summary)."""
    saved = "a saved run (default: a fresh model)"
    parser.add_argument("run", nargs="?", type=InputPath(".pt"), metavar="RUN_DIR_OR_CHECKPOINT", help=saved)
    fresh = "fresh model (default: fc-vec)"
    parser.add_argument("--model", type=InputPath(".yaml"), metavar=MODEL_METAVAR, help=fresh)
    parser.add_argument("--sign", choices=SIGNS, help="fresh model's sign regime (default: nonneg)")
    parser.add_argument(
        "--dataset", type=InputPath(".npz"), metavar=DATASET_METAVAR, help="fresh model's data (default: digits)"
    )


def add_fresh_rule(parser: argparse.ArgumentParser) -> None:
    default = "fresh model's rule (default: gevb, or dfa if conventional)"
    parser.add_argument("--rule", choices=tuple(RULES), help=default)


def register(commands: argparse._SubParsersAction) -> None:
    width = commands.add_parser(
        "width-scaling",
        help="angle between GEVB and BP updates against width, at initialization",
        description="For each hidden width and seed, a fresh network's per-layer angle between its rule's update "
        "and the BP gradient on one batch: GEVB in the nonneg and mixed VNN, DFA in the conventional network "
        "(docs/method.md §6). Prints a table and the fitted log-log slopes; --json ends with one JSON object.",
    )
    width.add_argument(
        "--model", default="fc-vec", choices=architecture_names(vectorized=True), help="(default: fc-vec)"
    )
    width.add_argument(
        "--widths", type=IntList(WIDTH, unique=True), metavar="N,N,...",
        help="hidden widths to try (default: 64..2048 doubling for fc-vec, 16..256 conv-vec, 16..128 lc-vec)",
    )  # fmt: skip
    width.add_argument("--seeds", type=Number(SEED_COUNT), default=3, help="fresh networks per width (default: 3)")
    width.add_argument(
        "--dataset",
        type=InputPath(".npz"),
        default="digits",
        metavar=DATASET_METAVAR,
        help="inputs of the batch (default: digits)",
    )
    width.add_argument("--batch-size", type=Number(COUNT), default=128, help="examples in the batch (default: 128)")
    add_data_flags(width)
    width.add_argument(
        "--plot", type=figure_file, metavar="FILE", default="width-scaling-{model}.png",
        help="log-log figure to write (.png, .pdf or .svg), - for none (default: width-scaling-{model}.png)",
    )  # fmt: skip
    width.add_argument("--json", action="store_true", help="end with the full data as one JSON line (default: off)")
    width.add_argument("--quiet", action="store_true", help="no per-width lines (default: off)")
    width.set_defaults(handler=command_width_scaling)

    sign = commands.add_parser(
        "sign-check",
        help="fraction of weights whose update opposes the BP gradient, per example",
        description="Per example (batch of one), the fraction of each layer's weights where the rule's update and "
        "the BP gradient have opposite signs (docs/method.md §6): 0 for fully connected nonneg VNNs under GEVB. "
        "Checks a saved run, or a fresh model built from the flags.",
    )
    add_run_or_fresh_model(sign)
    add_fresh_rule(sign)
    sign.add_argument("--seed", type=Number(SEED), help="fresh model's seed (default: 0)")
    sign.add_argument("--examples", type=Number(COUNT), default=64, help="first N training examples (default: 64)")
    add_data_flags(sign)
    sign.add_argument("--json", action="store_true", help="print the result as one JSON line (default: off)")
    sign.set_defaults(handler=command_sign_check)

    summary = commands.add_parser(
        "summary", help="a model's layers, output shapes, parameter counts and cost per training step",
        description="The layers of a saved run's model, or of a fresh model for a data set's input shape and "
        "class count: name, class, output shape of one example and trained parameters; then the matmul and "
        "convolution FLOPs of a forward pass and of a training step of the run's rule and batch size (gevb.cost), "
        "and with --time their measured time on this machine.",
    )  # fmt: skip
    add_run_or_fresh_model(summary)
    add_fresh_rule(summary)
    summary.add_argument(
        "--time", type=Number(COUNT), nargs="?", const=5, metavar="N",
        help="also time N forward passes and training steps after two warm-up calls, median (default N: 5)",
    )  # fmt: skip
    summary.add_argument("--threads", type=Number(COUNT), help="torch CPU threads while timing (default: torch's)")
    summary.add_argument(
        "--widths", type=IntList(WIDTH), metavar="N,N,...", help="fresh model's hidden widths (default: the paper's)"
    )
    add_data_flags(summary)
    summary.add_argument(
        "--json", action="store_true", help='print {"layers": rows, "cost": ...} as one JSON line (default: off)'
    )
    summary.set_defaults(handler=command_summary)

    clusters = commands.add_parser(
        "cluster-quality",
        help="t-SNE cluster quality of the last conv block's features, before and after training",
        description="The paper's t-SNE analysis (docs/method.md §7): features of the last convolutional block at "
        "initialization and after training, PCA then 2-D t-SNE, and the ratio of mean within-class to overall "
        "RMS distance (lower is better separated). Writes a scatter figure.",
    )
    clusters.add_argument("run", type=InputPath(".pt"), metavar="RUN_DIR_OR_CHECKPOINT", help="a saved conv or lc run")
    clusters.add_argument(
        "--examples",
        type=Number(Interval(10, COUNT.high)),
        default=1000,
        help="first N examples of the split (default: 1000)",
    )
    clusters.add_argument("--split", default="test", choices=("test", "train"), help="(default: test)")
    clusters.add_argument(
        "--plot",
        type=figure_file,
        metavar="FILE",
        help="figure to write (.png, .pdf or .svg), - for none (default: RUN_DIR/cluster-quality.png)",
    )
    add_data_flags(clusters, "as trained")
    clusters.add_argument("--json", action="store_true", help="print the result as one JSON line (default: off)")
    clusters.set_defaults(handler=command_cluster_quality)

    plot = commands.add_parser(
        "plot",
        help="learning and alignment curves of one run",
        description="Draw a run's error and loss against epoch (train, test and, with --val-fraction, "
        "validation) and, if it was trained with --track-alignment, every layer's signal and update angle to BP "
        "(needs the plots extra).",
    )
    plot.add_argument("run", type=InputPath(), metavar="RUN_DIR")
    plot.add_argument(
        "--plot", type=figure_file, metavar="FILE",
        help="figure to write (.png, .pdf or .svg; default: RUN_DIR/curves.png)",
    )  # fmt: skip
    plot.set_defaults(handler=command_plot)
