"""The ``gevb`` command: a thin shell over ``gevb.training``.

User errors (bad values, missing or corrupt files, a run folder holding another run) exit with
status 2 and one line on stderr; set ``GEVB_TRACEBACK=1`` to see the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from tqdm import tqdm

from gevb.analysis.clusters import cluster_quality
from gevb.analysis.report import Run, write_report
from gevb.analysis.sign import sign_check
from gevb.analysis.width import width_scaling, width_table
from gevb.config import TrainConfig, config_from_mapping, load_config
from gevb.data import DATASETS
from gevb.distributed import is_main_process
from gevb.files import atomic_file
from gevb.grid import (
    GRID_MODELS,
    GRID_RULES,
    broadcast_rule,
    grid_runs,
    paper_protocol,
    parse_shard,
    run_grid,
    run_status,
    shard,
)
from gevb.init import SIGNS
from gevb.models import ARCHITECTURES, build_model
from gevb.rules import RULES
from gevb.runs import RunFolder
from gevb.training import NonFiniteError, Trainer, evaluate_run, load_run, train

DEFAULTS = TrainConfig()


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (status 2)."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def widths_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 1024,512, got {text!r}") from None


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per ``TrainConfig`` field; a flag not given leaves the YAML / default value."""
    flags: dict[str, dict[str, Any]] = {
        "dataset": {"choices": DATASETS},
        "model": {"choices": ARCHITECTURES},
        "rule": {"choices": tuple(RULES), "help": "learning rule (gevb/dfa/bp; bp-autograd is the reference BP)"},
        "sign": {"choices": SIGNS, "help": "nonneg: the VNN (ON/OFF init, clamp); mixed: He init, no constraint"},
        "widths": {"type": widths_list, "metavar": "N,N,...", "help": "hidden widths (units or channels)"},
        "epochs": {"type": int},
        "batch_size": {"type": int},
        "lr": {"type": float, "help": "Adam learning rate"},
        "seed": {"type": int, "help": "seeds the weights, t vectors, DFA feedback and batch order"},
        "eval_every": {"type": int, "help": "evaluate on the full train and test splits every N epochs and at the end"},
        "stop_at_100": {"action": "store_true", "help": "stop at an evaluation with 100%% train accuracy"},
        "eval_batch_size": {"type": int},
        "track_alignment": {
            "action": "store_true",
            "help": "at every evaluation, record each layer's angle to BP on a fixed batch of 128 training examples",
        },
        "on_nonfinite": {
            "choices": ("stop", "skip"),
            "help": "at a non-finite loss or weight: stop (exit 3, last good checkpoint kept) or skip the step "
            "and halve the learning rate",
        },
        "device": {"help": "auto, cpu, cuda or cuda:N"},
        "data_dir": {"metavar": "DIR", "help": "folder holding the data set's files"},
        "download": {"action": "store_true", "help": "fetch mnist/fashion-mnist/cifar10 and verify checksums"},
    }
    unset = {"widths": "the paper's", "data_dir": "$GEVB_DATA_DIR/NAME or ~/.cache/gevb/NAME, then system folders"}
    for field in fields(TrainConfig):
        options = flags[field.name]
        default = getattr(DEFAULTS, field.name)
        shown = unset.get(field.name) if default is None else "off" if default is False else default
        options["help"] = f"{options.get('help', field.name.replace('_', ' '))} (default: {shown})"
        parser.add_argument(f"--{field.name.replace('_', '-')}", default=argparse.SUPPRESS, **options)


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """Defaults, then the YAML file of ``--config``, then the flags given."""
    base = load_config(args.config) if args.config else TrainConfig()
    given = {field.name: getattr(args, field.name) for field in fields(TrainConfig) if hasattr(args, field.name)}
    return config_from_mapping(given, "command line", base).validate()


def emitters(as_json: bool, quiet: bool) -> tuple[Callable[[str], None], Callable[[str], None]]:
    """(per-evaluation log, final line printer). With --json, logs go to stderr so stdout is pure JSON."""
    stream = sys.stderr if as_json else sys.stdout

    def log(line: str) -> None:
        if not quiet:
            tqdm.write(line, file=stream)

    return log, print


