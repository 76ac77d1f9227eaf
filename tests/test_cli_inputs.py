"""Bad input, by class, for every value of every subcommand, walked from the argparse parsers themselves.

Each value an option or positional takes gets the bad values of its ``type`` (out of range, empty, not a
number, a repeated or empty list element; for a file the command reads: binary, latin-1, a folder, a
missing path, no permission), and each must end the command with exit status 2 and one line on stderr
that names the option (or, for a file, the file). A new option is tried the moment it is added; one whose
type has no bad values here fails ``test_every_value_has_a_type_with_bad_values`` until it gets some.
"""

from __future__ import annotations

import builtins
import errno
import io
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gevb.cli import build_parser, main
from gevb.cli.cluster import sbatch_args, slurm_time, slurm_word
from gevb.cli.common import InputPath, IntList, Number, device_name, figure_file, name_list, path_text
from gevb.cli.experiments import shard_part
from gevb.cli.tune import range_text
from gevb.config import RANGES, SEED_COUNT, Interval

COMMANDS = build_parser()._subparsers._group_actions[0].choices  # subcommand name -> its parser

# What each subcommand needs besides the value tried, to get past its required arguments and, should a bad
# value be accepted, to do little (a dry run, a listing, one tiny network). {run} is the command's positional
# (a run folder, or a folder of runs): a missing path when an option is tried, so that an option's bad value
# must be refused before any run is read.
NEEDS = {
    "train": ["--dry-run", "--device", "cpu"],
    "eval": ["{run}"],
    "reproduce": ["--dataset", "digits", "--list", "--out", "{folder}"],
    "report": ["{run}"],
    "width-scaling": ["--widths", "4,8", "--seeds", "1", "--batch-size", "4", "--plot", "-", "--device", "cpu"],
    "sign-check": ["--examples", "1", "--device", "cpu"],
    "summary": ["--device", "cpu"],
    "cluster-quality": ["{run}"],
    "plot": ["{run}"],
    "tune": ["--trials", "1", "--dry-run", "--device", "cpu"],
}

# The files and folders of the file cases, made once in a temporary folder (``files``); {name} in a value
# is replaced by its path. Each ends in the suffix of the files the option reads (.yaml, .npz, .pt).
FILES = {
    "binary": bytes(range(256)) * 4,  # no text, no zip archive, no pickle
    "latin1": "epochs: 2\n# café\n".encode("latin-1"),  # text, but not UTF-8
    "noperm": b"{}\n",  # valid YAML, unreadable: mode 000 (simulated for root, who may read it anyway)
}
FOLDER, MISSING = "folder", "missing"


def number_values(parse: Number) -> list[str]:
    """Out of range (each side, far beyond), not a number, empty."""
    interval = parse.interval
    if parse.kind is int:
        beyond = [interval.low - 1, interval.high + 1, 10**30, -(10**30)]
        values = [str(n) for n in beyond if n not in interval] + ["9" * 5000, "1.5", "abc", ""]
    else:
        ends = [(interval.low, interval.open_low), (interval.high, interval.open_high)]
        outside = [n for n, open_ in ends if open_ and math.isfinite(n)] + [interval.low - 1]
        values = [repr(float(n)) for n in outside] + ["nan", "inf", "-inf", "1e999", "abc", ""]
    return values


def int_list_values(parse: IntList) -> list[str]:
    low, high = parse.interval.low, parse.interval.high
    values = ["", ",", "8,", ",8", "8,,6", "8;6", "abc", f"{low - 1},8", f"8,{high + 1}", f"8,{10**30}"]
    return values + ["8,8"] * parse.unique


def file_values(parse: InputPath) -> list[str]:
    return [f"{{{name}}}" for name in [*FILES, FOLDER, MISSING]] + [""]


