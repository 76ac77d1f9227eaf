"""The ``gevb`` command: dry runs of every pair, JSON output, help text, and the exit-2 user errors."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import load_benchmark, one_thread_env, small_widths, valid_pairs
from gevb.cli import build_parser, main
from gevb.config import TrainConfig
from gevb.data.formats import IDX_FILES

ROOT = Path(__file__).resolve().parents[1]


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        status = main(list(argv))
    except SystemExit as exit_:  # argparse errors and --help
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize(("model", "rule"), valid_pairs())
def test_dry_run_every_valid_pair_on_digits(capsys, tmp_path, model, rule):
    """Each pair through the command line, at its small widths (the paper's sizes: test_models.py)."""
    out_dir = tmp_path / "run"
    widths = ",".join(map(str, small_widths(model)))
    argv = ["train", "--model", model, "--rule", rule, "--widths", widths, "--dry-run", "--json", "--device", "cpu",
            "--out", str(out_dir)]  # fmt: skip
    status, out, err = run_cli(capsys, *argv)
    assert status == 0, err
    result = last_json(out)
    assert result["dry_run"] and result["config"]["model"] == model and result["config"]["rule"] == rule
    assert 0 <= result["test_error"] <= 100 and result["train_loss"] > 0
    assert not out_dir.exists()  # a dry run writes nothing


def test_train_json_result_and_eval(capsys, tmp_path):
    run = tmp_path / "run"
    argv = ["train", "--epochs", "2", "--widths", "32,16", "--device", "cpu", "--out", str(run), "--json"]
    status, out, err = run_cli(capsys, *argv)
    assert status == 0, err
    result = last_json(out)
    assert {"test_error", "train_error", "epochs", "seconds", "config"} <= result.keys()
    assert result["epochs"] == 2 and result["config"]["widths"] == [32, 16] and result["config"]["lr"] == 3e-4
    assert len(err.strip().splitlines()) == 3  # one line per evaluation (epochs 0, 1, 2), on stderr with --json
    status, out, _ = run_cli(capsys, "eval", str(run), "--json", "--device", "cpu")
    assert status == 0 and last_json(out)["test_error"] == result["test_error"]
    status, out, _ = run_cli(capsys, "eval", str(run / "checkpoint.pt"), "--device", "cpu")
    assert status == 0 and f"test error {result['test_error']:.2f}%" in out


def test_yaml_config_is_overridden_by_flags(capsys, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("rule: bp\nepochs: 7\nwidths: [8, 6]\n")
    status, out, err = run_cli(capsys, "train", "--config", str(config), "--epochs", "1", "--dry-run", "--json")
    assert status == 0, err
    resolved = last_json(out)["config"]
    assert (resolved["rule"], resolved["epochs"], resolved["widths"]) == ("bp", 1, [8, 6])


def test_every_train_flag_shows_its_default(capsys):
    subcommands = next(a for a in build_parser()._actions if a.dest == "command")
    actions = [a for a in subcommands.choices["train"]._actions if a.dest != "help"]
    flags = {flag for action in actions for flag in action.option_strings}
    names = "dataset model rule sign epochs batch-size lr seed eval-every stop-at-100 device data-dir download"
    for name in [*names.split(), "out", "resume", "config", "dry-run", "json"]:
        assert f"--{name}" in flags
    assert all("(default: " in action.help for action in actions), [a.dest for a in actions if "(default" not in a.help]
    status, out, _ = run_cli(capsys, "train", "--help")
    text = " ".join(out.split())
    assert status == 0 and "(default: 0.0003)" in text and "(default: digits)" in text and "(default: 128)" in text


def one_line_error(status: int, err: str) -> str:
    assert status == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_user_errors_exit_2_with_one_line(capsys, tmp_path):
    idx_dir = tmp_path / "idx"
    idx_dir.mkdir()
    for name in IDX_FILES:
        (idx_dir / name).write_bytes(b"\x00\x00\x08\x03garbage")
    yaml_bad = tmp_path / "bad.yaml"
    yaml_bad.write_text("epochs: many\n")
    pickle_file = tmp_path / "model.pt"
    pickle_file.write_bytes(gzip.compress(b"not a checkpoint"))
    cases = [
        (["train", "--rule", "hebb"], "invalid choice: 'hebb'"),
        (["train", "--epochs", "x"], "argument --epochs: must be an integer at least 1 and at most 2**63 - 1, got 'x'"),
        (["train", "--widths", "a,b"], "comma-separated integers"),
        (["train", "--model", "fc-vec", "--rule", "dfa"], "rule 'dfa' does not train model 'fc-vec'"),
        (["train", "--model", "conv", "--rule", "gevb"], "rule 'gevb' does not train model 'conv'"),
        (["train", "--epochs", "0"], "argument --epochs: must be an integer at least 1"),
        (["train", "--dataset", "mnist", "--data-dir", str(tmp_path / "empty")], "mnist"),
        (["train", "--dataset", "mnist", "--data-dir", str(idx_dir)], "train-images-idx3-ubyte"),
        (["train", "--config", str(yaml_bad)], "epochs must be int"),
        (["train", "--config", str(tmp_path / "missing.yaml")], "cannot read config file"),
        (["train", "--widths", "8,6,4"], "widths needs 2 positive integers"),
        (["train", "--resume"], "--resume needs the run folder: add --out DIR"),
        (["eval", str(tmp_path / "nowhere")], "no checkpoint at"),
        (["eval", str(pickle_file)], "is not a loadable gevb checkpoint"),
        (["reproduce", "--dataset", "digits", "--jobs", "0", "--list"], "--jobs: must be auto or an integer at least"),
        (["reproduce", "--dataset", "digits", "--jobs", "two", "--list"], "--jobs: must be auto or an integer"),
    ]
    for argv, message in cases:
        device = ["--device", "cpu"] if argv[0] == "train" else []
        status, _, err = run_cli(capsys, *argv, *device)
        assert message in one_line_error(status, err), argv


def test_out_folder_with_another_run_is_refused_and_kept(capsys, tmp_path):
    run = tmp_path / "run"
    assert run_cli(capsys, "train", "--epochs", "1", "--widths", "8,6", "--out", str(run), "--quiet")[0] == 0
    files = {p.name: p.read_bytes() for p in run.iterdir()}
    for extra in ([], ["--resume", "--seed", "1"], ["--resume", "--rule", "bp"]):
        status, _, err = run_cli(capsys, "train", "--epochs", "2", "--widths", "8,6", "--out", str(run), *extra)
        line = one_line_error(status, err)
        assert str(run) in line and ("--resume" in line or "same settings" in line)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == files


def test_console_entry_point_runs_and_fails_cleanly():
    ok = subprocess.run(
        [sys.executable, "-m", "gevb", "train", "--dry-run", "--json", "--device", "cpu"],
        capture_output=True, text=True, timeout=120, env=one_thread_env(),
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert last_json(ok.stdout)["config"] == TrainConfig(device="cpu").to_dict()
    bad = subprocess.run([sys.executable, "-m", "gevb", "train", "--sign", "both"], capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr


def test_parser_covers_every_config_field():
    parser = build_parser()
    args = parser.parse_args(["train", "--stop-at-100", "--download", "--data-dir", "d", "--device", "cuda:1"])
    assert (args.stop_at_100, args.download, args.data_dir, args.device) == (True, True, "d", "cuda:1")
    assert not hasattr(args, "epochs")  # flags not given leave the YAML / default value


def test_the_gpu_check_refuses_to_run_without_cuda_in_one_line(tmp_path):
    script = Path(__file__).resolve().parents[1] / "benchmarks/gpu_check.sh"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # hides any GPU, so this holds on every machine
    done = subprocess.run(["bash", str(script), str(tmp_path / "out")], capture_output=True, text=True, env=env)
    assert done.returncode != 0 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "gpu_check: no CUDA device visible to torch here; run this on a machine with a GPU"
    ]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("script", sorted(path.name for path in (ROOT / "benchmarks").glob("*.py")))
def test_the_benchmarks_start(script, monkeypatch, capsys):
    """The benchmark scripts import what they use (a renamed helper broke one once) and parse their flags."""
    module = load_benchmark(script, monkeypatch)
    monkeypatch.setattr(sys, "argv", [script, "--help"])
    with pytest.raises(SystemExit) as done:
        module.main()
    assert done.value.code == 0 and "usage:" in capsys.readouterr().out
