"""A grid stops as a whole: Ctrl-C or SIGTERM, to its process group or to the grid process alone, ends every job
process within seconds with nothing left behind and no run started after the signal, and the same command then
resumes every run to what an uninterrupted grid gives. A run folder in use by another process, or an --out that is
a file, stops the grid before anything trains."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gevb.cli import main
from gevb.locks import FolderLock
from gevb.runs import RunFolder

RUN_NAMES = ["fc-dfa-nonneg-seed0", "fc-bp-nonneg-seed0", "fc-dfa-nonneg-seed1", "fc-bp-nonneg-seed1"]


def grid_argv(out: Path, epochs: int, jobs: int, config: Path | None = None) -> list[str]:
    """Four small fc runs (DFA and BP, two seeds) of one CPU thread each; ``config`` (default: beside ``out``) is
    written with their widths and threads."""
    config = config or out.parent / "small.yaml"
    config.write_text("widths: [16, 16]\nthreads: 1\n")
    return ["reproduce", "--dataset", "digits", "--out", str(out), "--models", "fc", "--rules", "dfa,bp",
            "--signs", "nonneg", "--seeds", "2", "--epochs", str(epochs), "--eval-every", str(epochs // 2),
            "--no-track-alignment", "--device", "cpu", "--quiet", "--jobs", str(jobs),
            "--config", str(config)]  # fmt: skip


def processes_of_session(session: int) -> list[str]:
    """The /proc/<pid>/stat lines of every live process in ``session``: the grid's, its fork server's, its
    jobs' and its resource tracker's, since the test starts the grid in a session of its own. Zombies (ended,
    waiting for their parent, or init, to read their status) are left out."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # ended meanwhile
                continue
            state, _, _, sid = stat[stat.rindex(")") + 2 :].split()[:4]
            if int(sid) == session and state != "Z":
                found.append(stat.strip())
    return found


def wait_until_gone(session: int, seconds: float = 20.0) -> None:
    """Fail unless every process of ``session`` ends within ``seconds``; kill what is left either way."""
    deadline = time.monotonic() + seconds
    while processes_of_session(session) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = processes_of_session(session)
    for line in left:
        os.kill(int(line.split()[0]), signal.SIGKILL)
    assert not left, f"processes left {seconds:.0f} s after the grid ended: {[line[:40] for line in left]}"