def command_train(args: argparse.Namespace) -> int:
    if args.resume and not args.out:
        raise ValueError("--resume needs the run folder: add --out DIR")
    config = resolve_config(args)
    log, emit = emitters(args.json, args.quiet)
    progress = not args.quiet and sys.stderr.isatty()
    if not is_main_process():  # a torchrun worker of rank > 0: rank 0 speaks for all
        log, emit = (lambda line: None), (lambda *a, **k: None)
    if args.dry_run:
        result = Trainer(config, log=log).dry_run()
    else:
        result = train(config, args.out, args.resume, log=log, progress=progress)
    if args.json:
        emit(json.dumps(result))
    elif result["test_error"] is None:
        emit(f"nothing to do: {args.out} holds a finished run with no evaluation")
    else:
        where = f", run saved in {result['out']}" if result.get("out") else ""
        emit(
            f"test error {result['test_error']:.2f}% (train {result['train_error']:.2f}%) "
            f"after {result['epochs']} epochs, {result['seconds']:.1f} s{where}"
        )
    return 0


def command_eval(args: argparse.Namespace) -> int:
    result = evaluate_run(args.run, device=args.device, data_dir=args.data_dir, download=args.download)
    if args.json:
        print(json.dumps(result))
    else:
        run = result["config"]
        print(
            f"{run['model']} / {run['rule']} / {run['sign']} on {run['dataset']}, epoch {result['epoch']}: "
            f"test error {result['test_error']:.2f}% (loss {result['test_loss']:.4f}), "
            f"train error {result['train_error']:.2f}% (loss {result['train_loss']:.4f})"
        )
    return 0


def name_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def command_reproduce(args: argparse.Namespace) -> int:
    base = paper_protocol(args.dataset)
    if args.config:
        base = load_config(args.config, base)
    given = {
        "epochs": args.epochs, "eval_every": args.eval_every, "device": args.device,
        "data_dir": args.data_dir, "download": args.download, "track_alignment": args.track_alignment,
    }  # fmt: skip
    base = config_from_mapping({k: v for k, v in given.items() if v is not None}, "command line", base)
    base = base.replace(dataset=args.dataset)
    runs = grid_runs(base, args.seeds, args.models, args.rules, args.signs)
    if args.shard:
        runs = shard(runs, *parse_shard(args.shard))
    out = Path(args.out or f"runs/{args.dataset}")
    if args.list:
        for run in runs:
            print(f"{run.name}\t{run_status(out, run)}")
        return 0
    log, _ = emitters(False, args.quiet)
    results = run_grid(runs, out, log=log, progress=not args.quiet and sys.stderr.isatty())
    print_report(write_report(out), args.quiet)
    failed = [result for result in results if "error" in result]
    if failed:
        print(f"gevb reproduce: {len(failed)} runs stopped at a non-finite loss or weight (see above)", file=sys.stderr)
        return 3
    return 0


def print_report(report: dict[str, Any], quiet: bool = False) -> None:
    if not quiet:
        print("\n".join(report["tables"].values()))
    if report["skipped"]:
        print(f"note: {report['skipped']}", file=sys.stderr)
    print(f"{report['runs']} runs; wrote {', '.join(report['files'])}")


def save_figure(make: Callable[[], Any], path: str) -> None:
    """Draw and save a figure to ``path`` atomically, or say how to get matplotlib."""
    if importlib.util.find_spec("matplotlib") is None:
        print(f"note: no figure written ({path}): pip install 'gevb[plots]'", file=sys.stderr)
        return
    with atomic_file(path) as file:
        make().savefig(file, format="png", dpi=120)
    print(f"wrote {path}", file=sys.stderr)


def command_width_scaling(args: argparse.Namespace) -> int:
    log, _ = emitters(args.json, args.quiet)
    result = width_scaling(
        args.model, args.widths, args.seeds, args.dataset, args.batch_size, args.device, args.data_dir, args.download,
        log=log,
    )  # fmt: skip
    if not args.json:
        print(width_table(result))
        print("summary: " + ", ".join(f"{key} {value:.3g}" for key, value in result["summary"].items()))
    if args.plot:
        from gevb.analysis.plots import width_scaling_figure

        save_figure(lambda: width_scaling_figure(result), args.plot.format(model=args.model))
    if args.json:
        print(json.dumps(result))
    return 0


