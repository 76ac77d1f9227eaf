"""The data package (docs/method.md §8) on tiny files written in the real IDX and CIFAR-10 binary formats.

Downloads go to ``file://`` mirrors in a temporary folder; no test touches the network.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import re
import struct
import subprocess
import sys
import tarfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from conftest import FASHION_MNIST, require_data
from gevb.data import DATASETS, DataError, Download, default_data_dir, download_dataset, load_dataset
from gevb.data.digits import read_digits
from gevb.data.formats import IDX_FILES
from gevb.data.sets.cifar10 import FILES as CIFAR_FILES

TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS = IDX_FILES


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    """A private default data folder, and mirrors that point at an empty local folder."""
    monkeypatch.setenv("GEVB_DATA_DIR", str(tmp_path / "cache"))
    for name, found in DATASETS.items():
        if found.downloads:
            set_mirrors(monkeypatch, name, tmp_path / "no-mirror")


def mirror(folder: Path) -> str:
    return folder.as_uri() + "/"


def set_mirrors(monkeypatch, name: str, *folders: Path) -> None:
    """Data set ``name``'s mirrors, for the test: these local folders."""
    mirrors = tuple(mirror(folder) for folder in folders)
    monkeypatch.setitem(DATASETS, name, dataclasses.replace(DATASETS[name], mirrors=mirrors))


def set_md5(monkeypatch, name: str, file: str, md5: str) -> None:
    """The md5 data set ``name`` declares for ``file``, for the test."""
    downloads = tuple(Download(file, md5) if d.file == file else d for d in DATASETS[name].downloads)
    monkeypatch.setitem(DATASETS, name, dataclasses.replace(DATASETS[name], downloads=downloads))


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def idx_bytes(array: np.ndarray, magic: int | None = None, dims: tuple[int, ...] | None = None) -> bytes:
    """An IDX file: big-endian magic and sizes, then the uint8 data."""
    magic = magic if magic is not None else (2051 if array.ndim == 3 else 2049)
    dims = dims if dims is not None else array.shape
    return struct.pack(f">I{len(dims)}I", magic, *dims) + array.astype(np.uint8).tobytes()