def start_grid(out: Path, epochs: int, jobs: int) -> subprocess.Popen:
    """The grid in a session of its own, once a run has written its first checkpoint."""
    process = subprocess.Popen(
        [sys.executable, "-m", "gevb", *grid_argv(out, epochs, jobs)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not list(out.glob("*/checkpoint.pt")):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.02)
    return process


def interrupt(out: Path, epochs: int, jobs: int, signum: int, group: bool) -> subprocess.CompletedProcess:
    """Start the grid, send ``signum`` once a run has written its first checkpoint (to the process group, as a
    terminal's Ctrl-C does, or to the grid process alone), and wait until it and every process it started
    have ended."""
    process = start_grid(out, epochs, jobs)
    (os.killpg if group else os.kill)(process.pid, signum)
    stdout, stderr = process.communicate(timeout=60)
    wait_until_gone(process.pid)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


STOPS = [
    pytest.param(group, signum, jobs, id=f"{'group' if group else 'parent'}-{signum.name}-jobs{jobs}")
    # to the group, SIGINT and SIGTERM take different ways in the jobs (ignored; a handler); to the grid process
    # alone, both take its one handler (gevb.jobs.StopSignals)
    for group, signum, jobs in [(True, signal.SIGINT, 2), (True, signal.SIGTERM, 2), (False, signal.SIGTERM, 2),
                                (False, signal.SIGTERM, 1)]
]  # fmt: skip


@pytest.mark.parametrize(("group", "signum", "jobs"), STOPS)
def test_a_signal_stops_every_job_at_once_and_leaves_nothing_behind(tmp_path, group, signum, jobs):
    out = tmp_path / "grid"
    ended = interrupt(out, epochs=400, jobs=jobs, signum=signum, group=group)
    assert ended.returncode == 128 + signum, ended.stderr
    assert "interrupted; run the same command again" in ended.stderr, ended.stderr
    assert "leaked" not in ended.stderr and "Traceback" not in ended.stderr, ended.stderr
    folders = sorted(path.name for path in out.iterdir() if path.is_dir())
    assert len(folders) <= jobs, f"runs started after the signal: {folders}"  # those that were training
    assert not list(out.glob("*/result.json")), "a run trained on to its end after the signal"
    for name in folders:
        FolderLock(out / name).check_free()  # no job holds a folder
        assert RunFolder(out / name).holds_run()


def test_jobs_end_when_the_grid_is_killed_outright_even_before_it_is_reaped(tmp_path):
    """SIGKILL leaves no handler to run: each job's watchdog sees the grid process gone, a zombie too (a parent
    that has not yet read its exit status, as a shell that is itself busy or stopped)."""
    process = start_grid(tmp_path / "grid", epochs=400, jobs=2)
    os.kill(process.pid, signal.SIGKILL)
    try:
        wait_until_gone(process.pid)  # the grid process stays a zombie until ``wait`` below
    finally:
        assert process.wait(timeout=60) == -signal.SIGKILL


def test_an_interrupted_grid_resumes_to_exactly_the_uninterrupted_one(tmp_path, capsys):
    """Ctrl-C to the group mid-grid, then the same command: every run ends bitwise equal to a grid never
    interrupted."""
    reference, out = tmp_path / "reference" / "grid", tmp_path / "interrupted" / "grid"
    reference.parent.mkdir()
    out.parent.mkdir()
    assert main(grid_argv(reference, epochs=10, jobs=1)) == 0
    ended = interrupt(out, epochs=10, jobs=2, signum=signal.SIGINT, group=True)
    assert ended.returncode == 130, ended.stderr
    assert len(list(out.glob("*/result.json"))) < 4, "the signal should land mid-grid"
    assert main(grid_argv(out, epochs=10, jobs=2)) == 0
    for name in RUN_NAMES:
        results = [json.loads((grid / name / "result.json").read_text()) for grid in (reference, out)]
        expected, resumed = ((r["epochs"], r["train_error"], r["test_error"]) for r in results)
        assert resumed == expected, name
        weights = [torch.load(grid / name / "checkpoint.pt", weights_only=True)["model"] for grid in (reference, out)]
        assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0]), name


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_run_folder_in_use_stops_the_grid_before_anything_trains(tmp_path, capsys, jobs):
    out = tmp_path / "grid"
    held = RunFolder(out / RUN_NAMES[-1])  # the last run of the grid, as a `gevb train --out` in it would
    held.lock()
    try:
        assert main(grid_argv(out, epochs=4, jobs=jobs)) == 2
    finally:
        held.unlock()
    error = capsys.readouterr().err.strip()
    assert f"is in use by process {os.getpid()}" in error and len(error.splitlines()) == 1, error
    assert sorted(path.name for path in out.iterdir() if path.is_dir()) == [], "runs trained beside a busy folder"


@pytest.mark.parametrize("under", [False, True], ids=["file", "folder-of-a-file"])
def test_an_out_that_is_a_file_is_one_clear_line(tmp_path, capsys, under):
    afile = tmp_path / "grid.txt"
    afile.write_text("not a folder\n")
    out = afile / "sub" if under else afile
    for extra in ([], ["--list"]):
        assert main([*grid_argv(out, epochs=4, jobs=1, config=tmp_path / "small.yaml"), *extra]) == 2
        error = capsys.readouterr().err.strip()
        assert f"{afile} is a file; choose a folder" in error and len(error.splitlines()) == 1, error
        assert "Errno" not in error, error
    assert afile.read_text() == "not a folder\n"
