"""What a resume may change is fixed and recorded: a finished run resumed as it was rewrites nothing; settings that
change what a run computes (patience, stop-at-100, the non-finite policy, the evaluation batch size) are refused;
settings of one stretch of training (threads, device, logging, where the data lies) are recorded per segment in
result.json, never by rewriting config.yaml; a cosine schedule, which reaches lr 0 at the run's length, is never
extended."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gevb.analysis.report import settings_label
from gevb.cli import main
from gevb.runs import collect_runs

SMALL = ["--widths", "16,12", "--quiet", "--threads", "1"]


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file's bytes and modification time (ns), the lock file left out (it holds the last holder's pid)."""
    files = sorted(path for path in folder.rglob("*") if path.is_file() and path.name != ".gevb.lock")
    return {str(path.relative_to(folder)): (path.read_bytes(), path.stat().st_mtime_ns) for path in files}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A run of 3 epochs, finished."""
    run = tmp_path_factory.mktemp("finished") / "ref"
    assert main(["train", "--epochs", "3", "--out", str(run), *SMALL]) == 0
    return run


SEGMENT_FLAGS = [[], ["--threads", "2"], ["--device", "cpu"], ["--track-alignment"], ["--tensorboard"]]


@pytest.mark.parametrize("flags", SEGMENT_FLAGS, ids=lambda flags: " ".join(flags) or "identical")
def test_a_finished_run_resumed_with_the_same_identity_rewrites_nothing(finished, capsys, flags):
    before = snapshot(finished)
    assert main(["train", "--epochs", "3", "--out", str(finished), "--resume", *SMALL, *flags]) == 0
    assert snapshot(finished) == before
    assert "nothing to train" in capsys.readouterr().out


TRAJECTORY_FLAGS = [
    (["--patience", "3"], "patience"),
    (["--stop-at-100"], "stop_at_100"),
    (["--on-nonfinite", "skip"], "on_nonfinite"),
    (["--eval-batch-size", "512"], "eval_batch_size"),
]


@pytest.mark.parametrize(("flags", "field"), TRAJECTORY_FLAGS, ids=[field for _, field in TRAJECTORY_FLAGS])
def test_a_resume_that_would_change_what_the_run_computes_is_refused(finished, capsys, flags, field):
    before = snapshot(finished)
    capsys.readouterr()
    assert main(["train", "--epochs", "4", "--out", str(finished), "--resume", *SMALL, *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and field in err[0] and str(finished) in err[0]
    assert snapshot(finished) == before


def test_each_segment_is_recorded_and_the_config_keeps_what_the_run_started_with(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--epochs", "2", "--out", str(run), *SMALL]) == 0
    config_before = (run / "config.yaml").read_text()
    label_before = settings_label(collect_runs(tmp_path)[0].config)
    argv = ["train", "--epochs", "3", "--out", str(run), "--resume", *SMALL, "--threads", "2", "--track-alignment"]
    assert main([*argv, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    result = json.loads((run / "result.json").read_text())
    assert printed == result
    segments = [(s["from_epoch"], s["to_epoch"], s["threads"], s["track_alignment"]) for s in result["segments"]]
    assert segments == [(0, 2, 1, False), (2, 3, 2, True)]
    assert all(s["provenance"]["threads"] == s["threads"] for s in result["segments"])
    assert sum(s["seconds"] for s in result["segments"]) == pytest.approx(result["seconds"])
    # config.yaml: the run's settings as started, with the length it now has; result.json's config the same
    assert (run / "config.yaml").read_text() == config_before.replace("epochs: 2", "epochs: 3")
    assert result["config"]["threads"] == 1 and result["config"]["epochs"] == 3
    assert settings_label(collect_runs(tmp_path)[0].config) == label_before.replace("epochs=2", "epochs=3")


def test_a_cosine_run_is_never_extended(tmp_path, capsys):
    run = tmp_path / "cosine"
    assert main(["train", "--epochs", "2", "--lr-schedule", "cosine", "--out", str(run), *SMALL]) == 0
    before = snapshot(run)
    capsys.readouterr()
    assert main(["train", "--epochs", "4", "--lr-schedule", "cosine", "--out", str(run), "--resume", *SMALL]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cosine" in err[0] and "--epochs 2" in err[0]
    assert snapshot(run) == before
