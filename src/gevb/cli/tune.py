"""``gevb tune``: an Optuna study of a rule's learning rate and options for one (data set, model, rule, sign),
run by local worker processes or Slurm array tasks; the best setting saved for ``gevb reproduce --config``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from gevb.cli.cluster import (
    EXECUTOR_DESTS,
    add_executor_flags,
    check_executor,
    follow,
    gevb_command,
    given_flags,
    slurm_options,
    slurm_word,
    submit_jobs,
)
from gevb.cli.common import InputPath, Number, device_name, emitters, name_list, path_text
from gevb.cli.experiments import protocol_config
from gevb.config import COUNT, RANGES
from gevb.data import DATASETS
from gevb.grid import cpu_cores
from gevb.init import SIGNS
from gevb.intervals import Interval
from gevb.jobs import StopSignals, run_jobs
from gevb.models import ARCHITECTURES
from gevb.rules import RULES
from gevb.runs import check_out
from gevb.slurm import index_ranges, sbatch_program
from gevb.text import counted
from gevb.tuning import (
    PRUNERS,
    Study,
    finished_trials,
    optuna_module,
    parse_range,
    retry_abandoned,
    search_space,
    work,
    write_best,
)


def range_text(text: str) -> tuple[str, tuple[float, float]]:
    """An argparse ``type``: ``--range NAME=LO:HI`` as ``gevb.tuning.parse_range`` reads it."""
    try:
        return parse_range(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix("--range ")) from None


def study_of(args: argparse.Namespace) -> Study:
    """The study the flags describe (its settings checked)."""
    base, _ = protocol_config(args, ("epochs", "eval_every", "device", "data_dir"))
    base = base.replace(model=args.model, rule=args.rule, sign=args.sign, seed=args.seed,
                        val_fraction=args.val_fraction, stop_at_100=False).validate()  # fmt: skip
    if base.threads is None and base.device != "cuda" and args.executor == "local":
        base = base.replace(threads=max(1, cpu_cores() // args.workers))
    ranges = dict(args.range)
    parameters = tuple(search_space(base.rule, args.params, ranges))
    out = Path(args.out or f"runs/tune/{args.dataset}-{args.model}-{base.rule}-{args.sign}")
    name = args.study or f"{args.dataset}-{args.model}-{base.rule}-{args.sign}"
    storage = args.storage or str(out / "study.journal")
    return Study(name, storage, str(out), base, parameters, args.trials, args.pruner, args.seed)


def command_tune(args: argparse.Namespace) -> int:
    optuna_module()  # what to install, before anything else
    check_executor(args, args.parser, local=frozenset({"dry_run"}))
    study = study_of(args)
    out = Path(study.out)
    check_out(out)
    log, _ = emitters(False, args.quiet)
    searched = ", ".join(f"{p.name} in [{p.low:g}, {p.high:g}]" for p in study.parameters)
    plan = f"study {study.name!r} in {study.storage}: {study.trials} trials of {searched}"
    if args.dry_run and args.executor == "local":
        print(f"{plan}, {args.workers} at once, each a run of {study.base.epochs} epochs in {out}/trial-NNNN")
        return 0
    if not args.best_only:
        if args.executor == "slurm" and not args.dry_run:
            sbatch_program()
        if not args.dry_run:
            out.mkdir(parents=True, exist_ok=True)
            again = retry_abandoned(study)
            if again:
                log(f"{counted(again, 'trial')} stopped before its end: queued again, its run resumes")
        if args.executor == "slurm":
            return submit_study(args, study, out, log)
        log(f"{plan}, {args.workers} at once")
        first = args.workers * int(os.environ.get("SLURM_ARRAY_TASK_ID", "0"))  # an array task's workers: their own
        if args.workers == 1:  # sampler seeds, so that no two propose the same first settings
            work(study, first)
        else:
            workers = {i: (study, first + i) for i in range(args.workers)}
            with StopSignals(raising=False) as signals:
                run_jobs(work, args.workers, workers, lambda i, r: None, signals)
    path, setting, measured = write_best(study)
    settings = ", ".join(f"{name} {value:.3g}" for name, value in {**setting, **setting.get("rule_options", {})}.items()
                         if name != "rule_options")  # fmt: skip
    test = f", test error {measured['test_error']:.2f}%" if measured["test_error"] is not None else ""
    base = study.base
    print(
        f"best of {measured['finished']} trials: {settings}: validation error {measured['val_error']:.2f}%{test} "
        f"({measured['run']}); wrote {path}; use it with: gevb reproduce --dataset {base.dataset} --models "
        f"{base.model} --rules {base.rule} --signs {base.sign} --config {path}"
    )
    return 0


def submit_study(args: argparse.Namespace, study: Study, out: Path, log) -> int:
    """``--executor slurm``: ``--tasks`` array tasks, each one worker of the shared study, then ``--best-only``."""
    tasks = args.tasks or 2
    flags = given_flags(args.parser, args, EXECUTOR_DESTS | {"workers", "quiet", "best_only", "out", "storage"})
    flags += ["--out", str(out), "--storage", study.storage, "--quiet"]
    task = gevb_command("tune", [*flags, "--workers", "1"])
    then = gevb_command("tune", [*flags, "--best-only"])
    ids = submit_jobs(f"gevb-tune-{study.name}", out / "slurm", slurm_options(args), (index_ranges(range(1, tasks + 1)),
                      task), then, args.dry_run)  # fmt: skip
    if ids is None:
        return 0
    print(f"submitted {counted(tasks, 'worker task')} (job {ids[0]}) of study {study.name!r} in {study.storage}, "
          f"and the summary (job {ids[1]}) for when they end; logs in {out / 'slurm'}")  # fmt: skip

    def progress() -> str:
        return f"{finished_trials(study.load())}/{study.trials} trials finished"

    status = follow("tune", ids, args.wait, progress, log)
    if status is not None:
        return status
    path, _, measured = write_best(study)
    print(f"best: validation error {measured['val_error']:.2f}% ({measured['run']}); wrote {path}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    tune = commands.add_parser(
        "tune",
        help="tune a rule's learning rate and options (Optuna; the tune extra)",
        description="An Optuna study of the rule's learning rate and declared options for one data set, model and "
        "sign: each trial a run folder trained on the training split less a validation share, scored by its "
        "validation error (never the test split), pruned when hopeless. The best setting is printed and written "
        "to OUT/best.yaml for gevb reproduce --config. Run again to add trials or resume; docs/cluster.md.",
    )
    tune.add_argument("--dataset", default="digits", choices=DATASETS, help="data set (default: digits)")
    tune.add_argument("--model", default="fc-vec", choices=ARCHITECTURES, help="architecture (default: fc-vec)")
    tune.add_argument("--rule", default="gevb", choices=RULES, help="learning rule (default: gevb)")
    tune.add_argument("--sign", default="nonneg", choices=SIGNS, help="weight signs (default: nonneg)")
    tune.add_argument("--trials", type=Number(COUNT), default=20, help="finished trials to reach (default: 20)")
    tune.add_argument("--epochs", type=Number(RANGES["epochs"]), help="most epochs per trial (default: 200)")
    tune.add_argument("--eval-every", type=Number(RANGES["eval_every"]), help="evaluate (and prune) every N epochs")
    tune.add_argument(
        "--val-fraction", type=Number(Interval(0.0, 1.0, open_low=True, open_high=True), float), default=0.1,
        help="share of the training split held out for the objective (default: 0.1)",
    )  # fmt: skip
    tune.add_argument(
        "--params", type=name_list, metavar="P,P,...", help="settings to search (default: lr and the rule's options "
        "that declare a range)",
    )  # fmt: skip
    tune.add_argument(
        "--range", type=range_text, action="append", default=[], metavar="NAME=LO:HI",
        help="search NAME log-uniformly in [LO, HI] instead of its default range (repeatable)",
    )  # fmt: skip
    tune.add_argument("--pruner", choices=PRUNERS, default="median", help="pruning of bad trials (default: median)")
    tune.add_argument(
        "--storage", type=path_text, metavar="URL|FILE",
        help="a database URL (e.g. postgresql://...) or a journal file (default: OUT/study.journal)",
    )  # fmt: skip
    tune.add_argument("--study", type=slurm_word, metavar="NAME", help="study name (default: DATASET-MODEL-RULE-SIGN)")
    tune.add_argument(
        "--workers", type=Number(COUNT), default=1, metavar="N", help="local worker processes (default: 1)"
    )
    tune.add_argument(
        "--seed", type=Number(RANGES["seed"]), default=0, help="seed of every trial's run and the sampler"
    )
    tune.add_argument("--out", type=path_text, metavar="DIR", help="folder of the trials (default: runs/tune/STUDY)")
    tune.add_argument("--config", type=InputPath(".yaml"), metavar="FILE", help="YAML overrides of the protocol")
    tune.add_argument("--device", type=device_name, help="auto, cpu, cuda or cuda:N (default: auto)")
    tune.add_argument("--data-dir", type=path_text, metavar="DIR", help="folder holding the data set's files")
    tune.add_argument("--best-only", action="store_true", help="run no trial: print and write the best so far")
    tune.add_argument("--quiet", action="store_true", help="no progress lines (default: off)")
    add_executor_flags(tune, "2, each a worker")
    tune.set_defaults(handler=command_tune, parser=tune)
