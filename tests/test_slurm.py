"""``--executor slurm`` on a real Slurm cluster (tests/slurm_cluster.py starts one on this host, shared by the
file's tests): a digits grid submitted as a job array ends with the same weights in every run folder as the grid
trained here; a task cancelled mid-run (``scancel``) resumes exactly when the same command runs again; the batch
scripts carry the command's own flags; a missing ``sbatch`` or one that refuses is one line, exit 2, nothing lost."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gevb.cli import build_parser, main
from slurm_cluster import LocalSlurm, missing_programs
from test_cluster_docs import commands
from test_distributed import assert_same_training

INSTALL = "apt-get install -y slurmctld slurmd slurm-client munge (as root)"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The local cluster, its ``SLURM_CONF`` in this process's environment while the file's tests run."""
    missing = missing_programs()
    if missing:
        reason = f"no local Slurm cluster here ({', '.join(missing)} missing); install it with: {INSTALL}"
        if os.environ.get("GEVB_REQUIRE_CLUSTER"):
            pytest.fail(f"GEVB_REQUIRE_CLUSTER is set but {reason}")
        pytest.skip(reason)
    local = LocalSlurm(tmp_path_factory.mktemp("slurm")).start()
    before = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(local.conf)
    try:
        yield local
    finally:
        local.stop()
        if before is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = before


def grid_argv(folder: Path, out: Path) -> list[str]:
    """Eight small digits runs (fc-vec GEVB and BP, fc DFA and BP, nonneg and mixed), 10 epochs each."""
    config = folder / "small.yaml"
    config.write_text("widths: [16, 16]\n")
    return ["reproduce", "--dataset", "digits", "--models", "fc-vec,fc", "--signs", "nonneg,mixed", "--seeds", "1",
            "--epochs", "10", "--eval-every", "10", "--no-track-alignment", "--device", "cpu", "--quiet",
            "--config", str(config), "--out", str(out)]  # fmt: skip


@pytest.fixture(scope="module")
def local_grid(tmp_path_factory) -> Path:
    """The grid trained here, in this process (8 runs on 2 cores: one thread each, as a 1-CPU task's)."""
    folder = tmp_path_factory.mktemp("local")
    assert main([*grid_argv(folder, folder / "grid"), "--jobs", "1"]) == 0
    return folder / "grid"


def assert_same_runs(expected: Path, got: Path) -> None:
    names = sorted(path.name for path in expected.iterdir() if (path / "result.json").exists())
    assert len(names) == 8 and names == sorted(path.name for path in got.iterdir() if (path / "result.json").exists())
    for name in names:
        weights = [torch.load(grid / name / "checkpoint.pt", weights_only=True)["model"] for grid in (expected, got)]
        assert weights[0].keys() == weights[1].keys()
        assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0]), name


def submitted_ids(stdout: str) -> list[str]:
    words = next(line for line in stdout.splitlines() if line.startswith("submitted")).split()
    return [word.rstrip(")") for before, word in zip(words, words[1:], strict=False) if before == "(job"]


