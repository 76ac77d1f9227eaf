"""A run folder belongs to one process at a time (``gevb.locks``): a second run, resume or eval on a folder in
use exits 2 naming the holder's pid, and a holder killed outright leaves no stale lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import one_thread_env
from gevb.cli import main
from gevb.locks import LOCK_NAME
from gevb.runs import RunFolder

FAST = ["--epochs", "2", "--widths", "8,8", "--threads", "1", "--device", "cpu", "--quiet"]


def gevb(*argv: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "gevb", *argv], stderr=subprocess.PIPE, text=True, env=one_thread_env()
    )


def test_two_runs_started_into_one_folder_03_s_apart_one_trains_the_other_is_refused(tmp_path):
    out = str(tmp_path / "mix")
    first = gevb("train", "--epochs", "3", "--threads", "1", "--device", "cpu", "--quiet", "--out", out)
    time.sleep(0.3)
    second = gevb("train", "--epochs", "3", "--threads", "1", "--device", "cpu", "--quiet", "--lr", "1e-3",
                  "--model", "fc", "--out", out)  # fmt: skip
    codes = {first.wait(timeout=300): first, second.wait(timeout=300): second}
    assert sorted(codes) == [0, 2], {code: process.stderr.read() for code, process in codes.items()}
    winner, loser = codes[0], codes[2]
    message = loser.stderr.read().strip()
    assert f"in use by process {winner.pid}" in message and len(message.splitlines()) == 1, message
    config = RunFolder(out).read_config()
    assert (config.model, config.lr) == (("fc-vec", 3e-4) if winner is first else ("fc", 1e-3))
    epochs = [json.loads(line)["epoch"] for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    assert epochs == sorted(set(epochs)) and epochs[-1] == 3, epochs  # one run's records, in order
    assert json.loads((Path(out) / "result.json").read_text())["epochs"] == 3


def test_a_run_killed_outright_leaves_no_stale_lock(tmp_path):
    out = tmp_path / "run"
    holder = gevb("train", *FAST[2:], "--epochs", "50", "--out", str(out))
    lock = out / LOCK_NAME
    while not (lock.exists() and lock.read_text().strip() == str(holder.pid)):
        assert holder.poll() is None, holder.stderr.read()
        time.sleep(0.02)
    os.kill(holder.pid, signal.SIGKILL)
    assert holder.wait() == -signal.SIGKILL
    assert lock.read_text().strip() == str(holder.pid)  # the file stays; the kernel released the lock
    assert main(["train", *FAST[2:], "--epochs", "50", "--out", str(out), "--resume"]) == 0


def test_resume_and_eval_of_a_folder_in_use_exit_2_naming_the_holder(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *FAST, "--out", str(out)]) == 0
    capsys.readouterr()
    held = RunFolder(out)
    held.lock()  # as a training process holds it
    try:
        for argv in (["train", *FAST, "--out", str(out), "--resume"], ["eval", str(out), "--device", "cpu"]):
            assert main(argv) == 2, argv
            error = capsys.readouterr().err.strip()
            assert f"{out} is in use by process {os.getpid()}" in error and len(error.splitlines()) == 1, error
    finally:
        held.unlock()
    assert main(["eval", str(out), "--device", "cpu"]) == 0  # free again


def test_a_failed_start_leaves_no_folder_and_no_lock(tmp_path):
    out = tmp_path / "new"
    assert main(["train", *FAST, "--dataset", str(tmp_path / "missing.npz"), "--out", str(out)]) == 2
    assert not out.exists()
    (tmp_path / "kept").mkdir()
    assert main(["train", *FAST, "--dataset", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "kept")]) == 2
    assert list((tmp_path / "kept").iterdir()) == []  # an empty folder the user made stays, empty
