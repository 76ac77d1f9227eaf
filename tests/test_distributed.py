"""Data-parallel training: 2 gloo processes under torchrun end where 1 process with the same global batch ends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import one_thread_env
from gevb.checkpoint import load_checkpoint
from gevb.cli import main
from gevb.locks import FolderLock

# a vectorized and a conventional network end to end; every rule's data-parallel step is held to the one-process
# reference in float64 by tests/test_step.py (test_two_gloo_processes_step_like_the_single_process_reference)
CASES = {
    "gevb": ["--model", "fc-vec", "--rule", "gevb", "--widths", "16,12"],
    "dfa": ["--model", "conv", "--rule", "dfa", "--widths", "4,6,16", "--sign", "mixed"],
}


def torchrun(processes: int, argv: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    # "--" keeps torchrun from reading gevb's flags (it would take --sign for its --signals-to-handle)
    command += ["-m", "gevb", "--", *argv]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=one_thread_env())


def final_state(run: Path) -> tuple[dict[str, torch.Tensor], list[dict]]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return load_checkpoint(run / "checkpoint.pt")["model"], records


def assert_same_training(parallel: Path, single: Path) -> None:
    weights, records = final_state(parallel)
    reference, reference_records = final_state(single)
    for key, value in reference.items():
        torch.testing.assert_close(weights[key], value, rtol=1e-4, atol=1e-5, msg=key)
    for record, expected in zip(records, reference_records, strict=True):
        assert record["epoch"] == expected["epoch"]
        assert record["test_error"] == pytest.approx(expected["test_error"], abs=0.3)  # at most one example
        assert record["train_loss"] == pytest.approx(expected["train_loss"], rel=1e-4)


def test_two_processes_train_like_one_and_resume_with_an_idle_process_on_short_batches(tmp_path):
    """A conventional conv network over 2 processes, batch 359: the last batch of each epoch (1,437 = 4 x 359 + 1)
    leaves rank 1 without examples; it still joins the average and the step. The run is stopped after one epoch
    and resumed, and ends where one process with the same global batch ends. (The vectorized network trains over
    2 srun tasks in tests/test_slurm.py.)"""
    argv = ["train", *CASES["dfa"], "--batch-size", "359", "--device", "cpu", "--quiet"]
    first = torchrun(2, [*argv, "--epochs", "1", "--json", "--out", str(tmp_path / "parallel")])
    assert first.returncode == 0, first.stderr[-2000:]
    lines = first.stdout.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["processes"] == 2  # only rank 0 speaks
    again = torchrun(2, [*argv, "--epochs", "2", "--out", str(tmp_path / "parallel"), "--resume"])
    assert again.returncode == 0, again.stderr[-2000:]
    assert main([*argv, "--epochs", "2", "--out", str(tmp_path / "single")]) == 0
    assert_same_training(tmp_path / "parallel", tmp_path / "single")


def test_a_run_folder_refused_in_one_process_stops_every_process(tmp_path):
    """Rank 0 alone takes the folder's lock; held by another process here, it refuses the run, and the other
    rank stops too (it waited in the run's first collective until torchrun's timeout)."""
    out = tmp_path / "busy"
    out.mkdir()
    holder = FolderLock(out)
    holder.acquire()
    try:
        argv = ["train", *CASES["gevb"], "--epochs", "1", "--device", "cpu", "--quiet", "--out", str(out)]
        done = torchrun(2, argv, timeout=120)
    finally:
        holder.release()
    assert done.returncode != 0 and "exitcode: 2" in done.stderr, done.stderr[-2000:]  # torchrun reports rank 0's
    assert f"in use by process {os.getpid()}" in done.stderr and "refused this run in another" in done.stderr
    assert "SIGABRT" not in done.stderr and "gevb/" not in done.stderr, done.stderr[-2000:]  # no traceback of ours