def test_a_grid_cancelled_mid_run_on_slurm_and_submitted_again_ends_as_the_grid_trained_here(
    cluster, local_grid, tmp_path, capsys
):
    """The grid as 2 array tasks of 4 runs; ``scancel`` once a task has written a checkpoint; the same command
    with --wait submits the shards still unfinished, and every run ends bitwise as trained here."""
    out = tmp_path / "grid"
    argv = [*grid_argv(tmp_path, out), "--executor", "slurm", "--tasks", "2", "--cpus-per-task", "1"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "submitted 2 array tasks of 2" in printed, printed
    array, _ = submitted_ids(printed)
    deadline = time.monotonic() + 120
    while not list(out.glob("*/checkpoint.pt")):  # a task is training
        assert time.monotonic() < deadline, "no task started training in 120 s"
        time.sleep(0.02)
    subprocess.run(["scancel", array], check=True)
    while subprocess.run(["squeue", "-h", f"--jobs={array}"], capture_output=True, text=True).stdout.strip():
        time.sleep(0.2)
    finished = len(list(out.glob("*/result.json")))
    assert finished < 8, "the array ended before it was cancelled"
    assert main([*argv, "--wait"]) == 0
    printed = capsys.readouterr().out
    assert f"for the {8 - finished} unfinished run" in printed, printed  # finished runs are not trained again
    assert (out / "table.md").exists()  # the report job ran
    assert_same_runs(local_grid, out)


def test_sbatch_refusing_the_array_is_one_line_and_touches_no_run(cluster, tmp_path, capsys):
    out = tmp_path / "grid"
    assert main([*grid_argv(tmp_path, out), "--executor", "slurm", "--partition", "nosuch"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "sbatch refused" in error and "invalid partition" in error.lower(), error
    assert not [path for path in out.iterdir() if path.name != "slurm"]


def test_a_missing_sbatch_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    out = tmp_path / "grid"
    assert main([*grid_argv(tmp_path, out), "--executor", "slurm"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "needs Slurm's sbatch, which is not on PATH" in error, error
    assert not out.exists()


TIMED_OUT = "slurm_load_jobs error: Socket timed out on send/recv operation"


def fake_squeue(folder: Path, answers: list[tuple[int, str]]) -> Path:
    """An ``squeue`` in ``folder`` that gives ``answers`` (exit status, text: stdout at 0, else stderr) one a
    call, the last one ever after; ``folder/calls`` counts the calls."""
    folder.mkdir()
    said = [f"echo {shlex.quote(text)}" + ("" if status == 0 else f" >&2; exit {status}") for status, text in answers]
    cases = "".join(f"  {index}) {line};;\n" for index, line in enumerate(said[:-1]))
    script = folder / "squeue"
    script.write_text(
        f"#!/bin/sh\nn=$(cat {folder}/calls 2>/dev/null || echo 0)\necho $((n + 1)) > {folder}/calls\n"
        f"case $n in\n{cases}  *) {said[-1]};;\nesac\n"
    )
    script.chmod(0o755)
    return folder / "calls"


def test_waiting_asks_again_while_squeue_does_not_answer(tmp_path, monkeypatch):
    """A controller too busy to answer is not an empty queue: the wait goes on until the jobs have left it (the
    cause of a tuning study once summarised before any trial had finished)."""
    from gevb import slurm

    calls = fake_squeue(tmp_path / "bin", [(0, "RUNNING"), (1, TIMED_OUT), (1, TIMED_OUT), (0, "RUNNING"), (0, "")])
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    monkeypatch.setattr(slurm, "POLL_SECONDS", (0.0, 0.0))
    lines = []
    slurm.wait_for(["7"], lambda: "0/1 done", lines.append)
    assert int(calls.read_text()) == 5
    assert lines == ["0/1 done; 1 running", f"0/1 done; squeue did not answer ({TIMED_OUT}), asking again",
                     "0/1 done; 1 running", "0/1 done; no task queued"]  # fmt: skip


def test_waiting_gives_up_on_an_unanswering_squeue_with_one_line_and_ends_on_forgotten_jobs(tmp_path, monkeypatch):
    from gevb import slurm

    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    monkeypatch.setattr(slurm, "POLL_SECONDS", (0.0, 0.0))
    monkeypatch.setattr(slurm, "UNANSWERED_SECONDS", 0.2)
    fake_squeue(tmp_path / "bin", [(1, TIMED_OUT)])
    with pytest.raises(slurm.SlurmError, match=r"squeue has not answered for 0 s .*squeue --jobs=7,8") as error:
        slurm.wait_for(["7", "8"], lambda: "", lambda line: None)
    assert "\n" not in str(error.value)
    fake_squeue(tmp_path / "forgot", [(1, "slurm_load_jobs error: Invalid job id specified")])
    monkeypatch.setenv("PATH", f"{tmp_path / 'forgot'}:{os.environ['PATH']}")
    lines = []
    slurm.wait_for(["7"], lambda: "done", lines.append)
    assert lines == ["done; no task queued"]


def test_the_dry_run_prints_scripts_whose_tasks_run_this_command(tmp_path, capsys):
    out = tmp_path / "grid"
    argv = [*grid_argv(tmp_path, out), "--jobs", "2", "--executor", "slurm", "--tasks", "3", "--partition", "gpu",
            "--time", "1:00:00", "--gpus-per-task", "1", "--sbatch-args=--account=lab", "--dry-run"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert not out.exists()
    for line in (
        "#SBATCH --array=1-3",
        "#SBATCH --partition=gpu",
        "#SBATCH --time=1:00:00",
        "#SBATCH --gpus-per-task=1",
    ):
        assert line in printed, printed
    assert "sbatch --account=lab" in printed
    task = next(line for line in printed.splitlines() if line.startswith("exec") and " reproduce " in line)
    words = shlex.split(task.replace("${SLURM_ARRAY_TASK_ID}", "2"))
    assert words[2:5] == ["-m", "gevb", "reproduce"]
    parser = build_parser()
    given, told = parser.parse_args(argv), parser.parse_args(words[4:])
    same = set(vars(given)) - {"executor", "tasks", "partition", "time", "gpus_per_task", "sbatch_args", "dry_run",
                               "report", "shard", "handler", "parser"}  # fmt: skip

    def values(args: argparse.Namespace) -> dict:
        return {
            key: list(value) if isinstance(value, tuple) else value for key in same for value in [getattr(args, key)]
        }

    assert values(told) == values(given)
    assert (told.shard, told.report, told.executor) == ((2, 3), False, "local")


def test_executor_flags_without_the_slurm_executor_are_refused(tmp_path, capsys):
    assert main([*grid_argv(tmp_path, tmp_path / "grid"), "--partition", "gpu"]) == 2
    assert "--partition applies to --executor slurm only" in capsys.readouterr().err


def test_two_srun_tasks_train_one_run_as_one_process_does(cluster, tmp_path):
    """docs/cluster.md's ``srun --ntasks=2 ... gevb train``: the step's tasks find each other from Slurm's
    environment (gloo) and train one run data-parallel, with the single process's weights (as two torchrun
    processes do, tests/test_distributed.py)."""
    words = shlex.split(commands("srun")[0])
    at = words.index("gevb")
    argv = [*words[at + 1 :], "--device", "cpu", "--quiet"]
    out = Path(argv[argv.index("--out") + 1])
    command = [*words[:at], sys.executable, "-m", "gevb", *argv]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((tmp_path / out / "result.json").read_text())["processes"] == 2
    argv[argv.index("--out") + 1] = str(tmp_path / "single")
    assert main(argv) == 0
    assert_same_training(tmp_path / out, tmp_path / "single")


def task_logs(folder: Path) -> str:
    """The tasks' logs in ``folder`` (each one's last 2,000 characters), to say why a test's jobs failed."""
    logs = sorted(folder.glob("*.out"))
    return "\n".join(f"{path.name}: {path.read_text(errors='replace')[-2000:]}" for path in logs)


def test_two_slurm_tasks_share_one_study_and_write_the_best_setting(cluster, tmp_path, capsys):
    """gevb tune --executor slurm: two array tasks, each a worker of one study (its journal file), then the
    summary job; the best setting is the finished trials' lowest validation error (tests/test_tune.py)."""
    from test_tune import check_study, tune_argv  # skips without Optuna

    out = tmp_path / "study"
    slurm = ["--executor", "slurm", "--tasks", "2", "--cpus-per-task", "1", "--wait"]
    status = main([*tune_argv(tmp_path, out), *slurm])
    printed = capsys.readouterr().out
    assert status == 0, task_logs(out / "slurm")
    assert "submitted 2 worker tasks" in printed, printed
    check_study(out, printed, trials=4)
    assert len(list((out / "slurm").glob("gevb-tune-*_*.out"))) == 2
