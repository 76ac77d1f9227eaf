"""Whole data sets as tensors: each split is one (N, C, H, W) float tensor in [-1, 1] and one label tensor.

Pixels are scaled as ((x / 255) - 0.5) / 0.5 per channel (docs/method.md §7); digits' 0..16 values as x / 8 - 1.
Batches are index slices of these tensors; there is no DataLoader.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gevb.data.download import download_dataset
from gevb.data.errors import DataError
from gevb.data.readers import FIX, read_cifar_batch, read_idx_images, read_idx_labels
from gevb.data.sources import CIFAR_FILES, locate

DATASETS: tuple[str, ...] = ("digits", "mnist", "fashion-mnist", "cifar10")
NUM_CLASSES = 10
INPUT_SHAPES: dict[str, tuple[int, int, int]] = {
    "digits": (1, 8, 8),
    "mnist": (1, 28, 28),
    "fashion-mnist": (1, 28, 28),
    "cifar10": (3, 32, 32),
}
DIGITS_TEST_FRACTION = 0.2
DIGITS_SEED = 0


@dataclass(frozen=True)
class Split:
    """One split: ``x`` (N, C, H, W) float32 in [-1, 1]; ``y`` (N,) int64 labels in [0, num_classes)."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.dim() != 4 or self.y.shape != (self.x.shape[0],):
            shapes = f"{tuple(self.x.shape)} and {tuple(self.y.shape)}"
            raise ValueError(f"a split needs x (N, C, H, W) and y (N,), got {shapes}")

    def __len__(self) -> int:
        return self.y.shape[0]


@dataclass(frozen=True)
class Dataset:
    """A data set's train and test splits, with what a model needs to know about them."""

    name: str
    train: Split
    test: Split
    num_classes: int
    input_shape: tuple[int, int, int]  # (C, H, W)
    source: str  # the folder read, or "scikit-learn", for logs


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    device: torch.device | str | None = None,
) -> Dataset:
    """Read data set ``name`` (one of :data:`DATASETS`) whole and move it to ``device`` once.

    Files are searched as :func:`gevb.data.sources.search_dirs` says; when they are missing and ``download``
    is set they are fetched first (:func:`download_dataset`). ``digits`` needs no files and ignores both.
    Raises :class:`DataError` for an unknown name or a missing or corrupt file.
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if name == "digits":
        train, test, source = *_digits(), "scikit-learn"
    else:
        try:
            folder, paths = locate(name, data_dir)
        except DataError:
            if not download:
                raise
            download_dataset(name, data_dir)
            folder, paths = locate(name, data_dir)
        train, test = _cifar(paths) if name == "cifar10" else _idx(paths)
        source = str(folder)
    return Dataset(name, _to(train, device), _to(test, device), NUM_CLASSES, INPUT_SHAPES[name], source)


def scale_bytes(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 ((x / 255) - 0.5) / 0.5, so 0 -> -1 and 255 -> 1 exactly."""
    return torch.from_numpy(images).to(torch.float32).div_(255).sub_(0.5).div_(0.5)


def _digits() -> tuple[Split, Split]:
    """scikit-learn's 1,797 8x8 digits, split 80/20 stratified with a fixed seed (1,437 train / 360 test)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    images, labels = load_digits(return_X_y=True)  # (1797, 64) float64 in 0..16, (1797,)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=DIGITS_TEST_FRACTION, stratify=labels, random_state=DIGITS_SEED
    )

    def split(x: np.ndarray, y: np.ndarray) -> Split:
        x = torch.tensor(x, dtype=torch.float32).view(-1, *INPUT_SHAPES["digits"]) / 8 - 1  # (N, 1, 8, 8)
        return Split(x, torch.tensor(y, dtype=torch.int64))

    return split(x_train, y_train), split(x_test, y_test)


def _idx(paths: dict[str, Path]) -> tuple[Split, Split]:
    """MNIST-style IDX files -> train (``train-*``) and test (``t10k-*``) splits of (N, 1, 28, 28)."""

    def split(prefix: str) -> Split:
        images_path, labels_path = paths[f"{prefix}-images-idx3-ubyte"], paths[f"{prefix}-labels-idx1-ubyte"]
        images = read_idx_images(images_path, shape=INPUT_SHAPES["mnist"][1:])  # (N, 28, 28)
        labels = read_idx_labels(labels_path, NUM_CLASSES)
        if len(images) != len(labels):
            raise DataError(f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path}; {FIX}")
        return Split(scale_bytes(images[:, None]), torch.from_numpy(labels).to(torch.int64))

    return split("train"), split("t10k")


def _cifar(paths: dict[str, Path]) -> tuple[Split, Split]:
    """CIFAR-10 binary batches -> train (``data_batch_1..5``, in order) and test (``test_batch``) splits."""

    def split(files: tuple[str, ...]) -> Split:
        batches = [read_cifar_batch(paths[file], NUM_CLASSES) for file in files]
        images = np.concatenate([images for images, _ in batches])  # (N, 3, 32, 32) uint8
        labels = np.concatenate([labels for _, labels in batches])
        return Split(scale_bytes(images), torch.from_numpy(labels).to(torch.int64))

    return split(CIFAR_FILES[:-1]), split(CIFAR_FILES[-1:])


def _to(split: Split, device: torch.device | str | None) -> Split:
    return split if device is None else Split(split.x.to(device), split.y.to(device))
