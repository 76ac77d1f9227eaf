"""An option that does nothing under the other settings is refused (exit 2, one line naming it and why), never
accepted and recorded as if it had been used; the same option where it applies works."""

from __future__ import annotations

import numpy as np
import pytest

from gevb.cli import main
from test_data import fake_mnist

FAST = ["--widths", "16,12", "--device", "cpu", "--quiet", "--threads", "1"]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.fixture(scope="module")
def own_npz(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("own") / "own.npz"
    x = np.arange(12 * 6).reshape(12, 2, 3).astype(np.uint8)
    np.savez(path, x_train=x, y_train=np.arange(12) % 3, x_test=x[:3], y_test=np.arange(3))
    return str(path)


REFUSED = [
    (["--momentum", "0.5"], "--momentum", "sgd"),
    (["--optimizer", "adam", "--momentum", "0.9"], "--momentum", "sgd"),  # the default value, given: still refused
    (["--lr-step-epochs", "5"], "--lr-step-epochs", "step"),
    (["--lr-schedule", "cosine", "--lr-step-epochs", "5"], "--lr-step-epochs", "cosine"),
    (["--noise-scale", "0.1"], "--noise-scale", "node-perturbation"),
    (["--data-dir", "DATA"], "--data-dir", "digits"),
    (["--download"], "--download", "digits"),
    (["--dataset", "NPZ", "--data-dir", "DATA"], "--data-dir", "is the file itself"),
    (["--val-fraction", "0.999"], "val_fraction 0.999", "class"),
]


@pytest.mark.parametrize(("flags", "named", "why"), REFUSED, ids=[" ".join(case[0]) for case in REFUSED])
def test_an_option_that_does_nothing_is_refused_and_nothing_is_written(tmp_path, capsys, own_npz, flags, named, why):
    flags = [own_npz if flag == "NPZ" else str(tmp_path) if flag == "DATA" else flag for flag in flags]
    run = tmp_path / "run"
    assert main(["train", "--epochs", "1", *FAST, *flags, "--out", str(run)]) == 2
    message = one_error_line(capsys)
    assert named in message and why in message
    assert not run.exists()


def test_an_option_that_does_nothing_in_a_config_file_is_refused(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("momentum: 0.5\n")
    assert main(["train", "--config", str(config), "--dry-run", *FAST]) == 2
    assert "--momentum" in one_error_line(capsys)


APPLIES = [
    ["--optimizer", "sgd", "--momentum", "0.5"],
    ["--lr-schedule", "step", "--lr-step-epochs", "5"],
    ["--rule", "node-perturbation", "--noise-scale", "0.1"],
    ["--dataset", "mnist", "--data-dir", "MNIST"],
    ["--val-fraction", "0.5"],
]


@pytest.mark.parametrize("flags", APPLIES, ids=lambda flags: " ".join(flags))
def test_the_same_option_where_it_applies_works(tmp_path, capsys, flags):
    if "MNIST" in flags:
        fake_mnist(tmp_path / "mnist")
    flags = [str(tmp_path / "mnist") if flag == "MNIST" else flag for flag in flags]
    assert main(["train", "--dry-run", *FAST, *flags]) == 0


def test_a_grid_refuses_an_option_that_none_of_its_runs_uses_and_takes_one_that_some_do(tmp_path, capsys):
    config = tmp_path / "noise.yaml"
    config.write_text("noise_scale: 0.05\n")
    argv = ["reproduce", "--dataset", "digits", "--models", "fc", "--config", str(config), "--out", str(tmp_path / "g")]
    assert main([*argv, "--rules", "dfa,bp", "--list"]) == 2
    assert "--noise-scale" in one_error_line(capsys)
    assert main([*argv, "--rules", "node-perturbation", "--list"]) == 0


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory) -> str:
    run = tmp_path_factory.mktemp("saved") / "run"
    assert main(["train", "--epochs", "1", *FAST, "--out", str(run)]) == 0
    return str(run)


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["sign-check", "RUN", "--sign", "mixed"], "--sign"),
        (["sign-check", "RUN", "--seed", "3"], "--seed"),
        (["sign-check", "RUN", "--model", "fc"], "--model"),
        (["summary", "RUN", "--widths", "4,4"], "--widths"),
        (["eval", "RUN", "--data-dir", "DATA"], "--data-dir"),
        (["sign-check", "--data-dir", "DATA"], "--data-dir"),
        (["width-scaling", "--download", "--widths", "8"], "--download"),
    ],
)
def test_a_saved_run_keeps_its_settings_and_refuses_a_flag_that_would_not_change_them(
    saved_run, tmp_path, capsys, argv, named
):
    argv = [saved_run if arg == "RUN" else str(tmp_path) if arg == "DATA" else arg for arg in argv]
    assert main([*argv, "--device", "cpu"]) == 2
    assert named in one_error_line(capsys)


def test_a_dry_run_checks_the_folder_the_run_would_write_and_writes_nothing(saved_run, tmp_path, capsys):
    assert main(["train", "--dry-run", *FAST, "--out", saved_run]) == 2
    assert "already holds a run" in one_error_line(capsys)
    assert main(["train", "--dry-run", *FAST, "--lr", "1e-3", "--out", saved_run, "--resume"]) == 2
    assert "lr=" in one_error_line(capsys)
    new = tmp_path / "new"
    assert main(["train", "--dry-run", *FAST, "--out", str(new)]) == 0
    assert not new.exists()
