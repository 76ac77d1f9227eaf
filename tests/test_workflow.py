"""A researcher's workflow without surprises: regression tests of defects found by using gevb end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gevb.cli import main
from gevb.config import load_config
from test_data import fake_mnist

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--widths", "16,12", "--device", "cpu", "--quiet"]
QUIET_JSON = ["--device", "cpu", "--quiet"]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def strict_json_lines(path: Path) -> list[dict]:
    """JSON lines, refusing the NaN / Infinity tokens that are not JSON."""

    def refuse(token: str):
        raise ValueError(f"{path} holds {token}, which is not JSON")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


def test_a_run_whose_every_step_is_skipped_stops_with_status_3_and_writes_valid_json(tmp_path, capsys):
    run = tmp_path / "r"
    argv = ["train", "--lr", "1e30", "--epochs", "3", "--on-nonfinite", "skip", "--out", str(run), *SMALL]
    assert main(argv) == 3
    assert "non-finite" in one_line_error(capsys)
    if (run / "metrics.jsonl").exists():
        strict_json_lines(run / "metrics.jsonl")


def test_after_a_non_finite_stop_without_checkpoint_the_advice_works(tmp_path, capsys):
    run = tmp_path / "r"
    assert main(["train", "--lr", "1e30", "--epochs", "1", "--out", str(run), *SMALL]) == 3
    message = one_line_error(capsys)
    assert "--lr" in message and "nothing was kept" in message
    assert not run.exists() or not any(run.iterdir())
    assert main(["train", "--lr", "1e-3", "--epochs", "1", "--out", str(run), *SMALL]) == 0


def test_resuming_with_fewer_epochs_than_trained_is_refused_and_rewrites_nothing(tmp_path, capsys):
    run = tmp_path / "r"
    assert main(["train", "--epochs", "3", "--out", str(run), *SMALL]) == 0
    before = {name: (run / name).read_bytes() for name in ("config.yaml", "result.json", "metrics.jsonl")}
    assert main(["train", "--epochs", "1", "--out", str(run), "--resume", *SMALL]) == 2
    assert "already trained 3 epochs" in one_line_error(capsys)
    assert {name: (run / name).read_bytes() for name in before} == before
    assert load_config(run / "config.yaml").epochs == 3


def test_ctrl_c_during_reproduce_gives_reproduce_s_own_advice(tmp_path, capsys, monkeypatch):
    import gevb.cli.experiments as experiments

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(experiments, "run_grid", interrupted)
    argv = ["reproduce", "--dataset", "digits", "--seeds", "1", "--epochs", "1", "--out", str(tmp_path / "g")]
    assert main([*argv, "--quiet"]) == 130
    message = one_line_error(capsys)
    assert "--resume" not in message and "same command" in message


def test_a_relative_data_dir_is_saved_absolute_so_eval_works_from_elsewhere(tmp_path, capsys, monkeypatch):
    here, elsewhere = tmp_path / "a", tmp_path / "b"
    fake_mnist(here / "data", n_train=40, n_test=20)
    elsewhere.mkdir()
    monkeypatch.chdir(here)
    argv = ["train", "--dataset", "mnist", "--data-dir", "data", "--model", "fc-vec", "--epochs", "1", "--out", "run"]
    assert main([*argv, *SMALL]) == 0
    assert load_config(here / "run/config.yaml").data_dir == str(here / "data")
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main(["eval", str(here / "run"), "--device", "cpu"]) == 0


def test_an_impossible_allocation_is_one_line_not_a_traceback(capsys):
    assert main(["train", "--widths", "1000000,1000000", "--dry-run", "--device", "cpu"]) == 2
    message = one_line_error(capsys)
    assert "out of memory" in message and "--widths" in message


@pytest.mark.parametrize(("text", "value"), [("1e-3", 1e-3), ("3E-4", 3e-4), ("+2.5e-2", 0.025), ("0.001", 0.001)])
def test_yaml_floats_in_exponent_form_are_floats(tmp_path, text, value):
    path = tmp_path / "c.yaml"
    path.write_text(f"lr: {text}\n")
    assert load_config(path).lr == value


def test_a_yaml_string_that_is_no_number_is_still_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: fast\n")
    with pytest.raises(ValueError, match="lr must be float"):
        load_config(path)


def test_a_run_records_where_it_came_from_and_gevb_tells_its_version(tmp_path, capsys):
    import gevb

    assert main(["train", "--epochs", "1", "--out", str(tmp_path / "r"), *SMALL]) == 0
    provenance = json.loads((tmp_path / "r/result.json").read_text())["provenance"]
    assert provenance["gevb"] == gevb.__version__ and provenance["torch"] == torch.__version__
    assert provenance["device"] == "cpu" and provenance["time"].endswith("+00:00")
    assert provenance["git_commit"] is None or len(provenance["git_commit"]) >= 7
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip().startswith(f"gevb {gevb.__version__}")


def test_summary_names_layers_by_kind_with_shapes_and_parameter_counts(capsys):
    assert main(["summary", "--model", "conv-vec", "--device", "cpu", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["layers"]
    names = [row["name"] for row in rows]
    assert names == ["conv1", "gate1", "pool1", "conv2", "gate2", "pool2", "flatten", "fc1", "gate3", "readout"]
    assert rows[0]["output"] == [10, 64, 8, 8] and rows[-1]["output"] == [10]
    from gevb.models import build_model

    model = build_model("conv-vec", (1, 8, 8), 10, "nonneg", seed=0)
    assert sum(row["parameters"] for row in rows) == sum(p.numel() for p in model.parameters())
    assert main(["summary", "--model", "lc", "--device", "cpu"]) == 0
    assert "readout" in capsys.readouterr().out


def test_the_evaluation_line_names_the_layers_of_its_angles(tmp_path, capsys):
    argv = ["train", "--model", "conv", "--rule", "dfa", "--widths", "8,8,16", "--epochs", "1", "--track-alignment"]
    assert main([*argv, "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    line = next(line for line in (captured.out + captured.err).splitlines() if "signal angles" in line)
    assert "conv1 " in line and "conv2 " in line and "fc1 " in line


def test_train_s_default_rule_follows_the_model_as_in_sign_check(tmp_path, capsys):
    assert main(["train", "--model", "conv", "--widths", "8,8,16", "--dry-run", "--json", *QUIET_JSON]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["config"]["rule"] == "dfa"
    assert main(["train", "--model", "conv-vec", "--widths", "8,8,16", "--dry-run", "--json", *QUIET_JSON]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["config"]["rule"] == "gevb"
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("rule: gevb\n")  # an explicit rule is never replaced
    assert main(["train", "--model", "conv", "--config", str(yaml_file), "--dry-run", *QUIET_JSON]) == 2
    assert "does not train model 'conv'" in one_line_error(capsys)


def test_one_convention_for_figures_plot_file_or_dash_for_none(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["width-scaling", "--widths", "16,32", "--seeds", "1", "--device", "cpu", "--quiet"]
    assert main([*argv, "--plot", "-"]) == 0 and not list(tmp_path.glob("*.png"))
    assert main(["train", "--epochs", "1", "--out", "run", *SMALL]) == 0
    assert main(["plot", "run", "--plot", "mine.png"]) == 0 and (tmp_path / "mine.png").is_file()
    capsys.readouterr()
    assert main(["cluster-quality", "run", "--plot", "-"]) == 2  # fc-vec has no conv block; the error is one line
    assert "needs a conv or lc model" in one_line_error(capsys)


def test_tensorboard_logs_every_evaluation_as_scalars(tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "r"
    argv = ["train", "--epochs", "2", "--track-alignment", "--tensorboard", "--out", str(run), *SMALL]
    assert main(argv) == 0
    records = strict_json_lines(run / "metrics.jsonl")
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert {"test_error", "train_loss", "signal_deg.fc1"} <= set(events.Tags()["scalars"])
    logged = events.Scalars("test_error")
    assert [event.step for event in logged] == [0, 1, 2]
    assert [event.value for event in logged] == pytest.approx([record["test_error"] for record in records])
    assert main(["train", "--tensorboard", "--epochs", "1", *SMALL]) == 2
    assert "add --out" in one_line_error(capsys)


def interrupt_at_first_epoch(trainer) -> None:
    """Stands in for ``Trainer.run_epochs``: Ctrl-C arrives during the first epoch, after the initialization."""
    raise KeyboardInterrupt


@pytest.mark.parametrize("out", ["my runs/first", None])
def test_ctrl_c_during_train_prints_the_command_that_continues_this_run(tmp_path, capsys, monkeypatch, out):
    import shlex

    import gevb.training as training

    monkeypatch.setattr(training.Trainer, "run_epochs", interrupt_at_first_epoch)
    monkeypatch.chdir(tmp_path)
    argv = ["train", "--epochs", "2", *SMALL] + (["--out", out] if out else [])
    assert main(argv) == 130
    message = one_line_error(capsys)
    assert "DIR" not in message
    if out:
        command = message.split("continue it with: ", 1)[1]
        assert shlex.split(command) == ["gevb", *argv, "--resume"]
    else:
        assert "no --out" in message and "--resume" not in message