def command_sign_check(args: argparse.Namespace) -> int:
    if args.run:
        trainer, _ = load_run(args.run, args.device, args.data_dir, args.download)
        what = f"{args.run} (epoch {trainer.epoch})"
    else:
        rule = args.rule or broadcast_rule(args.model)
        config = TrainConfig(
            dataset=args.dataset, model=args.model, rule=rule, sign=args.sign, seed=args.seed, device=args.device,
            data_dir=args.data_dir, download=args.download,
        )  # fmt: skip
        trainer, what = Trainer(config), "a fresh model (initialization)"
    config, train_split = trainer.config, trainer.data.train
    if args.examples < 1:
        raise ValueError(f"--examples must be at least 1, got {args.examples}")
    x, y = train_split.x[: args.examples], train_split.y[: args.examples]
    result = sign_check(trainer.model, trainer.rule, x, y)
    if args.json:
        print(json.dumps({"config": config.to_dict(), "examples": len(x), "layers": result}))
        return 0
    print(f"{config.model} / {config.rule} / {config.sign} on {config.dataset}, {what}, {len(x)} examples:")
    print("fraction of weights whose update and BP gradient have opposite signs, per example")
    for name, row in result.items():
        print(
            f"  {name:>10}: mean {row['mean_fraction']:.4%}  max {row['max_fraction']:.4%}  "
            f"examples with any {row['examples_with_any']:.1%}"
        )
    return 0


def command_cluster_quality(args: argparse.Namespace) -> int:
    trainer, _ = load_run(args.run, args.device, args.data_dir, args.download)
    c, data = trainer.config, trainer.data
    initial = build_model(c.model, data.input_shape, data.num_classes, c.sign, c.widths, c.seed, device=trainer.device)
    split = data.test if args.split == "test" else data.train
    if args.examples < 10:
        raise ValueError(f"--examples must be at least 10, got {args.examples}")
    x, y = split.x[: args.examples], split.y[: args.examples]
    result = cluster_quality(initial, trainer.model, x, y)
    summary = {
        "run": str(args.run), "model": c.model, "rule": c.rule, "sign": c.sign, "dataset": c.dataset,
        "epoch": trainer.epoch, "split": args.split, "examples": len(x), "initial_ratio": result["initial"]["ratio"],
        "trained_ratio": result["trained"]["ratio"], "improvement": result["improvement"],
    }  # fmt: skip
    run_dir = Path(args.run) if Path(args.run).is_dir() else Path(args.run).parent
    plot = args.plot or str(run_dir / "cluster-quality.png")
    if plot != "-":
        from gevb.analysis.plots import cluster_figure

        title = f"{c.model} / {c.rule} / {c.sign} on {c.dataset}, epoch {trainer.epoch}: last conv block features"
        save_figure(lambda: cluster_figure(result, y.cpu().numpy(), title), plot)
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"within-class / overall RMS distance of the t-SNE embedding ({len(x)} {args.split} examples): "
            f"{summary['initial_ratio']:.3f} at initialization, {summary['trained_ratio']:.3f} after "
            f"{trainer.epoch} epochs (improvement {summary['improvement']:+.3f})"
        )
    return 0


def command_plot(args: argparse.Namespace) -> int:
    folder = RunFolder(args.run)
    if not folder.holds_run():
        raise ValueError(f"{args.run} holds no gevb run (no config.yaml); pass a --out folder of gevb train")
    metrics = folder.read_metrics()
    if not metrics:
        raise ValueError(f"{args.run} has no evaluation yet; train it further or pass another run")
    from gevb.analysis.plots import run_figure

    run = Run(folder.path, folder.read_config(), metrics, folder.read_result())
    save_figure(lambda: run_figure(run), args.out or str(folder.path / "curves.png"))
    return 0


def command_report(args: argparse.Namespace) -> int:
    print_report(write_report(args.dir))
    return 0


