"""``gevb tune`` (Optuna, the tune extra): workers share one study, each trial a run folder scored by its validation
error, never the test split; the best setting is written for ``gevb reproduce --config``; a trial stopped midway
resumes in its folder; without Optuna, one line says what to install. On Slurm: tests/test_slurm.py."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from gevb.cli import main

if importlib.util.find_spec("optuna") is None:  # CI installs it and sets GEVB_REQUIRE_CLUSTER: there this fails
    REASON = "gevb tune needs the tune extra (Optuna): pip install -e '.[tune]'"
    if os.environ.get("GEVB_REQUIRE_CLUSTER"):
        pytest.fail(f"GEVB_REQUIRE_CLUSTER is set but {REASON}", pytrace=False)
    pytest.skip(REASON, allow_module_level=True)


def tune_argv(folder: Path, out: Path, trials: int = 4) -> list[str]:
    """A small study: fc-vec GEVB on digits at widths 16, 16; 3 epochs a trial."""
    config = folder / "small.yaml"
    config.write_text("widths: [16, 16]\n")
    return ["tune", "--model", "fc-vec", "--rule", "gevb", "--trials", str(trials), "--epochs", "3", "--eval-every",
            "1", "--config", str(config), "--device", "cpu", "--out", str(out)]  # fmt: skip


def trial_results(out: Path) -> dict[str, dict]:
    return {path.parent.name: json.loads(path.read_text()) for path in out.glob("trial-*/result.json")}


def check_study(out: Path, printed: str, trials: int) -> float:
    """The best setting: in best.yaml, in the default range, the lowest validation error of the finished trials;
    return its lr."""
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert set(best) == {"lr"} and 1e-5 <= best["lr"] <= 1e-2, best
    results = trial_results(out)
    assert len(results) >= trials
    assert all(result["config"]["val_fraction"] == 0.1 for result in results.values())
    rates = [result["config"]["lr"] for result in results.values()]
    assert len(set(rates)) == len(rates), rates  # no two workers drew the same setting
    lowest = min(results.values(), key=lambda result: result["val_error"])
    chosen = [result for result in results.values() if result["config"]["lr"] == best["lr"]]
    assert chosen and chosen[0]["val_error"] == lowest["val_error"], (best, lowest)
    assert f"validation error {lowest['val_error']:.2f}%" in printed, printed
    return best["lr"]


def test_two_local_workers_share_one_study_and_write_the_best_setting(tmp_path, capsys):
    out = tmp_path / "study"
    assert main([*tune_argv(tmp_path, out), "--workers", "2"]) == 0
    printed = capsys.readouterr().out
    check_study(out, printed, trials=4)
    assert main(["reproduce", "--dataset", "digits", "--models", "fc-vec", "--rules", "gevb", "--signs", "nonneg",
                 "--config", str(out / "best.yaml"), "--out", str(tmp_path / "grid"), "--list"]) == 0  # fmt: skip
    assert main([*tune_argv(tmp_path, out, trials=6), "--best-only"]) == 0  # reads the study, trains nothing
    assert len(trial_results(out)) == len(list(out.glob("trial-*")))


def test_a_trial_stopped_midway_is_run_again_into_its_folder(tmp_path, capsys):
    """A trial interrupted after its first epoch (Ctrl-C in its run) is queued again, and its run resumes."""
    from gevb import tuning

    out, calls = tmp_path / "study", []
    real = tuning.Pruning.after_epoch

    def stop_once(self, trainer, loss, record):
        real(self, trainer, loss, record)
        if trainer.epoch == 1 and not calls:
            calls.append(self.trial.number)
            raise KeyboardInterrupt

    tuning.Pruning.after_epoch = stop_once
    try:
        assert main(tune_argv(tmp_path, out, trials=2)) == 130
    finally:
        tuning.Pruning.after_epoch = real
    assert (out / "trial-0000" / "checkpoint.pt").exists() and not (out / "trial-0000" / "result.json").exists()
    assert "run the same command again to continue" in capsys.readouterr().err
    assert main(tune_argv(tmp_path, out, trials=2)) == 0
    assert "1 trial stopped before its end: queued again" in capsys.readouterr().out
    result = trial_results(out)["trial-0000"]
    assert [segment["from_epoch"] for segment in result["segments"]] == [0, 1]  # resumed, not retrained


PAUSED_WORKER = """
import sys, time
from pathlib import Path
from gevb import tuning
from gevb.cli import main

