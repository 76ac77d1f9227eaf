"""Never lose work: non-finite values, SIGKILL at any moment, crashes during a checkpoint write, hostile pickles."""

from __future__ import annotations

import json
import math
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import one_thread_env
from gevb import TrainConfig, Trainer, load_dataset
from gevb.checkpoint import load_checkpoint, save_checkpoint
from gevb.cli import main
from gevb.faults import NonFiniteError

SMALL = TrainConfig(model="fc-vec", widths=[16, 12], device="cpu", eval_every=1)


def poisoned_digits(index: int = 3):
    """The digits with one NaN pixel in training example ``index`` (a corrupt input)."""
    data = load_dataset("digits", None, False, "cpu")
    data.train.x[index, 0, 0, 0] = float("nan")
    return data


def test_nonfinite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    run = tmp_path / "run"
    Trainer(SMALL.replace(epochs=2), run).fit()
    good = load_checkpoint(run / "checkpoint.pt")
    trainer = Trainer(SMALL.replace(epochs=4), run, resume=True, data=poisoned_digits())
    with pytest.raises(
        NonFiniteError, match=r"non-finite loss and weights in epoch 3.*last good checkpoint \(epoch 2\)"
    ):
        trainer.fit()
    kept = load_checkpoint(run / "checkpoint.pt")
    assert kept["epoch"] == 2
    for key, value in good["model"].items():
        assert torch.equal(kept["model"][key], value)
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [0, 1, 2]
    assert not (run / "result.json").exists()
    resumed = Trainer(SMALL.replace(epochs=3), run, resume=True).fit()  # clean data again: the run goes on
    assert resumed["epochs"] == 3


def test_skip_policy_skips_the_step_and_halves_the_learning_rate():
    lines: list[str] = []
    config = SMALL.replace(epochs=3, on_nonfinite="skip")
    trainer = Trainer(config, log=lines.append, data=poisoned_digits())
    result = trainer.fit()
    assert result["epochs"] == 3 and math.isfinite(result["test_loss"])
    skips = [line for line in lines if "step skipped" in line]
    assert len(skips) == 3  # the poisoned example sits in one batch per epoch
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(config.lr / 8)
    assert all(bool(torch.isfinite(param).all()) for param in trainer.model.parameters())


def test_exploding_weights_exit_3_with_one_line(capsys, tmp_path):
    assert main(["train", "--lr", "1e38", "--epochs", "2", "--device", "cpu", "--out", str(tmp_path / "r")]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "weights in epoch 1" in err[0] and "no checkpoint was written yet" in err[0]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def metrics_lines(path: Path) -> list[str]:
    """The complete lines of a metrics file (none while it is absent)."""
    return path.read_text().split("\n")[:-1] if path.exists() else []


def metrics_without_timing(path: Path) -> list[dict]:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("seconds", "samples_per_s")} for r in records]


def test_sigkill_at_a_random_moment_then_resume_ends_identical(tmp_path):
    argv = ["train", "--model", "lc-vec", "--widths", "4,6,16", "--epochs", "12", "--device", "cpu", "--quiet"]
    reference = tmp_path / "reference"
    assert main([*argv, "--out", str(reference)]) == 0
    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "gevb", *argv, "--out", str(killed)]
    rng = random.Random(os.getpid())
    evaluations = []
    for _attempt in range(2):  # two kills at random moments, each after this process's first evaluation
        before = len(evaluations)
        resume = ["--resume"] if killed.exists() else []
        process = subprocess.Popen([*command, *resume], stderr=subprocess.PIPE, env=one_thread_env())
        while len(evaluations) <= before and process.poll() is None:  # this process has trained an epoch
            time.sleep(0.01)
            evaluations = metrics_lines(killed / "metrics.jsonl")
        time.sleep(rng.uniform(0.0, 0.4))
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait() == -signal.SIGKILL and not (killed / "result.json").exists(), "killed mid-run"
        assert len(evaluations) > before, "the kill landed before this process trained anything"
    assert main([*argv, "--out", str(killed), "--resume"]) == 0
    for key, value in weights(reference / "checkpoint.pt").items():
        assert torch.equal(weights(killed / "checkpoint.pt")[key], value), key
    assert metrics_without_timing(killed / "metrics.jsonl") == metrics_without_timing(reference / "metrics.jsonl")


def test_a_crash_while_writing_a_checkpoint_leaves_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"epoch": 1, "model": {"w": torch.ones(3)}})

    def crash_midway(obj, file, *args, **kwargs):
        file.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"epoch": 2, "model": {"w": torch.zeros(3)}})
    monkeypatch.undo()
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and torch.equal(state["model"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no partial file left behind


class Payload:
    """Unpickling this runs ``Path(marker).touch()``: the side effect a malicious checkpoint would have."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_malicious_pickle_checkpoint_is_refused_and_never_runs(capsys, tmp_path):
    marker = tmp_path / "payload-ran"
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"format": "gevb-checkpoint", "version": 1, "model": Payload(marker)}, run / "checkpoint.pt")
    with open(tmp_path / "plain.pt", "wb") as file:
        pickle.dump(Payload(marker), file)
    for target in (run, tmp_path / "plain.pt"):
        assert main(["eval", str(target), "--device", "cpu"]) == 2
        err = capsys.readouterr().err
        assert "is not a loadable gevb checkpoint" in err and "never unpickles" in err
        # never torch's advice to load it unsafely or to allow its classes: the one step that would run the payload
        for advice in ("weights_only", "still be loaded", "safe_globals", "trust"):
            assert advice not in err, advice
    assert not marker.exists()
