"""Your own data: an .npz file or arrays in Python, any image shape and class count, through every entry point."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
import torch

from gevb import TrainConfig, Trainer
from gevb.build import load_run
from gevb.cli import main
from gevb.data import DataError, dataset_from_arrays, load_dataset

QUIET = ["--device", "cpu", "--quiet"]


def blobs(classes: int, shape: tuple[int, ...], n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 images of ``shape``: class c is bright in its own stripe of pixels, plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    flat = rng.integers(0, 60, (n, int(np.prod(shape))))
    stripe = flat.shape[1] // classes
    for i, c in enumerate(y):
        flat[i, c * stripe : (c + 1) * stripe] += 180
    return flat.astype(np.uint8).reshape(n, *shape), y


def save_npz(path, classes: int = 3, shape: tuple[int, ...] = (5, 7)) -> None:
    x_train, y_train = blobs(classes, shape, 90, seed=0)
    x_test, y_test = blobs(classes, shape, 30, seed=1)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


@pytest.mark.parametrize(("model", "rule"), [("fc-vec", "gevb"), ("lc-vec", "gevb"), ("conv", "dfa")])
def test_gevb_train_on_a_three_class_npz_of_5x7_images(tmp_path, capsys, monkeypatch, model, rule):
    save_npz(tmp_path / "my.npz")
    monkeypatch.chdir(tmp_path)
    argv = ["train", "--dataset", "my.npz", "--model", model, "--rule", rule, "--epochs", "15", "--lr", "3e-3"]
    assert main([*argv, "--batch-size", "32", "--out", "run", "--json", *QUIET]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # chance is 66.7%; measured 0.0 for each of the three (seeds 0-4, torch threads 1 and 2, fast paths on and
    # off: tests/measure_spread.py others)
    assert result["test_error"] < 34.0
    parts = load_run(tmp_path / "run", device="cpu")
    assert parts.data.num_classes == 3 and parts.data.input_shape == (1, 5, 7)
    assert parts.config.dataset == str(tmp_path / "my.npz")  # saved absolute
    assert parts.model(parts.data.test.x[:4]).shape == (4, 3)
    assert main(["eval", str(tmp_path / "run"), "--device", "cpu"]) == 0
    assert main(["report", str(tmp_path)]) == 0


def test_twenty_classes_from_python_arrays_through_the_trainer():
    x_train, y_train = blobs(20, (40,), 400, seed=0)
    x_test, y_test = blobs(20, (40,), 100, seed=1)
    scale = lambda x: x.astype(np.float32) / 127.5 - 1  # noqa: E731  floats are used as they are
    data = dataset_from_arrays("stripes", scale(x_train), y_train, scale(x_test), y_test, device="cpu")
    assert data.num_classes == 20 and data.input_shape == (1, 1, 40)
    config = TrainConfig(dataset="stripes", model="fc-vec", widths=[32, 32], epochs=10, lr=3e-3, device="cpu")
    trainer = Trainer(config, data=data)
    result = trainer.fit()
    assert trainer.model.layers[0].weight.shape[1] == 20  # K = 20 components
    assert result["test_error"] < 50.0  # chance is 95%; measured 0.0-4.0 (as above)


def test_analysis_commands_take_an_npz(tmp_path, capsys):
    save_npz(tmp_path / "my.npz", classes=4, shape=(2, 6, 6))
    dataset = str(tmp_path / "my.npz")
    assert main(["sign-check", "--dataset", dataset, "--model", "fc-vec", "--examples", "4", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert all(row["max_fraction"] == 0 for row in result["layers"].values())  # the theorem on K = 4
    argv = ["width-scaling", "--dataset", dataset, "--widths", "16,32", "--seeds", "1", "--batch-size", "30"]
    assert main([*argv, "--json", "--device", "cpu"]) == 0


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


GOOD = {"x_train": np.zeros((4, 3, 3), np.uint8), "y_train": np.array([0, 1, 0, 1]),
        "x_test": np.zeros((2, 3, 3), np.uint8), "y_test": np.array([1, 0])}  # fmt: skip


def forged_shape() -> bytes:
    """A valid archive whose x_train header declares 10^12 pixels but holds 9 bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, array in GOOD.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, array)
            data = member.getvalue()
            if name == "x_train":
                data = data.replace(b"(4, 3, 3)", b"(1000000, 1000, 1000)")
            archive.writestr(f"{name}.npy", data)
    return buffer.getvalue()


# ids from the messages: the forged archive's bytes hold the time it was written, and pytest-xdist's
# workers must collect identical test names
BAD_NPZ = [
    (b"not a zip", "not an .npz file"),
    (npz_bytes(**{k: v for k, v in GOOD.items() if k != "y_test"}), "no array y_test"),
    (npz_bytes(**{**GOOD, "y_train": np.array([0.0, 1.0, 0.0, 1.0])}), "integer labels"),
    (npz_bytes(**{**GOOD, "y_train": np.array([0, 0, 0, 0]), "y_test": np.array([0, 0])}), "only one class"),
    (npz_bytes(**{**GOOD, "y_train": np.array([0, -1, 0, 1])}), "negative label"),
    (npz_bytes(**{**GOOD, "x_test": np.zeros((2, 4, 4), np.uint8)}), "differ in shape"),
    (npz_bytes(**{**GOOD, "x_train": np.zeros((4,), np.uint8)}), "has shape"),
    (npz_bytes(**{**GOOD, "x_train": np.full((4, 3, 3), np.nan, np.float32)}), "NaN"),
    (npz_bytes(**{**GOOD, "x_train": np.array([None] * 4, dtype=object)}), "object"),
    (forged_shape(), "declares shape"),
]


@pytest.mark.parametrize(("content", "message"), BAD_NPZ, ids=[message for _, message in BAD_NPZ])
def test_every_bad_npz_is_one_clear_error(tmp_path, capsys, content, message):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        load_dataset(str(path))
    assert main(["train", "--dataset", str(path), "--dry-run", *QUIET]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0]


def test_a_missing_npz_names_the_arrays_it_needs(tmp_path):
    with pytest.raises(DataError, match="x_train, y_train, x_test, y_test"):
        load_dataset(str(tmp_path / "absent.npz"), device=torch.device("cpu"))
