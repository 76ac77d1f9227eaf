"""``--executor slurm`` of ``gevb reproduce`` and ``gevb tune``: its flags, the command every array task runs (the
command's own flags, as given), and the wait for the jobs (docs/cluster.md)."""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from gevb.cli.common import Number, shown
from gevb.intervals import COUNT
from gevb.slurm import SlurmOptions, batch_script, submit, wait_for, write_script

# the flags of the executor itself, never passed on to a task
EXECUTOR_DESTS = frozenset(
    {"executor", "tasks", "partition", "time", "cpus_per_task", "gpus_per_task", "sbatch_args", "wait", "dry_run"}
)


TIME_FORMATS = re.compile(r"(\d+-)?\d+(:\d+){0,2}|infinite|unlimited", re.IGNORECASE)  # sbatch --time's forms


def slurm_word(text: str) -> str:
    """An argparse ``type``: a Slurm name (partition, ...) or a study name: no spaces, not empty."""
    if not text or any(character.isspace() for character in text) or not text.isprintable():
        raise argparse.ArgumentTypeError(f"expected a name without spaces, got {shown(text)}")
    return text


def slurm_time(text: str) -> str:
    """An argparse ``type``: a time limit as sbatch takes it (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM:SS, infinite)."""
    if not TIME_FORMATS.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected a time limit such as 30, 4:00:00 or 2-12:00:00, got {shown(text)}")
    return text


def sbatch_args(text: str) -> str:
    """An argparse ``type``: more sbatch options, shell-quoted; not those gevb sets itself."""
    try:
        words = shlex.split(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{shown(text)} is not a valid argument list ({error})") from None
    if not words:
        raise argparse.ArgumentTypeError("expected sbatch options such as --account=lab, got none")
    own = [word for word in words if word.split("=")[0] in ("--array", "--dependency", "--parsable", "--output")]
    if own:
        raise argparse.ArgumentTypeError(f"{own[0]} is set by gevb itself; leave it out")
    return text


def add_executor_flags(parser: argparse.ArgumentParser, tasks_default: str) -> None:
    """The executor's flags (one group in ``--help``)."""
    group = parser.add_argument_group("where the work runs (docs/cluster.md)")
    group.add_argument(
        "--executor", choices=("local", "slurm"), default="local",
        help="local: in this process and its --jobs; slurm: as a Slurm job array, one task per share (default: local)",
    )  # fmt: skip
    group.add_argument("--tasks", type=Number(COUNT), metavar="N", help=f"array tasks (default: {tasks_default})")
    group.add_argument("--partition", type=slurm_word, metavar="NAME", help="Slurm partition (default: the cluster's)")
    group.add_argument(
        "--time", type=slurm_time, metavar="LIMIT", help="time limit per task, e.g. 4:00:00 (default: the partition's)"
    )
    group.add_argument(
        "--cpus-per-task", type=Number(COUNT), metavar="N", help="CPUs per task (default: the cluster's)"
    )
    group.add_argument("--gpus-per-task", type=Number(COUNT), metavar="N", help="GPUs per task (default: none)")
    group.add_argument(
        "--sbatch-args",
        type=sbatch_args,
        metavar="ARGS",
        help='more sbatch arguments for every job, e.g. --sbatch-args="--account=lab --qos=low"',
    )
    group.add_argument(
        "--wait", action="store_true", help="block until the jobs have ended, with a progress line (default: return)"
    )
    group.add_argument("--dry-run", action="store_true", help="print the batch scripts; submit nothing")


def slurm_options(args: argparse.Namespace) -> SlurmOptions:
    return SlurmOptions(args.partition, args.time, args.cpus_per_task, args.gpus_per_task, args.sbatch_args or "")


def check_executor(args: argparse.Namespace, parser: argparse.ArgumentParser, local: frozenset = frozenset()) -> None:
    """Refuse executor flags without ``--executor slurm`` (they would do nothing), but those in ``local``."""
    if args.executor == "slurm":
        return
    for action in parser._actions:
        if action.dest in EXECUTOR_DESTS - {"executor"} - local and getattr(args, action.dest) != action.default:
            raise ValueError(
                f"{action.option_strings[0]} applies to --executor slurm only; add it or leave the flag out"
            )


def given_flags(parser: argparse.ArgumentParser, args: argparse.Namespace, leave_out: Sequence[str]) -> list[str]:
    """The command line that gives ``parser`` the values ``args`` holds, for every option not in ``leave_out``
    whose value is not its default: what each array task is told, whatever the spelling the user typed."""
    flags = []
    for action in parser._actions:
        if not action.option_strings or action.dest in leave_out or action.dest == "help":
            continue
        value, default = getattr(args, action.dest, action.default), action.default
        if value == default or (is_sequence(value) and is_sequence(default) and list(value) == list(default)):
            continue
        name = next(option for option in action.option_strings if option.startswith("--"))
        if isinstance(action, argparse.BooleanOptionalAction):
            flags.append(name if value else f"--no-{name[2:]}")
        elif action.nargs == 0:  # store_true
            flags.append(name)
        else:
            flags += [name, ",".join(map(str, value)) if is_sequence(value) else str(value)]
    return flags


def is_sequence(value: object) -> bool:
    return isinstance(value, list | tuple)


def gevb_command(subcommand: str, flags: Sequence[str]) -> str:
    """The shell line that runs ``gevb SUBCOMMAND FLAGS`` with this Python (the environment gevb is installed in,
    which a cluster's nodes share with its login node)."""
    return shlex.join([sys.executable, "-m", "gevb", subcommand, *flags])


def submit_jobs(
    name: str,
    slurm: Path,
    options: SlurmOptions,
    task: tuple[str, str],
    then: str,
    dry_run: bool,
) -> tuple[str, str] | None:
    """Write and submit the array (``task``: its ``--array`` indices and its command line) and the job that runs
    ``then`` once the array has ended, whatever its tasks' fate (``afterany``); their scripts and logs in
    ``slurm``. Return (array id, follow-up id), or print both scripts and return None for a dry run."""
    array, command = task
    array_script = (slurm / f"{name}.sbatch", batch_script(name, command, slurm, options.directives(), array=array))
    then_script = (slurm / f"{name}-then.sbatch", batch_script(f"{name}-then", then, slurm, options.directives(False)))
    if dry_run:
        extra = f" {options.extra}" if options.extra else ""
        for path, text in (array_script, then_script):
            print(f"# {path} (submitted with: sbatch{extra} {path.name})\n{text}")
        return None
    array_id = submit(write_script(*array_script), options)
    return array_id, submit(write_script(*then_script), options, after=array_id)


def follow(
    command: str, ids: tuple[str, str], wait: bool, progress: Callable[[], str], log: Callable[[str], None]
) -> int | None:
    """With ``wait``, follow the jobs until both have left the queue (None), or until Ctrl-C, which stops the
    waiting, not the jobs (130). Without, say how to follow them (0)."""
    follow_up = f"squeue --jobs={','.join(ids)}; cancel them with: scancel {' '.join(ids)}"
    if not wait:
        log(f"follow them with: {follow_up}")
        return 0
    try:
        wait_for(list(ids), progress, log)
    except KeyboardInterrupt:
        print(f"gevb {command}: stopped waiting; the jobs go on: {follow_up}", file=sys.stderr)
        return 130
    return None
