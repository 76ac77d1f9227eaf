"""Pieces every ``gevb`` subcommand shares: one-line argparse errors, list parsing, output streams, figures."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Callable
from typing import Any

from tqdm import tqdm

from gevb.data import DATASETS
from gevb.files import atomic_file

DATASET_METAVAR = "|".join(DATASETS) + "|FILE.npz"  # what every --dataset takes
MODEL_METAVAR = "NAME|FILE.yaml"  # a registered architecture or a file describing one (docs/architectures.md)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (status 2)."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def widths_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 1024,512, got {text!r}") from None


def name_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def emitters(as_json: bool, quiet: bool) -> tuple[Callable[[str], None], Callable[[str], None]]:
    """(per-evaluation log, final line printer). With --json, logs go to stderr so stdout is pure JSON."""
    stream = sys.stderr if as_json else sys.stdout

    def log(line: str) -> None:
        if not quiet:
            tqdm.write(line, file=stream)

    return log, print


def save_figure(make: Callable[[], Any], path: str) -> None:
    """Draw and save a figure to ``path`` atomically, or say how to get matplotlib."""
    if importlib.util.find_spec("matplotlib") is None:
        print(f"note: no figure written ({path}): pip install 'gevb[plots]'", file=sys.stderr)
        return
    with atomic_file(path) as file:
        make().savefig(file, format="png", dpi=120)
    print(f"wrote {path}", file=sys.stderr)


def add_data_flags(parser: argparse.ArgumentParser, data_dir_default: str = "search") -> None:
    """--device, --data-dir and --download, for commands that load a data set."""
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument(
        "--data-dir", metavar="DIR", help=f"folder holding the data set's files (default: {data_dir_default})"
    )
    parser.add_argument("--download", action="store_true", help="fetch the data set if missing (default: off)")
