"""An operating-system error is one line naming the path and the fix, never Python's "[Errno N] ..." or torch's C++
assertion, and it says only what is true about what was kept."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import one_thread_env
from gevb.checkpoint import load_checkpoint
from gevb.cli import main

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--widths", "16,12", "--device", "cpu", "--quiet", "--threads", "1"]

FULL_DISK = """
import resource, signal, sys
from gevb.cli import main
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
sys.exit(main(["train", "--epochs", "2", "--widths", "64,64", "--threads", "1", "--out", sys.argv[1], "--device", "cpu",
              "--quiet", *sys.argv[2:]]))
"""


def full_disk(run: Path, *argv: str) -> str:
    """``gevb train --epochs 2 --out run`` (a checkpoint of 590 kB) in a process that can write files of at most
    20 kB: its one error line."""
    command = [sys.executable, "-c", FULL_DISK, str(run), *argv]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=one_thread_env())
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(err) == 1, done.stderr
    assert "enforce fail" not in err[0] and "inline_container" not in err[0] and "[Errno" not in err[0]
    return err[0]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE stands in for a full disk on Linux")
def test_a_full_disk_before_the_first_checkpoint_keeps_nothing_and_says_so(tmp_path):
    run = tmp_path / "new"
    message = full_disk(run)
    assert f"cannot write {run / 'checkpoint.pt'}" in message and "disk" in message
    assert "nothing of this run is kept" in message and "previous checkpoint" not in message
    assert not run.exists()  # the folder it created is gone again, so the same command can start over


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE stands in for a full disk on Linux")
def test_a_full_disk_on_a_resume_keeps_the_previous_checkpoint_and_says_so(tmp_path):
    run = tmp_path / "r"
    assert main(["train", "--epochs", "1", "--widths", "64,64", "--out", str(run), "--device", "cpu", "--quiet"]) == 0
    message = full_disk(run, "--resume")
    assert "checkpoint.pt" in message and "the previous checkpoint is kept" in message
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == 1


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "[Errno" not in err[0] and "Traceback" not in err[0]
    return err[0]


FAILURES = [
    (errno.EROFS, "read-only"),
    (errno.EACCES, "permission"),
    (errno.ENOSPC, "free space"),
    (errno.EDQUOT, "quota"),
]


@pytest.mark.parametrize(("code", "fix"), FAILURES, ids=[errno.errorcode[code] for code, _ in FAILURES])
def test_a_run_folder_that_cannot_be_made_is_one_line_naming_it_and_the_fix(tmp_path, capsys, monkeypatch, code, fix):
    """The folder cannot be created (as on a read-only or full disk): the operating system's error, simulated at
    ``Path.mkdir`` since root may write anywhere here and no test can mount a disk."""
    run = tmp_path / "run"

    def refuse(path, *args, **kwargs):
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(Path, "mkdir", refuse)
    assert main(["train", "--epochs", "1", "--out", str(run), *SMALL]) == 2
    message = one_error_line(capsys)
    assert str(run) in message and fix in message
    assert not run.exists()


def test_a_run_folder_whose_lock_cannot_be_written_keeps_the_run_as_it_was(tmp_path, capsys, monkeypatch):
    """A read-only folder holding a run: its resume says so and changes nothing."""
    run = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--out", str(run), *SMALL]) == 0
    before = {path.name: path.read_bytes() for path in run.iterdir()}
    real_open = os.open

    def read_only(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and Path(path).parent == run:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    assert main(["train", "--epochs", "2", "--out", str(run), "--resume", *SMALL]) == 2
    message = one_error_line(capsys)
    assert str(run) in message and "read-only" in message and "writable" in message
    monkeypatch.undo()
    assert {path.name: path.read_bytes() for path in run.iterdir()} == before


@pytest.mark.parametrize("command", ["train", "reproduce"])
def test_an_out_below_a_file_is_one_line_naming_the_file(tmp_path, capsys, command):
    afile = tmp_path / "afile"
    afile.write_text("mine\n")
    argv = ["--out", str(afile / "run")] + (SMALL if command == "train" else ["--dataset", "digits", "--quiet"])
    assert main([command, *argv, "--epochs", "1"]) == 2
    message = one_error_line(capsys)
    assert f"{afile} is a file" in message
    assert afile.read_text() == "mine\n"
