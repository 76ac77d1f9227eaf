"""Kuzushiji-MNIST (``gevb/data/sets/kmnist.py``), the data set added as one file: read from IDX files written
here in its format (it cannot be downloaded on this machine), fetched from a local mirror with the md5s checked,
and listed wherever data sets are (the command line, ``--download``, report titles)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gevb.cli import main
from gevb.data import DATASETS, download_dataset, load_dataset
from gevb.data.formats import IDX_FILES
from gevb.paper import dataset_title
from test_data import fake_mnist, md5, offline, set_md5, set_mirrors  # noqa: F401  (offline: the fixture)


def test_kmnist_reads_its_idx_files_scaled_like_mnist(tmp_path):
    arrays = fake_mnist(tmp_path, n_train=6, n_test=5)
    data = load_dataset("kmnist", data_dir=tmp_path)
    assert (data.name, data.num_classes, data.input_shape) == ("kmnist", 10, (1, 28, 28))
    assert data.train.x.shape == (6, 1, 28, 28) and data.test.x.shape == (5, 1, 28, 28)
    assert data.train.x[0, 0, 3, 17] == 1 and data.train.x[0, 0, 0, 0] == -1  # 255 -> 1, 0 -> -1
    assert data.train.y.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert len(data.files) == 4 and data.source == str(tmp_path)


def test_gevb_train_on_kmnist_from_a_data_folder(tmp_path, capsys):
    folder = tmp_path / "kmnist"
    fake_mnist(folder, n_train=40, n_test=10)
    argv = ["train", "--dataset", "kmnist", "--data-dir", str(folder), "--model", "fc", "--epochs", "1", "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "run"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["config"]["dataset"] == "kmnist"
    assert result["data"]["source"] == str(folder) and len(result["data"]["files"]) == 4


def test_kmnist_downloads_from_its_mirrors_with_its_md5s(tmp_path, monkeypatch):
    remote = tmp_path / "remote"
    fake_mnist(remote, gz=True)
    assert [download.file for download in DATASETS["kmnist"].downloads] == [f"{stem}.gz" for stem in IDX_FILES]
    set_mirrors(monkeypatch, "kmnist", remote)
    for stem in IDX_FILES:
        set_md5(monkeypatch, "kmnist", f"{stem}.gz", md5(remote / f"{stem}.gz"))
    folder = download_dataset("kmnist")
    assert folder.name == "kmnist" and sorted(path.name for path in folder.iterdir()) == sorted(
        f"{stem}.gz" for stem in IDX_FILES
    )
    assert load_dataset("kmnist").train.x.dtype == torch.float32


def test_kmnist_is_listed_wherever_data_sets_are(capsys):
    assert "kmnist" in DATASETS and dataset_title("kmnist") == "Kuzushiji-MNIST"
    with pytest.raises(SystemExit):
        main(["reproduce", "--help"])
    assert "kmnist" in capsys.readouterr().out
    assert main(["train", "--dataset", "no-such-set", "--dry-run"]) == 2
    assert "kmnist" in capsys.readouterr().err


def test_published_checksums_are_md5s():
    for download in DATASETS["kmnist"].downloads:
        assert len(download.md5) == 32 and int(download.md5, 16) >= 0
    assert np.unique([download.md5 for download in DATASETS["kmnist"].downloads]).size == 4
