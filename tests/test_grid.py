"""``gevb reproduce``: the run list, shards, skipping finished runs, and surviving a kill mid-grid."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import gevb.grid as grid
from conftest import one_thread_env
from gevb.analysis.report import result_rows
from gevb.cli import main
from gevb.config import TrainConfig
from gevb.grid import GridRun, auto_jobs, grid_config, grid_runs, parse_shard, run_grid, run_status, shard
from gevb.models import ARCHITECTURES
from gevb.paper import GRID_MODELS, broadcast_rule, paper_protocol
from gevb.runs import collect_runs


def names(runs: list[GridRun]) -> list[str]:
    return [run.name for run in runs]


def test_the_grid_is_24_configurations_per_seed_with_the_paper_protocol():
    base = paper_protocol("mnist")
    assert (base.epochs, base.eval_every, base.stop_at_100, base.lr, base.batch_size) == (200, 10, True, 3e-4, 128)
    runs = grid_runs(base, seeds=2)
    assert len(runs) == 48 and len(set(names(runs))) == 48
    assert {run.config.dataset for run in runs} == {"mnist"}
    configs = {(r.config.model, r.config.rule, r.config.sign) for r in runs}
    assert len(configs) == 24
    for model in GRID_MODELS:
        broadcast = broadcast_rule(model)
        assert {(rule, sign) for m, rule, sign in configs if m == model} == {
            (broadcast, "nonneg"), ("bp", "nonneg"), (broadcast, "mixed"), ("bp", "mixed")
        }  # fmt: skip
    assert [run.config.seed for run in runs[:24]] == [0] * 24  # seed-major: a partial grid covers every cell


def test_filters_keep_a_subset_and_reject_unknown_names():
    runs = grid_runs(TrainConfig(), seeds=3, models=["conv-vec", "conv"], rules=["gevb", "dfa"], signs=["mixed"])
    assert names(runs) == [
        f"{m}-{r}-mixed-seed{s}" for s in range(3) for m, r in (("conv-vec", "gevb"), ("conv", "dfa"))
    ]
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        grid_runs(TrainConfig(), 1, models=["resnet"])
    with pytest.raises(ValueError, match="no run"):
        grid_runs(TrainConfig(), 1, models=["fc"], rules=["gevb"])
    with pytest.raises(ValueError, match="at least 1"):
        grid_runs(TrainConfig(), 0)


def test_other_rules_join_the_grid_where_they_are_defined():
    runs = grid_runs(TrainConfig(), seeds=1, models=["fc-vec", "fc"], rules=["bp", "fa", "drtp"], signs=["nonneg"])
    assert names(runs) == [f"{m}-{r}-nonneg-seed0" for m in ("fc-vec", "fc") for r in ("bp", "fa", "drtp")]
    assert names(grid_runs(TrainConfig(), 1, models=["fc"], rules=["gevb", "dfa"], signs=["mixed"])) == [
        "fc-dfa-mixed-seed0"
    ]
    with pytest.raises(ValueError, match="unknown rule 'hebb' in --rules; choose from gevb, bp"):
        grid_runs(TrainConfig(), 1, rules=["hebb"])


def test_shards_cover_the_run_list_exactly_once(capsys, tmp_path):
    runs = grid_runs(paper_protocol("digits"), seeds=5)
    shards = [shard(runs, index, 3) for index in (1, 2, 3)]
    assert sorted(names([run for part in shards for run in part])) == sorted(names(runs))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    listed = []
    for index in (1, 2, 3):
        argv = ["reproduce", "--dataset", "digits", "--out", str(tmp_path), "--list", "--shard", f"{index}/3"]
        assert main(argv) == 0
        lines = capsys.readouterr().out.strip().splitlines()
        assert all(line.endswith("\tnew") for line in lines)
        listed += [line.split("\t")[0] for line in lines]
    assert sorted(listed) == sorted(names(runs)) and len(listed) == 120
    assert not any(tmp_path.iterdir())  # --list writes nothing
    for bad in ("0/3", "4/3", "2", "a/b"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)


def test_reproduce_lists_a_rules_digits_grid_without_a_dataset_flag(capsys, monkeypatch, tmp_path):
    """The digits are every command's default data set, reproduce's too: ``gevb reproduce --rules R --list``
    lists R's runs on every architecture it applies to, in runs/digits."""
    monkeypatch.chdir(tmp_path)
    assert main(["reproduce", "--rules", "kolen-pollack", "--list"]) == 0
    listed = [line.split("\t")[0] for line in capsys.readouterr().out.strip().splitlines()]
    expected = grid_runs(paper_protocol("digits"), seeds=5, rules=["kolen-pollack"])
    assert listed == names(expected) and {name.split("-kolen")[0] for name in listed} == set(ARCHITECTURES)
    assert not any(tmp_path.iterdir())


def grid_argv(out: Path, *extra: str, models: str = "fc-vec,fc") -> list[str]:
    return ["reproduce", "--dataset", "digits", "--models", models, "--seeds", "1", "--epochs", "3",
            "--eval-every", "1", "--no-track-alignment", "--device", "cpu", "--out", str(out), *extra]  # fmt: skip


def result_stamps(out: Path) -> dict[str, int]:
    return {path.parent.name: path.stat().st_mtime_ns for path in out.glob("*/result.json")}


SMALL = [64, 32]  # hidden widths of the fc-vec and fc runs of ``trained_grid``


