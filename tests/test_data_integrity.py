"""Own data is checked before a model is built: labels are the classes 0..K-1 of every split, pixels are
uint8 or floats, and every run records the SHA-256 fingerprint of the data it read."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from gevb.cli import main
from gevb.data import DataError, load_dataset

QUIET = ["--device", "cpu", "--quiet"]


def arrays(train_labels=(0, 1, 2) * 4, test_labels=(0, 1, 2), dtype=np.uint8, **extra) -> dict[str, np.ndarray]:
    x_train = np.arange(len(train_labels) * 6).reshape(len(train_labels), 2, 3).astype(dtype)
    x_test = np.arange(len(test_labels) * 6).reshape(len(test_labels), 2, 3).astype(dtype)
    return {"x_train": x_train, "y_train": np.array(train_labels), "x_test": x_test,
            "y_test": np.array(test_labels), **extra}  # fmt: skip


def saved(tmp_path, **content) -> str:
    path = tmp_path / "own.npz"
    np.savez(path, **content)
    return str(path)


BAD_LABELS = [
    ("label 255 in training", arrays((0, 1, 2, 255) * 3), r"y_train.*255.*classes 3\.\.254 have no training example"),
    ("label 7 in training", arrays((0, 1, 2, 7) * 3), r"y_train.*7.*classes 3\.\.6 have no training example"),
    ("a test-only class", arrays(test_labels=(0, 1, 5)), r"y_test holds label 5.*outside 0\.\.2"),
    ("a class in no split", arrays((0, 2) * 6, (0, 2)), r"y_train.*class 1 has no training example"),
    ("label 10**7", arrays((0, 1, 10**7) * 4), r"y_train.*10000000"),
    ("above the declared K", arrays(num_classes=np.array(2)), r"y_train holds label 2.*outside 0\.\.1"),
    ("a declared K of one", arrays((0,) * 4, (0,), num_classes=np.array(1)), r"num_classes.*at least 2"),
    ("int16 pixels", arrays(dtype=np.int16), r"x_train holds int16 pixels.*uint8"),
]


@pytest.mark.parametrize(("content", "message"), [case[1:] for case in BAD_LABELS], ids=[c[0] for c in BAD_LABELS])
def test_labels_outside_the_classes_are_one_clear_error(tmp_path, capsys, content, message):
    path = saved(tmp_path, **content)
    with pytest.raises(DataError, match=message):
        load_dataset(path)
    assert main(["train", "--dataset", path, "--epochs", "1", *QUIET]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and path in err[0] and "out of memory" not in err[0]
    assert "relabel" in err[0] or "num_classes" in err[0] or "uint8" in err[0]  # names the fix


def test_a_declared_class_count_allows_absent_classes_with_a_warning(tmp_path):
    path = saved(tmp_path, **arrays((0, 2) * 6, (0, 2), num_classes=np.array(4)))
    with pytest.warns(UserWarning, match=r"classes 1, 3 have no training example"):
        data = load_dataset(path)
    assert data.num_classes == 4


def test_a_run_records_the_fingerprint_of_its_npz(tmp_path, capsys):
    path = saved(tmp_path, **arrays())
    assert main(["train", "--dataset", path, "--epochs", "1", "--out", str(tmp_path / "run"), "--json", *QUIET]) == 0
    result = __import__("json").loads(capsys.readouterr().out.strip().splitlines()[-1])
    with open(path, "rb") as file:
        assert result["data"]["sha256"] == hashlib.sha256(file.read()).hexdigest()


def test_digits_have_a_fingerprint_that_follows_their_content():
    assert load_dataset("digits").fingerprint == load_dataset("digits").fingerprint
    assert len(load_dataset("digits").fingerprint) == 64


@pytest.mark.parametrize("command", ["resume", "eval"])
def test_resume_and_eval_refuse_changed_data(tmp_path, capsys, command):
    content = arrays()
    path = saved(tmp_path, **content)
    run = str(tmp_path / "run")
    assert main(["train", "--dataset", path, "--epochs", "1", "--out", run, *QUIET]) == 0
    with open(path, "rb") as file:
        before = hashlib.sha256(file.read()).hexdigest()
    order = np.random.default_rng(1).permutation(len(content["y_train"]))
    saved(tmp_path, **{**content, "x_train": content["x_train"][order], "y_train": content["y_train"][order]})
    with open(path, "rb") as file:
        after = hashlib.sha256(file.read()).hexdigest()
    argv = ["train", "--dataset", path, "--epochs", "2", "--out", run, "--resume", *QUIET]
    capsys.readouterr()
    assert main(argv if command == "resume" else ["eval", run, "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and path in err[0] and before in err[0] and after in err[0]


def test_a_changed_class_count_is_named_as_changed_data_not_another_model(tmp_path, capsys):
    path = saved(tmp_path, **arrays())
    run = str(tmp_path / "run")
    assert main(["train", "--dataset", path, "--epochs", "1", "--out", run, *QUIET]) == 0
    saved(tmp_path, **arrays((0, 1, 2, 3) * 3, (0, 1, 2, 3)))
    assert main(["eval", run, "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "another model" not in err and "sha256" in err


def test_a_built_in_data_set_is_fingerprinted_by_its_files_and_a_changed_file_is_named(tmp_path, capsys):
    from test_data import TRAIN_LABELS, fake_mnist, idx_bytes

    arrays = fake_mnist(tmp_path / "mnist", n_train=40, n_test=20)
    run = str(tmp_path / "run")
    argv = ["train", "--dataset", "mnist", "--data-dir", str(tmp_path / "mnist"), "--model", "fc", "--rule", "bp"]
    assert main([*argv, "--widths", "8,8", "--epochs", "1", "--out", run, "--json", *QUIET]) == 0
    recorded = __import__("json").loads(capsys.readouterr().out.strip().splitlines()[-1])["data"]
    assert len(recorded["files"]) == 4
    for path, sha in recorded["files"].items():
        with open(path, "rb") as file:
            assert hashlib.sha256(file.read()).hexdigest() == sha
    labels = tmp_path / "mnist" / TRAIN_LABELS
    labels.write_bytes(idx_bytes(arrays[TRAIN_LABELS][::-1].copy()))  # the same labels, another order
    assert main(["eval", run, "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(labels) in err[0] and recorded["files"][str(labels)] in err[0]
