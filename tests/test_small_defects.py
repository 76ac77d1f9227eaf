"""Small things a new user met: counts in the singular for one, a checkpoint called good only when it is, and
every evaluation showing progress (on Fashion-MNIST the one at epoch 0 took 16 s with the bar at 0%). A failed
download's folder is tested in test_data.py, int16 pixels in test_data_integrity.py."""

from __future__ import annotations

import json
import re

from gevb.cli import main
from gevb.config import TrainConfig
from gevb.data import load_dataset, with_validation
from gevb.evaluation import evaluate_splits
from gevb.models import build_model
from gevb.text import counted
from gevb.training import Trainer

SMALL = ["--widths", "16,12", "--device", "cpu", "--threads", "1"]


def test_counted_words():
    assert [counted(n, "epoch") for n in (0, 1, 2, 1000)] == ["0 epochs", "1 epoch", "2 epochs", "1,000 epochs"]
    assert counted(1, "class", "classes") == "1 class" and counted(3, "class", "classes") == "3 classes"


def test_one_epoch_and_one_run_read_in_the_singular(tmp_path, capsys):
    assert main(["train", "--epochs", "1", "--quiet", *SMALL]) == 0
    out = capsys.readouterr().out
    assert "after 1 epoch," in out and "1 epochs" not in out
    argv = ["reproduce", "--dataset", "digits", "--models", "fc", "--rules", "bp", "--signs", "nonneg", "--seeds", "1"]
    assert main([*argv, "--epochs", "1", "--eval-every", "1", "--device", "cpu", "--out", str(tmp_path / "g")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"\b1 run\b", out) and not re.search(r"\b1 (runs|epochs)\b", out), out


def test_a_checkpoint_whose_evaluation_is_not_finite_is_not_called_good(tmp_path, capsys):
    run = tmp_path / "r"
    argv = ["train", "--lr", "1e30", "--epochs", "3", "--on-nonfinite", "skip", "--out", str(run), "--quiet", *SMALL]
    assert main(argv) == 3
    message = capsys.readouterr().err.strip().splitlines()[-1]
    epoch = int(re.search(r"checkpoint \(epoch (\d+)\)", message).group(1))
    record = next(json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
                  if json.loads(line)["epoch"] == epoch)  # fmt: skip
    assert record["train_loss"] is None  # the case of the defect: the one step taken left no finite loss
    assert "good" not in message and "not finite" in message


def test_every_evaluation_shows_progress(capsys):
    trainer = Trainer(TrainConfig(epochs=1, widths=[16, 12], device="cpu", threads=1), progress=True)
    trainer.fit()
    err = capsys.readouterr().err
    assert err.count("evaluating") >= 2  # the initialization's and the first epoch's evaluations
    data = with_validation(load_dataset("digits"), 0.2, 0)
    model = build_model("fc", data.input_shape, data.num_classes, "mixed", [8, 8], 0)
    counts: list[int] = []
    evaluate_splits(model, data, 100, on_batch=counts.append)
    assert sum(counts) == len(data.train) + len(data.test) + len(data.val) and max(counts) == 100
