"""With a validation split (--val-fraction), every result says how the run did on it: result.json, --json, the
final line, each evaluation's line and gevb eval's line all carry the validation loss and error (the figure's
curves are tested in test_figure_defects.py). Without one, none of them mentions validation."""

from __future__ import annotations

import json
import re

from gevb.cli import main

SMALL = ["--widths", "16,12", "--epochs", "2", "--device", "cpu", "--threads", "1"]
NUMBER = r"\d+\.\d+"


def train_lines(capsys, folder, extra, *flags) -> list[str]:
    capsys.readouterr()
    assert main(["train", *SMALL, *extra, "--out", str(folder), *flags]) == 0
    return capsys.readouterr().out.strip().splitlines()


def test_every_result_of_a_run_with_a_validation_split_has_its_loss_and_error(tmp_path, capsys):
    folder, extra = tmp_path / "run", ["--val-fraction", "0.2"]
    lines = train_lines(capsys, folder, extra)
    evaluations, final = lines[:-1], lines[-1]
    assert len(evaluations) == 3  # epochs 0, 1, 2
    for line in evaluations:
        assert re.search(rf"val {NUMBER}% \(loss {NUMBER}\)", line), line
    assert re.search(rf"val {NUMBER}% \(loss {NUMBER}\)", final), final
    result = json.loads((folder / "result.json").read_text())
    assert {"val_loss", "val_error"} <= result.keys()
    assert result["val_error"] == json.loads((folder / "metrics.jsonl").read_text().splitlines()[-1])["val_error"]

    assert main(["train", *SMALL, *extra, "--json", "--quiet"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["val_loss"] == result["val_loss"] and printed["val_error"] == result["val_error"]

    assert main(["eval", str(folder), "--device", "cpu"]) == 0
    line = capsys.readouterr().out.strip()
    assert re.search(rf"val error {NUMBER}% \(loss {NUMBER}\)", line), line
    assert f"val error {result['val_error']:.2f}%" in line


def test_a_run_without_a_validation_split_mentions_none(tmp_path, capsys):
    folder = tmp_path / "run"
    lines = train_lines(capsys, folder, [])
    assert not any(re.search(r"\bval\b", line) for line in lines)
    result = json.loads((folder / "result.json").read_text())
    assert "val_loss" not in result and "val_error" not in result
    assert main(["eval", str(folder), "--device", "cpu"]) == 0
    assert not re.search(r"\bval\b", capsys.readouterr().out)
