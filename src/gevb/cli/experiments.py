"""``gevb reproduce`` and ``gevb report``: the paper's grid of runs and its tables and figures."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gevb.analysis.report import write_report
from gevb.cli.cluster import (
    EXECUTOR_DESTS,
    add_executor_flags,
    check_executor,
    follow,
    gevb_command,
    given_flags,
    slurm_options,
    submit_jobs,
)
from gevb.cli.common import InputPath, Number, device_name, emitters, name_list, path_text
from gevb.config import (
    COUNT,
    RANGES,
    SEED_COUNT,
    TrainConfig,
    check_applies,
    config_from_mapping,
    given_names,
    read_overrides,
)
from gevb.data import DATASETS, load_dataset
from gevb.grid import GridRun, check_free, grid_runs, parse_shard, run_grid, run_status, shard
from gevb.init import SIGNS
from gevb.paper import GRID_MODELS, GRID_RULES, paper_protocol
from gevb.rules import RULES
from gevb.runs import check_out
from gevb.slurm import TASK_INDEX, index_ranges, sbatch_program
from gevb.text import counted


def shard_part(text: str) -> tuple[int, int]:
    """An argparse ``type``: ``--shard I/N`` as ``gevb.grid.parse_shard`` reads it."""
    try:
        return parse_shard(text)
    except ValueError as error:  # its message starts with the flag, which argparse puts first already
        raise argparse.ArgumentTypeError(str(error).removeprefix("--shard ")) from None


def protocol_config(args: argparse.Namespace, flags: tuple[str, ...]) -> tuple[TrainConfig, set[str]]:
    """The paper's protocol for ``args.dataset``, then ``--config``'s overrides, then the command's ``flags``
    that were given; and the names of every setting so given."""
    overrides = read_overrides(args.config) if args.config else {}
    base = config_from_mapping(overrides, args.config or "", paper_protocol(args.dataset))
    given = {name: getattr(args, name) for name in flags if getattr(args, name) is not None}
    base = config_from_mapping(given, "command line", base)
    return base.replace(dataset=args.dataset), given_names(overrides) | set(given)


def command_reproduce(args: argparse.Namespace) -> int:
    flags = ("epochs", "eval_every", "device", "data_dir", "download", "track_alignment")
    base, given = protocol_config(args, flags)
    runs = grid_runs(base, args.seeds, args.models, args.rules, args.signs)
    check_applies([run.config for run in runs], given)
    check_executor(args, args.parser)
    if args.shard is not None:
        if args.executor == "slurm":
            raise ValueError("--shard and --executor slurm exclude each other: the executor gives each task its shard")
        runs = shard(runs, *args.shard)
    out = Path(args.out or f"runs/{args.dataset}")
    check_out(out)
    if args.list:
        for run in runs:
            print(f"{run.name}\t{run_status(out, run)}")
        return 0
    if args.executor == "slurm":
        return submit_grid(args, runs, out)
    log, _ = emitters(False, args.quiet)
    progress = not args.quiet and sys.stderr.isatty()
    results = run_grid(runs, out, log=log, progress=progress, jobs=args.jobs)
    if args.report:
        print_report(write_report(out), args.quiet)
    failed = [result for result in results if "error" in result]
    if failed:
        print(
            f"gevb reproduce: {counted(len(failed), 'run')} stopped at a non-finite loss or weight (see above)",
            file=sys.stderr,
        )
        return 3
    return 0


def submit_grid(args: argparse.Namespace, runs: list[GridRun], out: Path) -> int:
    """``--executor slurm``: the grid as a job array, task I of N training shard I/N (``--tasks N``, default one
    per run) with this command's flags, and a report job once the array has ended. Only shards with an unfinished
    run are submitted, so the same command resumes a grid; with ``--wait``, it follows the jobs to their end."""
    tasks = min(args.tasks or len(runs), len(runs))
    unfinished = {run.name for run in runs if run_status(out, run) != "done"}
    todo = [index for index in range(1, tasks + 1) if any(run.name in unfinished for run in shard(runs, index, tasks))]
    flags = given_flags(args.parser, args, EXECUTOR_DESTS | {"download", "report", "quiet", "shard", "list", "out"})
    task = gevb_command("reproduce", [*flags, "--out", str(out), "--no-report", "--quiet"])
    task += f' --shard "{TASK_INDEX}/{tasks}"'
    report = gevb_command("report", [str(out)])
    log, _ = emitters(False, args.quiet)
    if not todo:
        log(f"all {counted(len(runs), 'run')} in {out} have finished; nothing to submit")
        print_report(write_report(out), args.quiet)
        return 0
    if not args.dry_run:
        sbatch_program()  # before anything is written or fetched
        check_free(out, runs)
        if args.download:  # once, here: a cluster's nodes often have no internet, and tasks would race
            load_dataset(args.dataset, args.data_dir, True)
    name = f"gevb-{args.dataset}"
    ids = submit_jobs(name, out / "slurm", slurm_options(args), (index_ranges(todo), task), report, args.dry_run)
    if ids is None:
        return 0
    print(
        f"submitted {counted(len(todo), 'array task')} of {tasks} (job {ids[0]}) for the "
        f"{counted(len(unfinished), 'unfinished run')} of {len(runs)}, and the "
        f"report (job {ids[1]}) for when they end; logs in {out / 'slurm'}"
    )

    def finished() -> int:
        return sum(run_status(out, run) == "done" for run in runs)

    status = follow("reproduce", ids, args.wait, lambda: f"{finished()}/{len(runs)} runs finished", log)
    if status is not None:
        return status
    left = len(runs) - finished()
    print_report(write_report(out), args.quiet)
    if left:
        print(
            f"gevb reproduce: {counted(left, 'run')} did not finish (a task failed, ran out of time or was "
            f"cancelled: see its log in {out / 'slurm'}); run the same command again to resume them",
            file=sys.stderr,
        )
        return 1
    return 0


def print_report(report: dict[str, Any], quiet: bool = False) -> None:
    if not quiet:
        print("\n".join(report["tables"].values()))
    if report["skipped"]:
        print(f"note: {report['skipped']}", file=sys.stderr)
    print(f"{counted(report['runs'], 'run')}; wrote {', '.join(report['files'])}")


def command_report(args: argparse.Namespace) -> int:
    print_report(write_report(args.dir))
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    grid = commands.add_parser(
        "reproduce",
        help="run the paper's 24-configuration grid on one data set",
        description="Train {FC, Conv, LC} x {vectorized, conventional} x {nonneg, mixed} x {GEVB or DFA, BP} "
        "for several seeds under the paper's protocol (docs/method.md §7), one run folder each. Finished runs are "
        "skipped and unfinished ones resumed, so the command can be killed and restarted at any time.",
    )
    grid.add_argument("--dataset", default="digits", choices=DATASETS, help="data set of the grid (default: digits)")
    grid.add_argument("--out", type=path_text, metavar="DIR", help="folder of the run folders (default: runs/DATASET)")
    grid.add_argument("--seeds", type=Number(SEED_COUNT), default=5, help="seeds 0..N-1 per configuration (default: 5)")
    grid.add_argument("--epochs", type=Number(RANGES["epochs"]), help="most epochs per run (default: 200)")
    grid.add_argument(
        "--eval-every", type=Number(RANGES["eval_every"]), help="evaluate every N epochs and at the end (default: 10)"
    )
    grid.add_argument(
        "--models", type=name_list, default=GRID_MODELS, metavar="M,M,...",
        help=f"keep these architectures (default: {','.join(GRID_MODELS)})",
    )  # fmt: skip
    grid.add_argument(
        "--rules", type=name_list, default=GRID_RULES, metavar="R,R,...",
        help=f"train these rules where each is defined (default: the paper's, {','.join(GRID_RULES)}; any of "
        f"{','.join(RULES)})",
    )  # fmt: skip
    grid.add_argument(
        "--signs", type=name_list, default=SIGNS, metavar="S,S,...", help=f"keep these (default: {','.join(SIGNS)})"
    )
    grid.add_argument(
        "--track-alignment", action=argparse.BooleanOptionalAction, default=True,
        help="record each layer's angle to BP at every evaluation (default: on)",
    )  # fmt: skip
    grid.add_argument(
        "--jobs", type=Number(COUNT, auto=True), default=None, metavar="N",
        help="train N runs at once, each in its own process (default: auto, as many as the CPU cores hold at "
        "each run's threads; 1 on a GPU)",
    )  # fmt: skip
    grid.add_argument(
        "--shard", type=shard_part, metavar="I/N", help="run only the I-th of N interleaved slices (default: all)"
    )
    grid.add_argument("--list", action="store_true", help="print the runs and their status, train nothing")
    grid.add_argument(
        "--config",
        type=InputPath(".yaml"),
        metavar="FILE",
        help="YAML overrides of the protocol, e.g. lr (default: none)",
    )
    grid.add_argument("--device", type=device_name, help="auto, cpu, cuda or cuda:N (default: auto)")
    grid.add_argument(
        "--data-dir", type=path_text, metavar="DIR", help="folder holding the data set's files (default: search)"
    )
    grid.add_argument("--download", action="store_true", default=None, help="fetch the data set if missing")
    grid.add_argument("--quiet", action="store_true", help="no progress bar or per-run lines (default: off)")
    grid.add_argument(
        "--report", action=argparse.BooleanOptionalAction, default=True,
        help="write the report (gevb report OUT) when the grid ends (default: on)",
    )  # fmt: skip
    add_executor_flags(grid, "one per run")
    grid.set_defaults(handler=command_reproduce, parser=grid)

    report = commands.add_parser(
        "report",
        help="tabulate and plot a folder of runs",
        description="Write results.csv, table.md (the paper's layout, published values beside ours) and "
        "curves-DATASET.png (needs the plots extra) into DIR, the --out folder of gevb reproduce.",
    )
    report.add_argument("dir", type=InputPath(), metavar="DIR")
    report.set_defaults(handler=command_report)