gate, argv = Path(sys.argv[1]), sys.argv[2:]


def pause(where):
    (gate / f"at-{where}").touch()
    while not (gate / f"go-{where}").exists():
        time.sleep(0.02)


class PausedTrainer(tuning.Trainer):  # as a slow start (data, model) and a slow end (the study's storage) would
    def __init__(self, *args, **kwargs):
        pause("start")
        super().__init__(*args, **kwargs)

    def fit(self):
        result = super().fit()
        pause("end")
        return result


tuning.Trainer = PausedTrainer
sys.exit(main(argv))
"""


def paused_worker(folder: Path, argv: list[str]) -> subprocess.Popen:
    """``gevb tune argv`` in a process whose trials pause at their run's start and end, until ``folder/go-WHERE``
    exists (``folder/at-WHERE`` says they are there)."""
    folder.mkdir()
    command = [sys.executable, "-c", PAUSED_WORKER, str(folder), *argv]
    return subprocess.Popen(command, stderr=subprocess.PIPE, text=True)


def reach(worker: subprocess.Popen, folder: Path, where: str) -> None:
    deadline = time.monotonic() + 120
    while not (folder / f"at-{where}").exists():
        assert worker.poll() is None, worker.stderr.read()
        assert time.monotonic() < deadline, f"the worker did not reach its run's {where}"
        time.sleep(0.02)


def test_a_trial_whose_worker_is_alive_is_never_taken_for_abandoned(tmp_path):
    """Another worker starting (a Slurm array task, or a second gevb tune) while a trial has begun but its run
    has not yet locked its folder, or has unlocked it but not yet told the study, leaves the trial alone: it
    ends as its worker reports it, run once (this race had a study's workers end with no finished trial)."""
    from gevb.cli import build_parser
    from gevb.cli.tune import study_of
    from gevb.tuning import finished_trials, retry_abandoned

    out, gate = tmp_path / "study", tmp_path / "gate"
    argv = [*tune_argv(tmp_path, out, trials=1), "--quiet"]
    worker = paused_worker(gate, argv)
    study = study_of(build_parser().parse_args(argv))
    try:
        for where in ("start", "end"):
            reach(worker, gate, where)
            assert retry_abandoned(study) == 0, where
            (gate / f"go-{where}").touch()
        assert worker.wait(timeout=120) == 0, worker.stderr.read()
    finally:
        worker.kill()
    trials = study.load().get_trials(deepcopy=False)
    assert len(trials) == 1 and finished_trials(study.load()) == 1, [trial.state for trial in trials]


def test_a_trial_whose_worker_was_killed_is_run_again_into_its_folder(tmp_path, capsys):
    out, gate = tmp_path / "study", tmp_path / "gate"
    argv = tune_argv(tmp_path, out, trials=1)
    worker = paused_worker(gate, argv)
    try:
        reach(worker, gate, "start")
    finally:
        worker.kill()
        worker.wait()
    assert main(argv) == 0
    assert "1 trial stopped before its end: queued again" in capsys.readouterr().out
    assert list(trial_results(out)) == ["trial-0000"]


def test_without_optuna_tune_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna raises ImportError
    assert main(["tune"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "pip install -e '.[tune]'" in error, error


def test_the_objective_is_never_the_test_split(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:  # argparse's error
        main([*tune_argv(tmp_path, tmp_path / "study"), "--val-fraction", "0"])
    assert exit_.value.code == 2 and "--val-fraction: must be in (0, 1)" in capsys.readouterr().err