BAD_VALUES = {  # the kinds of value an option takes (its argparse type), each with its bad values
    Number: number_values,
    IntList: int_list_values,
    InputPath: file_values,
    name_list: lambda parse: ["", ",", "a,", ",a", "a,,b", "a,a"],
    # Exempt but for the empty path (which would mean the current folder): a path the command writes (--out)
    # or a folder it searches or downloads into (--data-dir), where any other path may be right; a figure (--plot)
    # also needs an extension that names its format.
    path_text: lambda parse: [""],
    figure_file: lambda parse: ["", "figure.txt", "figure"],  # a figure's format follows its extension
    device_name: lambda parse: ["", "tpu", "cuda:x", "cuda:128", "cpu:0", "cuda:0:1"],
    shard_part: lambda parse: ["", "1", "0/3", "4/3", "1/0", "-1/2", "a/b", "1/2/3", f"1/{10**30}x"],
    slurm_word: lambda parse: ["", "two words", "tab\there", "bell\a"],
    slurm_time: lambda parse: ["", "abc", "1:2:3:4", "-5", "4h", "1-"],
    sbatch_args: lambda parse: ["", '"unclosed', "--array=1-3", "--dependency afterok:1", "--output=x.log"],
    range_text: lambda parse: ["", "lr", "lr=1", "lr=2:1", "lr=0:1", "lr=a:b", "lr=1e-3:inf", "lr=1:2:3"],
}


def bad_values(action) -> list[str] | None:
    """The bad values of ``action``'s type, or None for a type that has none here."""
    if action.choices is not None:
        return ["", "no-such-choice"]
    kind = BAD_VALUES.get(type(action.type), BAD_VALUES.get(action.type))
    return None if kind is None else kind(action.type)


def value_actions():
    """(subcommand, action) for every option and positional that takes a value."""
    for command, parser in COMMANDS.items():
        for action in parser._actions:
            if action.nargs != 0 and action.dest != "help":
                yield command, action


def cases():
    for command, action in value_actions():
        for value in bad_values(action) or []:
            name = action.option_strings[0] if action.option_strings else action.metavar
            yield pytest.param(command, action, value, id=f"{command} {name}={value[:24]}")


def test_every_value_has_a_type_with_bad_values():
    """An option declared without a type (or with one unknown here) would escape every check below."""
    untried = [f"{command} {action.dest}" for command, action in value_actions() if not bad_values(action)]
    assert not untried, f"give these a type from gevb.cli.common, or bad values in BAD_VALUES: {untried}"
    assert set(NEEDS) == set(COMMANDS)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    for suffix in ("", ".yaml", ".npz", ".pt"):
        for name, data in FILES.items():
            (folder / f"{name}{suffix}").write_bytes(data)
            (folder / f"{name}{suffix}").chmod(0 if name == "noperm" else 0o644)
        (folder / f"{FOLDER}{suffix}").mkdir()
    return folder


@pytest.fixture
def no_permission(monkeypatch, files):
    """As root, whom mode 000 does not stop, opening a noperm file raises what it would for anyone else."""
    if os.geteuid() != 0:
        return
    for module, real in ((builtins, builtins.open), (io, io.open)):

        def refusing(file, *args, real=real, **kwargs):
            if isinstance(file, str | os.PathLike) and Path(file).name.startswith("noperm"):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(file))
            return real(file, *args, **kwargs)

        monkeypatch.setattr(module, "open", refusing)


def argv_for(command: str, action, value: str, files: Path) -> tuple[list[str], str]:
    """The command line that tries ``value`` for ``action``, and the path a file value stands for ('' if none)."""
    path = str(files / (value[1:-1] + action.type.suffix)) if value.startswith("{") else ""
    given = path or value
    needs = [part.replace("{folder}", str(files / FOLDER)) for part in NEEDS[command]]
    if action.option_strings:
        needs = [part.replace("{run}", str(files / MISSING)) for part in needs]
        return [command, *needs, f"{action.option_strings[0]}={given}"], path
    if "{run}" in needs:
        return [command, *[given if part == "{run}" else part for part in needs]], path
    return [command, given, *needs], path