def small_grid_argv(out: Path, *extra: str) -> list[str]:
    """``grid_argv`` of fc-vec and fc runs with ``SMALL`` widths (a config file beside ``out``)."""
    config = out.parent / "small.yaml"
    config.write_text(f"widths: {SMALL}\n")
    return grid_argv(out, "--config", str(config), *extra)


@pytest.fixture(scope="module")
def trained_grid(tmp_path_factory) -> Path:
    """One 8-run grid trained once for the tests of this file (each copies it before changing it)."""
    out = tmp_path_factory.mktemp("trained") / "grid"
    assert main(small_grid_argv(out, "--quiet")) == 0
    return out


def test_rerun_trains_nothing_and_more_epochs_resume(capsys, tmp_path, trained_grid):
    out = tmp_path / "grid"
    shutil.copytree(trained_grid, out)
    stamps = result_stamps(out)
    assert len(stamps) == 8
    assert main(small_grid_argv(out)) == 0
    text = capsys.readouterr().out
    assert "8 runs: 8 finished, 0 to train" in text and "[1/" not in text
    assert result_stamps(out) == stamps
    longer = TrainConfig(dataset="digits", widths=SMALL, epochs=4, eval_every=1, stop_at_100=True, device="cpu")
    runs = grid_runs(longer, 1, models=["fc"])
    assert {run_status(out, run) for run in runs} == {"partial"}  # finished at 3 epochs, asked for 4
    results = run_grid(runs, out)
    assert [result["epochs"] for result in results] == [4] * 4
    epochs = [[record["epoch"] for record in run.metrics] for run in collect_runs(out) if run.config.model == "fc"]
    assert epochs == [[0, 1, 2, 3, 4]] * 4


def test_a_folder_holding_a_different_run_stops_the_grid_before_training(trained_grid):
    out = trained_grid
    with pytest.raises(ValueError, match="holds a run with eval_every=1, not 2"):
        run_grid(grid_runs(TrainConfig(dataset="digits", widths=SMALL, epochs=3, eval_every=2, device="cpu"), 1), out)


def checkpoint_stamps(out: Path) -> dict[str, int]:
    return {path.parent.name: path.stat().st_mtime_ns for path in out.glob("*/checkpoint.pt")}


def model_weights(out: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {path.parent.name: torch.load(path, weights_only=True)["model"] for path in out.glob("*/checkpoint.pt")}


def test_killed_grid_of_two_jobs_resumes_without_repeating_finished_runs(tmp_path):
    """SIGKILL ``--jobs 2`` once its first run has finished: its job processes stop too; restart (in this
    process); the grid ends bitwise equal to an uninterrupted ``--jobs 1`` one. Convolutions are in the grid
    because torch's CPU kernels sum in a thread-count-dependent order: the reference runs in a process of two
    torch threads, and only
    ``grid_config`` (each run's threads fixed by the grid's size, not by --jobs) makes the two grids agree."""
    argv = lambda out, jobs: grid_argv(out, "--quiet", "--signs", "nonneg", "--jobs", jobs, models="fc,conv")  # noqa: E731
    reference = tmp_path / "reference"
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert main(argv(reference, "1")) == 0
        assert torch.get_num_threads() == 2  # the grid gave its runs their threads, and gave ours back
    finally:
        torch.set_num_threads(threads)
    out = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "gevb", *argv(out, "2")], stdout=subprocess.DEVNULL, env=one_thread_env()
    )
    deadline = time.monotonic() + 120
    while not result_stamps(out) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    time.sleep(1.0)  # a job notices within half a second that the grid has gone, and ends
    before, checkpoints = result_stamps(out), checkpoint_stamps(out)
    assert 1 <= len(before) < 4, "the kill should land mid-grid"
    time.sleep(2.0)  # an orphaned job would go on writing its run folder
    assert result_stamps(out) == before and checkpoint_stamps(out) == checkpoints
    assert main(argv(out, "1")) == 0  # resumed in this process (tests/test_grid_signals.py resumes with 2 jobs)
    after = result_stamps(out)
    assert len(after) == 4 and all(after[name] == stamp for name, stamp in before.items())

    def table(folder: Path) -> list[tuple]:
        return [(row["run"], row["train_error"], row["test_error"]) for row in result_rows(collect_runs(folder))]

    assert table(out) == table(reference)
    weights, expected = model_weights(out), model_weights(reference)
    assert weights.keys() == expected.keys() and len(weights) == 4
    for name, state in expected.items():
        assert all(torch.equal(weights[name][key], value) for key, value in state.items()), name
    for run in collect_runs(out):
        assert [record["epoch"] for record in run.metrics] == [0, 1, 2, 3]  # no evaluation lost or repeated


def test_each_runs_threads_depend_on_the_grid_not_on_jobs(monkeypatch):
    monkeypatch.setattr(grid, "cpu_cores", lambda: 16)
    base = TrainConfig(dataset="digits", device="cpu")
    assert [grid_config(base, runs).threads for runs in (1, 4, 5, 24, 240)] == [16, 4, 3, 1, 1]
    assert grid_config(base.replace(threads=2), 240).threads == 2  # a config's own threads stand
    assert [auto_jobs(grid_config(base, runs)) for runs in (1, 4, 5, 24)] == [1, 4, 5, 16]
    assert auto_jobs(base.replace(threads=4)) == 4
    monkeypatch.setattr(grid, "resolve_device", lambda name: torch.device("cuda"))
    assert grid_config(base, 24).threads is None and auto_jobs(base) == 1  # a GPU: one job until measured
