"""The ``gevb`` command: a thin shell over the library, one module per group of subcommands.

The ``gevb`` process (``run``: the console script and ``python -m gevb``) first makes glibc keep
freed memory (``gevb.memory``) unless ``GEVB_KEEP_FREED_MEMORY=0``; ``main`` alone, as tests and
other programs call it, leaves the process's allocator as it is.

User errors (bad values, missing or corrupt files, a run folder holding another run) exit with
status 2 and one line on stderr (``GEVB_TRACEBACK=1`` shows the traceback instead); a run stopped
by a non-finite loss or weight exits with status 3; Ctrl-C exits with 130 (SIGTERM to a grid: 143).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch

from gevb import __version__
from gevb.cli import analysis, experiments, train, tune
from gevb.cli.common import Parser
from gevb.distributed import leave_process_group
from gevb.faults import NonFiniteError
from gevb.files import system_error_text
from gevb.memory import keep_freed_memory


def build_parser() -> Parser:
    parser = Parser(prog="gevb", description="Train and evaluate networks with GEVB, BP and DFA.")
    parser.add_argument("--version", action="version", version=f"gevb {__version__} (torch {torch.__version__})")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in (train, experiments, analysis, tune):
        group.register(commands)
    return parser


def interrupted_advice(command: str, argv: list[str], out: str | None, dry_run: bool) -> str:
    """What to do after Ctrl-C: for a run with a folder, the exact command that continues it (``argv`` with
    ``--resume``); for a grid, the same command; else what was kept."""
    if command == "train" and (out is None or dry_run):
        return "nothing was saved (a dry run, or no --out): only a run whose folder --out names can be resumed"
    if command == "train":
        again = argv if "--resume" in argv else [*argv, "--resume"]
        finished = (Path(out) / "checkpoint.pt").exists()
        kept = f"{out} keeps the run at its last finished epoch" if finished else f"{out} holds no finished epoch yet"
        return f"{kept}; continue it with: {shlex.join(['gevb', *again])}"
    if command == "reproduce":
        return "run the same command again to continue: finished runs are skipped, unfinished ones resume"
    if command == "tune":
        return "run the same command again to continue: the study goes on, and a trial cut short resumes its run"
    return "files are written atomically, so none is left half-written"


def out_of_memory(error: BaseException) -> str | None:
    """The one-line message for an allocation that failed (``MemoryError``, torch's CPU or CUDA
    allocator, or a tensor whose byte count overflows 64 bits, which no memory holds), or None for any
    other error."""
    text = str(error)
    signs = ("can't allocate memory", "out of memory", "Storage size calculation overflowed")
    if not isinstance(error, MemoryError) and not any(sign in text for sign in signs):
        return None
    asked = re.search(r"allocate (\d+) bytes", text)
    size = f" (an allocation of {int(asked.group(1)) / 2**30:,.1f} GiB failed)" if asked else ""
    return f"out of memory{size}; lower --widths, --batch-size or --eval-batch-size, or use a larger machine"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``gevb`` command line; return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)

    def one_line(message: Warning | str, *ignored: object, **named: object) -> None:
        print(f"gevb {args.command}: warning: {' '.join(str(message).split())}", file=sys.stderr)

    try:
        with warnings.catch_warnings():  # a warning is one line too; the caller's handler comes back after
            warnings.showwarning = one_line
            status = args.handler(args)
        leave_process_group()
        return status
    except BrokenPipeError:  # output piped into e.g. `head`, which has closed it: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ValueError, OSError) as error:
        if os.environ.get("GEVB_TRACEBACK"):
            raise
        message = system_error_text(error) if isinstance(error, OSError) else " ".join(str(error).split())
        print(f"gevb {args.command}: error: {message}", file=sys.stderr)
        return 2
    except NonFiniteError as error:
        print(f"gevb {args.command}: error: {error}", file=sys.stderr)
        return 3
    except (MemoryError, RuntimeError) as error:
        message = out_of_memory(error)
        if message is None or os.environ.get("GEVB_TRACEBACK"):
            raise
        print(f"gevb {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:  # Ctrl-C; a grid's SIGTERM too (``gevb.jobs.Interrupted``)
        advice = interrupted_advice(args.command, argv, getattr(args, "out", None), getattr(args, "dry_run", False))
        print(f"gevb {args.command}: interrupted; {advice}", file=sys.stderr)
        return 128 + getattr(interrupt, "signum", signal.SIGINT)


def run() -> None:
    """Console-script entry point: the allocator policy (docs/design.md, "Memory"), then ``main``."""
    if os.environ.get("GEVB_KEEP_FREED_MEMORY", "1") != "0":
        keep_freed_memory()
    sys.exit(main())