@pytest.mark.parametrize(("command", "action", "value"), list(cases()))
def test_a_bad_value_exits_2_with_one_line_naming_it(capsys, files, no_permission, command, action, value):
    argv, path = argv_for(command, action, value, files)
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse's errors
        status = exit_.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2 and len(lines) == 1 and "Traceback" not in err, (argv, status, err[-2000:])
    names = [path] if path else action.option_strings or [action.metavar]
    assert any(name in lines[0] for name in names), (argv, lines[0])


@pytest.mark.parametrize("flag", ["--seed", "--lr", "--widths", "--device", "--config", "--model", "--dataset"])
def test_a_value_that_is_not_utf8_exits_2_with_one_line(monkeypatch, flag):
    """Arguments arrive as bytes; Python decodes undecodable ones to surrogate escapes ("\\udcff"), and its
    stderr writes them back as backslash escapes, as here."""
    stderr = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace", write_through=True)
    monkeypatch.setattr(sys, "stderr", stderr)
    value = os.fsdecode(b"8,\xff.yaml" if flag == "--widths" else b"\xff.npz" if flag == "--dataset" else b"\xff.yaml")
    try:
        status = main(["train", "--dry-run", "--device", "cpu", f"{flag}={value}"])
    except SystemExit as exit_:
        status = exit_.code
    err = stderr.buffer.getvalue().decode()
    assert status == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert flag in err or "\\udcff" in err, err


def test_the_command_prints_an_undecodable_argument_in_one_line():
    done = subprocess.run(
        [sys.executable, "-m", "gevb", "train", "--dry-run", "--config", b"\xff.yaml"], capture_output=True, timeout=120
    )
    err = done.stderr.decode()
    assert done.returncode == 2 and err.count("\n") == 1 and "config file \\udcff.yaml" in err, err


@pytest.mark.parametrize("command", ["reproduce", "width-scaling"])
def test_the_largest_seed_count_is_refused_for_memory_in_one_line(capsys, tmp_path, command):
    """2**64 seeds fit the generator, but not a list of runs or an array of angles (the grid's list once grew
    until the system killed it)."""
    needs = ["--dataset", "digits", "--list", "--out", str(tmp_path)] if command == "reproduce" else NEEDS[command]
    assert main([command, *needs, f"--seeds={SEED_COUNT.high}"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--seeds" in lines[0] and "lower --seeds" in lines[0], lines


@pytest.mark.parametrize("key", list(RANGES))
def test_a_config_file_value_out_of_range_exits_2_with_one_line_naming_it(capsys, tmp_path, key):
    """The library's own check (TrainConfig.validate), as a YAML file meets it: one line naming the key."""
    interval = RANGES[key]
    config = tmp_path / "config.yaml"
    for value in [interval.high + 1, -(10**30)] if isinstance(interval.high, int) else [".nan", ".inf", -1]:
        config.write_text(f"{key}: {value}\n")
        status = main(["train", "--config", str(config), "--dry-run", "--device", "cpu"])
        lines = capsys.readouterr().err.strip().splitlines()
        assert status == 2 and len(lines) == 1 and f"{key} must be {interval}, got" in lines[0], (value, lines)


def test_interval_text_and_membership():
    assert str(Interval(1, 2**63 - 1)) == "at least 1 and at most 2**63 - 1"
    assert str(Interval(0, 2**64)) == "at least 0 and at most 2**64"
    assert str(Interval(0.0, float("inf"), open_low=True, open_high=True)) == "a positive finite number"
    assert str(Interval(0.0, 1.0, open_high=True)) == "in [0, 1)"
    assert 0 in Interval(0.0, 1.0, open_high=True) and 1 not in Interval(0.0, 1.0, open_high=True)
    assert float("nan") not in Interval(0.0, float("inf"), open_high=True)