def write(path: Path, data: bytes) -> Path:
    """Write ``data``, gzip-compressed when the name ends in ``.gz``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def fake_mnist(folder: Path, gz: bool = False, n_train: int = 4, n_test: int = 3) -> dict[str, np.ndarray]:
    """Four IDX files; train image 0 is black but for one white pixel at (row 3, col 17)."""
    rng = np.random.default_rng(0)
    arrays = {
        TRAIN_IMAGES: rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        TRAIN_LABELS: rng.integers(0, 10, n_train, dtype=np.uint8),
        TEST_IMAGES: rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        TEST_LABELS: rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    arrays[TRAIN_IMAGES][0] = 0
    arrays[TRAIN_IMAGES][0, 3, 17] = 255
    arrays[TRAIN_LABELS][:2] = (0, 9)
    for stem, array in arrays.items():
        write(folder / (stem + ".gz" * gz), idx_bytes(array))
    return arrays


def cifar_bytes(images: np.ndarray, labels: np.ndarray) -> bytes:
    """CIFAR-10 binary records: one label byte, then the (3, 32, 32) image channel-major."""
    return np.concatenate([labels[:, None], images.reshape(len(labels), -1)], axis=1).astype(np.uint8).tobytes()


def fake_cifar(folder: Path, records: int = 2) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Six batch files; in the test batch, image 0 has channel c filled with 60 (c + 1), and (2, 5, 9) = 255."""
    rng = np.random.default_rng(1)
    batches = {}
    for file in CIFAR_FILES:
        images = rng.integers(0, 256, (records, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, 10, records, dtype=np.uint8)
        batches[file] = images, labels
    images, labels = batches["test_batch.bin"]
    images[0] = np.array([60, 120, 180], dtype=np.uint8)[:, None, None]
    images[0, 2, 5, 9] = 255
    labels[0] = 7
    for file, (images, labels) in batches.items():
        write(folder / file, cifar_bytes(images, labels))
    return batches


def scaled(images: np.ndarray) -> torch.Tensor:
    return (torch.from_numpy(images.astype(np.float32)) / 255 - 0.5) / 0.5


def data_error(call: Callable[[], object], file: str | Path) -> str:
    """Run ``call``, expecting a one-line DataError that names ``file``; return the message."""
    with pytest.raises(DataError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and str(file) in message, message
    return message


# -- MNIST / Fashion-MNIST IDX files -------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_idx_files_load_with_exact_scaling_and_pixel_order(tmp_path, name, gz):
    arrays = fake_mnist(tmp_path, gz=gz)
    data = load_dataset(name, data_dir=tmp_path)
    assert (data.name, data.num_classes, data.input_shape, data.source) == (name, 10, (1, 28, 28), str(tmp_path))
    assert (len(data.train), len(data.test)) == (4, 3)
    assert data.train.x.shape == (4, 1, 28, 28) and data.train.x.dtype == torch.float32
    assert data.train.y.dtype == torch.int64
    assert_close(data.train.x, scaled(arrays[TRAIN_IMAGES][:, None]), rtol=0, atol=0)
    assert_close(data.test.x, scaled(arrays[TEST_IMAGES][:, None]), rtol=0, atol=0)
    assert data.train.y.tolist() == arrays[TRAIN_LABELS].tolist()
    assert data.test.y.tolist() == arrays[TEST_LABELS].tolist()
    white = torch.full((28, 28), -1.0)
    white[3, 17] = 1.0
    assert torch.equal(data.train.x[0, 0], white)  # 0 -> -1 and 255 -> 1 exactly, at (row, col)


def test_idx_files_in_a_subfolder_named_after_the_dataset(tmp_path):
    arrays = fake_mnist(tmp_path / "mnist")
    data = load_dataset("mnist", data_dir=tmp_path)
    assert data.source == str(tmp_path / "mnist")
    assert data.test.y.tolist() == arrays[TEST_LABELS].tolist()


def test_plain_file_is_preferred_to_gz_and_the_two_may_mix(tmp_path):
    arrays = fake_mnist(tmp_path, gz=True)
    labels = (arrays[TRAIN_LABELS] + 1) % 10
    write(tmp_path / TRAIN_LABELS, idx_bytes(labels))
    (tmp_path / f"{TEST_LABELS}.gz").rename(tmp_path / "elsewhere")
    write(tmp_path / TEST_LABELS, idx_bytes(arrays[TEST_LABELS]))
    data = load_dataset("mnist", data_dir=tmp_path)
    assert data.train.y.tolist() == labels.tolist()
    assert data.test.y.tolist() == arrays[TEST_LABELS].tolist()


def good_images() -> np.ndarray:
    return np.zeros((4, 28, 28), dtype=np.uint8)


IDX_CORRUPTIONS = {
    # id: (file written over the good one, its content, a fragment of the message)
    "bad-magic": (TRAIN_IMAGES, idx_bytes(good_images(), magic=1234), "bad magic number 1234"),
    "images-as-labels": (TRAIN_LABELS, idx_bytes(good_images()), "3 dimensions, expected 1"),
    "four-dims": (TRAIN_IMAGES, idx_bytes(good_images()[..., None], magic=0x804), "4 dimensions, expected 3"),
    "zero-count": (TRAIN_IMAGES, idx_bytes(good_images()[:0]), "zero"),
    "wrong-image-size": (TRAIN_IMAGES, idx_bytes(good_images()[:, :27]), "27x28, expected 28x28"),
    "truncated": (TRAIN_IMAGES, idx_bytes(good_images())[:-5], "truncated"),
    "truncated-header": (TRAIN_IMAGES, idx_bytes(good_images())[:10], "truncated"),
    "trailing-bytes": (TRAIN_IMAGES, idx_bytes(good_images()) + b"\0", "trailing bytes"),
    "truncated.gz": (f"{TRAIN_IMAGES}.gz", idx_bytes(good_images())[:-5], "truncated"),
    "trailing-bytes.gz": (f"{TEST_LABELS}.gz", idx_bytes(np.zeros(3)) + b"\0", "trailing bytes"),
    "label-out-of-range": (TEST_LABELS, idx_bytes(np.array([0, 10, 1])), "label 10 is out of range 0..9"),
    "count-mismatch": (TRAIN_LABELS, idx_bytes(np.zeros(5)), "5 labels for 4 images"),
    "not-gzip.gz": (f"{TRAIN_IMAGES}.gz", None, "cannot be read"),
    "cut-gzip-stream.gz": (f"{TRAIN_IMAGES}.gz", None, "cannot be read"),
    "damaged-gzip-data.gz": (f"{TRAIN_IMAGES}.gz", None, "cannot be read"),
    "invalid-deflate-block.gz": (f"{TRAIN_IMAGES}.gz", None, "invalid block type"),
}


def corrupt_gzip(kind: str) -> bytes:
    packed = bytearray(gzip.compress(idx_bytes(np.random.default_rng(2).integers(0, 256, (4, 28, 28)))))
    if kind == "not-gzip.gz":
        return b"this is not a gzip file"
    if kind == "cut-gzip-stream.gz":
        return bytes(packed[: len(packed) // 2])
    if kind == "invalid-deflate-block.gz":  # a gzip header, then a DEFLATE block of the reserved type 3 (zlib.error)
        return bytes(packed[:10]) + b"\x07" + bytes(20)
    packed[len(packed) // 2] ^= 0xFF
    return bytes(packed)


@pytest.mark.parametrize("kind", IDX_CORRUPTIONS)
def test_every_idx_corruption_names_the_file_and_the_fix(tmp_path, kind):
    file, content, fragment = IDX_CORRUPTIONS[kind]
    fake_mnist(tmp_path)
    (tmp_path / file.removesuffix(".gz")).unlink()
    path = tmp_path / file
    if content is None:
        path.write_bytes(corrupt_gzip(kind))
    else:
        write(path, content)
    message = data_error(lambda: load_dataset("mnist", data_dir=tmp_path), path)
    assert fragment in message and "--download" in message, message


def test_missing_file_names_it_and_every_way_to_supply_it(tmp_path):
    fake_mnist(tmp_path)
    (tmp_path / TEST_LABELS).unlink()
    message = data_error(lambda: load_dataset("mnist", data_dir=tmp_path), tmp_path / TEST_LABELS)
    assert message == (
        f"mnist: missing {tmp_path / TEST_LABELS}(.gz); put the IDX files there, pass --data-dir DIR, or add --download"
    )


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_forged_huge_count_fails_before_allocating(tmp_path, suffix):
    fake_mnist(tmp_path)
    (tmp_path / TRAIN_IMAGES).unlink()
    path = write(tmp_path / (TRAIN_IMAGES + suffix), idx_bytes(good_images(), dims=(10**9, 28, 28)))
    tracemalloc.start()
    try:
        data_error(lambda: load_dataset("mnist", data_dir=tmp_path), path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20, peak  # 10^9 images would be 784 GB


def test_gzip_bomb_is_read_no_further_than_its_header_says(tmp_path):
    fake_mnist(tmp_path)
    (tmp_path / TRAIN_IMAGES).unlink()
    bomb = write(tmp_path / f"{TRAIN_IMAGES}.gz", idx_bytes(good_images()) + bytes(2**25))  # 32 MiB of zeros
    assert bomb.stat().st_size < 2**16
    tracemalloc.start()
    try:
        message = data_error(lambda: load_dataset("mnist", data_dir=tmp_path), bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "trailing bytes" in message
    assert peak < 4 * 2**20, peak


# -- CIFAR-10 binary batches ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("subfolder", ["", "cifar-10-batches-bin"])
def test_cifar_batches_load_channel_major_in_batch_order(tmp_path, subfolder):
    batches = fake_cifar(tmp_path / subfolder)
    data = load_dataset("cifar10", data_dir=tmp_path)
    assert (data.input_shape, data.source) == ((3, 32, 32), str(tmp_path / subfolder))
    assert data.train.x.shape == (10, 3, 32, 32) and data.test.x.shape == (2, 3, 32, 32)
    train_images = np.concatenate([batches[file][0] for file in CIFAR_FILES[:5]])
    train_labels = np.concatenate([batches[file][1] for file in CIFAR_FILES[:5]])
    assert_close(data.train.x, scaled(train_images), rtol=0, atol=0)
    assert data.train.y.tolist() == train_labels.tolist()
    first = data.test.x[0]
    assert data.test.y[0] == 7
    for channel, value in enumerate((60, 120, 180)):
        expected = scaled(np.full((32, 32), value))
        if channel == 2:
            expected[5, 9] = 1.0
        assert_close(first[channel], expected, rtol=0, atol=0)


CIFAR_CORRUPTIONS = {
    "not-whole-records": (b"\0" * (3073 * 2 + 1), "not a positive multiple of the 3073-byte record"),
    "empty": (b"", "not a positive multiple"),
    "label-out-of-range": (cifar_bytes(np.zeros((2, 3, 32, 32)), np.array([3, 10])), "label 10 is out of range"),
}


@pytest.mark.parametrize("kind", CIFAR_CORRUPTIONS)
def test_every_cifar_corruption_names_the_file(tmp_path, kind):
    content, fragment = CIFAR_CORRUPTIONS[kind]
    fake_cifar(tmp_path)
    path = write(tmp_path / "data_batch_3.bin", content)
    message = data_error(lambda: load_dataset("cifar10", data_dir=tmp_path), path)
    assert fragment in message and "--download" in message, message


def test_missing_cifar_batch_is_named(tmp_path):
    fake_cifar(tmp_path)
    (tmp_path / "test_batch.bin").unlink()
    message = data_error(lambda: load_dataset("cifar10", data_dir=tmp_path), tmp_path / "test_batch.bin")
    assert "--download" in message and "--data-dir" in message


# -- scikit-learn digits -------------------------------------------------------------------------------------------


def test_digits_split_is_stratified_80_20_fixed_and_scaled(digits):
    data = load_dataset("digits", data_dir="/nonexistent", download=True)  # both ignored
    assert (len(data.train), len(data.test), data.input_shape, data.source) == (1437, 360, (1, 8, 8), "scikit-learn")
    assert data.train.x.shape == (1437, 1, 8, 8) and data.train.x.dtype == torch.float32
    assert data.train.x.min() == -1 and data.train.x.max() == 1
    train_counts, test_counts = data.train.y.bincount(minlength=10), data.test.y.bincount(minlength=10)
    assert ((train_counts - 0.8 * (train_counts + test_counts)).abs() <= 1).all()
    again = load_dataset("digits")
    assert torch.equal(again.train.x, data.train.x) and torch.equal(again.test.y, data.test.y)
    x, y = digits  # all 1,797, scaled independently in conftest: the split is a partition of them
    rows = sorted(map(bytes, torch.cat([x.view(-1, 64), y[:, None].float()], 1).numpy()))
    split_x, split_y = torch.cat([data.train.x, data.test.x]), torch.cat([data.train.y, data.test.y])
    assert rows == sorted(map(bytes, torch.cat([split_x.view(-1, 64), split_y[:, None].float()], 1).numpy()))


def test_digits_equal_scikit_learns_stratified_split_in_order():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    images, labels = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(images, labels, test_size=0.2, stratify=labels, random_state=0)
    data = load_dataset("digits")
    scale = lambda x: torch.tensor(x, dtype=torch.float32).view(-1, 1, 8, 8) / 8 - 1  # noqa: E731
    assert torch.equal(data.train.x, scale(x_train)) and torch.equal(data.test.x, scale(x_test))
    assert torch.equal(data.train.y, torch.tensor(y_train)) and torch.equal(data.test.y, torch.tensor(y_test))


def test_the_command_and_the_digits_import_no_scikit_learn():
    """scikit-learn takes ~1.4 s to import: only the analyses that use it (t-SNE) import it, when they run."""
    code = "import sys, gevb.cli; gevb.data.load_dataset('digits'); print('sklearn' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


@pytest.mark.parametrize(
    "raw, problem",
    [(b"not gzip", "not scikit-learn's digits table"), (gzip.compress(b"1,2,3\n4,5,6\n", mtime=0), "(2, 3) table")],
    ids=["not-gzip", "wrong-shape"],
)
def test_a_damaged_digits_file_is_a_data_error(raw, problem):
    with pytest.raises(DataError, match=re.escape(problem)):
        read_digits(raw)


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_tensors_land_on_the_requested_device(tmp_path, device):
    fake_mnist(tmp_path)
    for data in (load_dataset("digits", device=device), load_dataset("mnist", data_dir=tmp_path, device=device)):
        for tensor in (data.train.x, data.train.y, data.test.x, data.test.y):
            assert tensor.device.type == device


def test_unknown_name_lists_the_choices():
    message = data_error(lambda: load_dataset("svhn"), "svhn")
    assert all(name in message for name in DATASETS)


def test_default_data_dir_follows_the_environment(tmp_path, monkeypatch):
    assert default_data_dir("mnist") == tmp_path / "cache" / "mnist"
    monkeypatch.delenv("GEVB_DATA_DIR")
    assert default_data_dir("cifar10") == Path.home() / ".cache" / "gevb" / "cifar10"


# -- downloads from file:// mirrors --------------------------------------------------------------------------------


@pytest.fixture
def mnist_remote(tmp_path, monkeypatch) -> tuple[Path, dict[str, np.ndarray]]:
    """Gzipped MNIST files behind a second mirror (the first one lacks them), with their md5 declared."""
    remote = tmp_path / "remote"
    arrays = fake_mnist(remote, gz=True)
    set_mirrors(monkeypatch, "mnist", tmp_path / "empty", remote)
    for stem in IDX_FILES:
        set_md5(monkeypatch, "mnist", f"{stem}.gz", md5(remote / f"{stem}.gz"))
    return remote, arrays


def test_download_fetches_verifies_and_loads(tmp_path, mnist_remote):
    remote, arrays = mnist_remote
    data = load_dataset("mnist", data_dir=tmp_path / "dest", download=True)
    assert data.train.y.tolist() == arrays[TRAIN_LABELS].tolist()
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == sorted(f"{stem}.gz" for stem in IDX_FILES)
    for stem in IDX_FILES:
        assert (tmp_path / "dest" / f"{stem}.gz").read_bytes() == (remote / f"{stem}.gz").read_bytes()


def test_download_goes_to_the_default_folder(tmp_path, mnist_remote):
    assert download_dataset("mnist") == tmp_path / "cache" / "mnist"
    assert load_dataset("mnist").source == str(tmp_path / "cache" / "mnist")


def test_checksum_mismatch_leaves_nothing_behind(tmp_path, mnist_remote, monkeypatch):
    set_md5(monkeypatch, "mnist", f"{TRAIN_IMAGES}.gz", "0" * 32)
    dest = tmp_path / "dest"
    message = data_error(lambda: load_dataset("mnist", data_dir=dest, download=True), dest / f"{TRAIN_IMAGES}.gz")
    assert "expected 00000000000000000000000000000000" in message
    assert all(url in message for url in DATASETS["mnist"].mirrors)
    assert not dest.exists()  # nor the folder it created for them


def test_a_failed_download_leaves_no_folder_it_created_and_keeps_one_that_was_there(
    tmp_path, mnist_remote, monkeypatch
):
    set_mirrors(monkeypatch, "mnist", tmp_path / "empty")
    with pytest.raises(DataError):
        download_dataset("mnist")  # into $GEVB_DATA_DIR/mnist, neither of which exists yet
    assert not (tmp_path / "cache").exists()
    (tmp_path / "mine").mkdir()
    with pytest.raises(DataError):
        download_dataset("mnist", tmp_path / "mine" / "mnist")
    assert (tmp_path / "mine").is_dir() and not (tmp_path / "mine" / "mnist").exists()


def test_verified_files_are_kept_and_damaged_ones_replaced(tmp_path, mnist_remote, monkeypatch):
    remote, _ = mnist_remote
    dest = download_dataset("mnist", tmp_path / "dest")
    (dest / f"{TEST_LABELS}.gz").write_bytes(b"damaged")
    stamps = {p.name: p.stat().st_mtime_ns for p in dest.iterdir() if p.name != f"{TEST_LABELS}.gz"}
    download_dataset("mnist", dest)
    assert (dest / f"{TEST_LABELS}.gz").read_bytes() == (remote / f"{TEST_LABELS}.gz").read_bytes()
    set_mirrors(monkeypatch, "mnist", tmp_path / "empty")
    download_dataset("mnist", dest)  # every file verified: nothing fetched from the empty mirror
    assert {name: (dest / name).stat().st_mtime_ns for name in stamps} == stamps


def test_nothing_is_fetched_unless_asked(tmp_path, mnist_remote):
    dest = tmp_path / "dest"
    message = data_error(lambda: load_dataset("mnist", data_dir=dest), dest / TRAIN_IMAGES)
    assert "add --download" in message
    assert not dest.exists()


def test_digits_and_unknown_names_cannot_be_downloaded():
    for name in ("digits", "svhn"):
        message = data_error(lambda name=name: download_dataset(name), name)
        assert "mnist" in message


def cifar_archive(path: Path, source: Path, extra: dict[str, bytes], link: str | None = None) -> Path:
    """A tar.gz of ``source``'s six batches under ``cifar-10-batches-bin/``, plus ``extra`` members."""
    with tarfile.open(path, "w:gz") as tar:
        for file in CIFAR_FILES:
            tar.add(source / file, arcname=f"cifar-10-batches-bin/{file}")
        for name, data in extra.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if link is not None:
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{link}")
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
    return path


def serve_cifar(tmp_path: Path, monkeypatch, **kwargs) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    batches = fake_cifar(tmp_path / "batches")
    remote = tmp_path / "remote"
    remote.mkdir()
    archive = cifar_archive(remote / "cifar-10-binary.tar.gz", tmp_path / "batches", **kwargs)
    set_mirrors(monkeypatch, "cifar10", remote)
    set_md5(monkeypatch, "cifar10", "cifar-10-binary.tar.gz", md5(archive))
    return batches


def test_cifar_download_extracts_only_the_six_named_members(tmp_path, monkeypatch):
    evil = {"../evil": b"x", "cifar-10-batches-bin/../../evil": b"x", "cifar-10-batches-bin/readme.txt": b"x"}
    batches = serve_cifar(tmp_path, monkeypatch, extra=evil)
    dest = tmp_path / "work" / "dest"
    data = load_dataset("cifar10", data_dir=dest, download=True)
    assert sorted(p.name for p in dest.iterdir()) == sorted(CIFAR_FILES)  # the archive is removed
    for file in CIFAR_FILES:
        assert (dest / file).read_bytes() == (tmp_path / "batches" / file).read_bytes()
    assert not list(tmp_path.rglob("*evil*")) and not (tmp_path.parent / "evil").exists()
    assert data.test.y.tolist() == batches["test_batch.bin"][1].tolist()


def test_cifar_archive_with_a_link_for_a_batch_is_refused(tmp_path, monkeypatch):
    serve_cifar(tmp_path, monkeypatch, extra={}, link="data_batch_2.bin")
    dest = tmp_path / "dest"
    message = data_error(lambda: download_dataset("cifar10", dest), "cifar-10-batches-bin/data_batch_2.bin")
    assert "cifar-10-binary.tar.gz" in message
    assert not (dest / "data_batch_2.bin").exists() and not list(dest.glob("*.part"))


# -- the real Fashion-MNIST from Debian's dataset-fashion-mnist ----------------------------------------------------


def test_real_fashion_mnist_from_the_debian_package():
    require_data(FASHION_MNIST, "apt-get install dataset-fashion-mnist")
    assert FASHION_MNIST in DATASETS["fashion-mnist"].system_dirs
    data = load_dataset("fashion-mnist")  # the default folder is empty, so the system folder is found
    assert data.source == str(FASHION_MNIST)
    assert data.train.x.shape == (60000, 1, 28, 28) and data.test.x.shape == (10000, 1, 28, 28)
    assert data.train.x.dtype == torch.float32 and data.train.y.dtype == torch.int64
    for split, per_class in ((data.train, 6000), (data.test, 1000)):
        assert split.x.min() == -1 and split.x.max() == 1
        assert split.y.bincount().tolist() == [per_class] * 10  # Fashion-MNIST is exactly balanced