def build_parser() -> Parser:
    parser = Parser(prog="gevb", description="Train and evaluate networks with GEVB, BP and DFA.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train_parser = commands.add_parser(
        "train", help="train a model", description="Train a model (no flags: fc-vec with GEVB on digits)."
    )
    add_config_flags(train_parser)
    train_parser.add_argument("--config", metavar="FILE", help="YAML file of overrides; flags win (default: none)")
    train_parser.add_argument("--out", metavar="DIR", help="run folder to write (default: none, nothing written)")
    train_parser.add_argument("--resume", action="store_true", help="continue the run in --out (default: off)")
    train_parser.add_argument(
        "--dry-run", action="store_true", help="two batches and one eval batch, nothing written (default: off)"
    )
    train_parser.add_argument("--json", action="store_true", help="print the result as one JSON line (default: off)")
    train_parser.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines (default: off)")
    train_parser.set_defaults(handler=command_train)

    eval_parser = commands.add_parser("eval", help="evaluate a saved run", description="Train/test error of a run.")
    eval_parser.add_argument("run", metavar="RUN_DIR_OR_CHECKPOINT")
    eval_parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    eval_parser.add_argument("--data-dir", metavar="DIR", help="folder holding the data set (default: as trained)")
    eval_parser.add_argument("--download", action="store_true", help="fetch the data set if missing (default: off)")
    eval_parser.add_argument("--json", action="store_true", help="print the result as one JSON line (default: off)")
    eval_parser.set_defaults(handler=command_eval)

    grid = commands.add_parser(
        "reproduce",
        help="run the paper's 24-configuration grid on one data set",
        description="Train {FC, Conv, LC} x {vectorized, conventional} x {nonneg, mixed} x {GEVB or DFA, BP} "
        "for several seeds under the paper's protocol (SPEC §7), one run folder each. Finished runs are "
        "skipped and unfinished ones resumed, so the command can be killed and restarted at any time.",
    )
    grid.add_argument("--dataset", required=True, choices=DATASETS, help="data set of the grid (required)")
    grid.add_argument("--out", metavar="DIR", help="folder of the run folders (default: runs/DATASET)")
    grid.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 per configuration (default: 5)")
    grid.add_argument("--epochs", type=int, help="most epochs per run (default: 200)")
    grid.add_argument("--eval-every", type=int, help="evaluate every N epochs and at the end (default: 10)")
    grid.add_argument(
        "--models", type=name_list, default=GRID_MODELS, metavar="M,M,...",
        help=f"keep these architectures (default: {','.join(GRID_MODELS)})",
    )  # fmt: skip
    grid.add_argument(
        "--rules", type=name_list, default=GRID_RULES, metavar="R,R,...",
        help=f"keep these rules (default: {','.join(GRID_RULES)})",
    )  # fmt: skip
    grid.add_argument(
        "--signs", type=name_list, default=SIGNS, metavar="S,S,...", help=f"keep these (default: {','.join(SIGNS)})"
    )
    grid.add_argument(
        "--track-alignment", action=argparse.BooleanOptionalAction, default=True,
        help="record each layer's angle to BP at every evaluation (default: on)",
    )  # fmt: skip
    grid.add_argument("--shard", metavar="I/N", help="run only the I-th of N interleaved slices (default: all)")
    grid.add_argument("--list", action="store_true", help="print the runs and their status, train nothing")
    grid.add_argument("--config", metavar="FILE", help="YAML overrides of the protocol, e.g. lr (default: none)")
    grid.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: auto)")
    grid.add_argument("--data-dir", metavar="DIR", help="folder holding the data set's files (default: search)")
    grid.add_argument("--download", action="store_true", default=None, help="fetch the data set if missing")
    grid.add_argument("--quiet", action="store_true", help="no progress bar or per-run lines (default: off)")
    grid.set_defaults(handler=command_reproduce)

    report = commands.add_parser(
        "report",
        help="tabulate and plot a folder of runs",
        description="Write results.csv, table.md (the paper's layout, published values beside ours) and "
        "curves-DATASET.png (needs the plots extra) into DIR, the --out folder of gevb reproduce.",
    )
    report.add_argument("dir", metavar="DIR")
    report.set_defaults(handler=command_report)

    width = commands.add_parser(
        "width-scaling",
        help="angle between GEVB and BP updates against width, at initialization",
        description="For each hidden width and seed, a fresh network's per-layer angle between its rule's update "
        "and the BP gradient on one batch: GEVB in the nonneg and mixed VNN, DFA in the conventional network "
        "(SPEC §6). Prints a table and the fitted log-log slopes; --json ends with one JSON object.",
    )
    width.add_argument("--model", default="fc-vec", choices=("fc-vec", "conv-vec", "lc-vec"), help="(default: fc-vec)")
    width.add_argument(
        "--widths", type=widths_list, metavar="N,N,...",
        help="hidden widths to try (default: 64..2048 doubling for fc-vec, 16..256 conv-vec, 16..128 lc-vec)",
    )  # fmt: skip
    width.add_argument("--seeds", type=int, default=3, help="fresh networks per width (default: 3)")
    width.add_argument("--dataset", default="digits", choices=DATASETS, help="inputs of the batch (default: digits)")
    width.add_argument("--batch-size", type=int, default=128, help="examples in the batch (default: 128)")
    width.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    width.add_argument("--data-dir", metavar="DIR", help="folder holding the data set's files (default: search)")
    width.add_argument("--download", action="store_true", help="fetch the data set if missing (default: off)")
    width.add_argument(
        "--plot", metavar="FILE", default="width-scaling-{model}.png",
        help="log-log figure to write; empty for none (default: width-scaling-{model}.png)",
    )  # fmt: skip
    width.add_argument("--json", action="store_true", help="end with the full data as one JSON line (default: off)")
    width.add_argument("--quiet", action="store_true", help="no per-width lines (default: off)")
    width.set_defaults(handler=command_width_scaling)

    sign = commands.add_parser(
        "sign-check",
        help="fraction of weights whose update opposes the BP gradient, per example",
        description="Per example (batch of one), the fraction of each layer's weights where the rule's update and "
        "the BP gradient have opposite signs (SPEC §6): 0 for fully connected nonneg VNNs under GEVB. Checks a "
        "saved run, or a fresh model built from the flags.",
    )
    sign.add_argument("run", nargs="?", metavar="RUN_DIR_OR_CHECKPOINT", help="a saved run (default: a fresh model)")
    sign.add_argument("--model", default="fc-vec", choices=ARCHITECTURES, help="fresh model (default: fc-vec)")
    sign.add_argument("--rule", choices=tuple(RULES), help="fresh model's rule (default: gevb, or dfa if conventional)")
    sign.add_argument("--sign", default="nonneg", choices=SIGNS, help="fresh model's sign regime (default: nonneg)")
    sign.add_argument("--seed", type=int, default=0, help="fresh model's seed (default: 0)")
    sign.add_argument("--dataset", default="digits", choices=DATASETS, help="fresh model's data (default: digits)")
    sign.add_argument("--examples", type=int, default=64, help="first N training examples (default: 64)")
    sign.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    sign.add_argument("--data-dir", metavar="DIR", help="folder holding the data set's files (default: search)")
    sign.add_argument("--download", action="store_true", help="fetch the data set if missing (default: off)")
    sign.add_argument("--json", action="store_true", help="print the result as one JSON line (default: off)")
    sign.set_defaults(handler=command_sign_check)

    clusters = commands.add_parser(
        "cluster-quality",
        help="t-SNE cluster quality of the last conv block's features, before and after training",
        description="The paper's t-SNE analysis (SPEC §7): features of the last convolutional block at "
        "initialization and after training, PCA then 2-D t-SNE, and the ratio of mean within-class to overall "
        "RMS distance (lower is better separated). Writes a scatter figure.",
    )
    clusters.add_argument("run", metavar="RUN_DIR_OR_CHECKPOINT", help="a saved conv or lc run")
    clusters.add_argument("--examples", type=int, default=1000, help="first N examples of the split (default: 1000)")
    clusters.add_argument("--split", default="test", choices=("test", "train"), help="(default: test)")
    clusters.add_argument(
        "--plot", metavar="FILE", help="figure to write, - for none (default: RUN_DIR/cluster-quality.png)"
    )
    clusters.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    clusters.add_argument("--data-dir", metavar="DIR", help="folder holding the data set (default: as trained)")
    clusters.add_argument("--download", action="store_true", help="fetch the data set if missing (default: off)")
    clusters.add_argument("--json", action="store_true", help="print the result as one JSON line (default: off)")
    clusters.set_defaults(handler=command_cluster_quality)

    plot = commands.add_parser(
        "plot",
        help="learning and alignment curves of one run",
        description="Draw a run's error against epoch and, if it was trained with --track-alignment, every "
        "layer's signal and update angle to BP (needs the plots extra).",
    )
    plot.add_argument("run", metavar="RUN_DIR")
    plot.add_argument("--out", metavar="FILE", help="figure to write (default: RUN_DIR/curves.png)")
    plot.set_defaults(handler=command_plot)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``gevb`` command line; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except BrokenPipeError:  # output piped into e.g. `head`, which has closed it: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ValueError, OSError) as error:
        if os.environ.get("GEVB_TRACEBACK"):
            raise
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"gevb {args.command}: error: {message}", file=sys.stderr)
        return 2
    except NonFiniteError as error:
        print(f"gevb {args.command}: error: {error}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print(f"gevb {args.command}: interrupted; continue a run with --out DIR --resume", file=sys.stderr)
        return 130


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
