"""Pieces every ``gevb`` subcommand shares: one-line argparse errors, the argparse ``type`` of every kind of
value (bounded numbers, lists, paths, devices), output streams, figures."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from gevb.config import Interval, check_device
from gevb.data import DATASETS
from gevb.files import atomic_file

DATASET_METAVAR = "|".join(DATASETS) + "|FILE.npz"  # what every --dataset takes
MODEL_METAVAR = "NAME|FILE.yaml"  # a registered architecture or a file describing one (docs/architectures.md)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (status 2)."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def shown(text: str) -> str:
    """A value given on the command line, quoted for a message, the middle of a long one left out."""
    return repr(text) if len(text) <= 40 else f"{text[:16]!r}...{text[-8:]!r} ({len(text)} characters)"


@dataclass(frozen=True)
class Number:
    """An argparse ``type``: an integer (``kind=int``) or float in ``interval``; with ``auto``, also the word
    auto (None). Its error, which argparse puts after "argument --NAME: ", says the range."""

    interval: Interval
    kind: type = int
    auto: bool = False

    def __call__(self, text: str) -> float | None:
        if self.auto and text == "auto":
            return None
        try:
            value = self.kind(text)
        except ValueError:  # not a number, or an integer of over 4300 digits, which int() refuses
            value = None
        if value is None or value not in self.interval:
            if self.kind is int:  # the range, even for text that is no number
                wanted = f"{'auto or ' if self.auto else ''}an integer {self.interval}"
            else:
                wanted = "a number" if value is None else str(self.interval)
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {shown(text)}")
        return value


@dataclass(frozen=True)
class IntList:
    """An argparse ``type``: comma-separated integers, each in ``interval``, none empty; with ``unique``, none
    repeated (a set of values to try, where hidden widths per layer may repeat)."""

    interval: Interval
    unique: bool = False

    def __call__(self, text: str) -> list[int]:
        expected = "expected comma-separated integers like 1024,512"
        parts = text.split(",")
        if not all(part.strip() for part in parts):
            raise argparse.ArgumentTypeError(f"{expected}, none empty; got {shown(text)}")
        values = []
        for part in parts:
            try:
                values.append(Number(self.interval)(part))
            except argparse.ArgumentTypeError:
                each = f"{expected}, each {self.interval}; got {shown(part)} in {shown(text)}"
                raise argparse.ArgumentTypeError(each) from None
        if self.unique:
            _check_unique(text, values)
        return values


def name_list(text: str) -> list[str]:
    """An argparse ``type``: comma-separated names, none empty, none repeated."""
    names = [part.strip() for part in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected comma-separated names like a,b with none empty, got {shown(text)}")
    _check_unique(text, names)
    return names


def _check_unique(text: str, values: list) -> None:
    seen = set()
    for value in values:
        if value in seen:
            raise argparse.ArgumentTypeError(f"{value} is given twice in {shown(text)}; give each once")
        seen.add(value)


@dataclass(frozen=True)
class InputPath:
    """An argparse ``type``: a file or folder the command reads (its files end in ``suffix``, e.g. .yaml;
    the reader names it in any error). The empty path, which would mean no file or the current folder, is refused."""

    suffix: str = ""

    def __call__(self, text: str) -> str:
        return path_text(text)


def path_text(text: str) -> str:
    """An argparse ``type``: a path, not the empty one (which argparse would pass on as the current folder)."""
    if not text:
        raise argparse.ArgumentTypeError("expected a path, got ''")
    return text


def device_name(text: str) -> str:
    """An argparse ``type``: auto, cpu, cuda or cuda:N (``gevb.config.check_device``)."""
    try:
        return check_device(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def emitters(as_json: bool, quiet: bool) -> tuple[Callable[[str], None], Callable[[str], None]]:
    """(per-evaluation log, final line printer). With --json, logs go to stderr so stdout is pure JSON."""
    stream = sys.stderr if as_json else sys.stdout

    def log(line: str) -> None:
        if not quiet:
            tqdm.write(line, file=stream)

    return log, print


FIGURE_FORMATS = ("png", "pdf", "svg")  # what --plot writes, chosen by the file's extension


def figure_format(path: str) -> str:
    """The format of the figure file ``path``, from its extension, or a ValueError naming the allowed ones."""
    kind = Path(path).suffix.lower().removeprefix(".")
    if kind not in FIGURE_FORMATS:
        allowed = ", ".join(f".{name}" for name in FIGURE_FORMATS[:-1]) + f" or .{FIGURE_FORMATS[-1]}"
        raise ValueError(f"a figure file must end in {allowed} (its format), got {shown(path)}")
    return kind


def figure_file(text: str) -> str:
    """An argparse ``type``: a figure to write (``figure_format``), or - for none."""
    if text == "-":
        return text
    try:
        figure_format(path_text(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def check_figure(path: str) -> str:
    """The format of ``path`` (``figure_format``), once its folder is known to exist: checked before any work."""
    kind = figure_format(path)
    folder = Path(path).parent
    if not folder.is_dir():
        missing = f"cannot write figure {path}: folder {folder} does not exist"
        raise ValueError(f"{missing}; create it or choose another --plot")
    return kind


def save_figure(make: Callable[[], Any], path: str) -> None:
    """Draw and save a figure to ``path`` atomically, in the format of its extension (``check_figure``), or
    say how to get matplotlib. Every command's --plot is written here."""
    kind = check_figure(path)
    if importlib.util.find_spec("matplotlib") is None:
        print(f"note: no figure written ({path}): pip install 'gevb[plots]'", file=sys.stderr)
        return
    figure = make()
    try:
        with atomic_file(path) as file:
            figure.savefig(file, format=kind, dpi=120)
    except OSError as error:  # e.g. no permission: name the figure, not the temporary file beside it
        raise ValueError(f"cannot write figure {path}: {error.strerror or error}; choose another --plot") from None
    print(f"wrote {path}", file=sys.stderr)


def data_flags_given(args: argparse.Namespace) -> set[str]:
    """The names of the flags of ``add_data_flags`` that were given (for ``gevb.config.check_applies``)."""
    return {name for name in ("data_dir", "download") if getattr(args, name)}


def add_data_flags(parser: argparse.ArgumentParser, data_dir_default: str = "search") -> None:
    """--device, --data-dir and --download, for commands that load a data set."""
    parser.add_argument("--device", type=device_name, default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument(
        "--data-dir", type=path_text, metavar="DIR", help=f"folder holding the data set's files (default: "
        f"{data_dir_default})",
    )  # fmt: skip
    parser.add_argument("--download", action="store_true", help="fetch the data set if missing (default: off)")
