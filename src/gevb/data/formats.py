"""Splits from the file formats several data sets share: IDX (MNIST and the data sets in its format) and
CIFAR-10's binary batches, scaled to [-1, 1] (``scale_bytes``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gevb.data.datasets import Split, scale_bytes
from gevb.data.errors import DataError
from gevb.data.readers import FIX, read_cifar_batch, read_idx_images, read_idx_labels

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
IDX_NORMALIZATION = "((x / 255) - 0.5) / 0.5 (uint8 pixels to [-1, 1])"


def idx_splits(paths: dict[str, Path], size: tuple[int, int] = (28, 28), classes: int = 10) -> tuple[Split, Split]:
    """MNIST-style IDX files (``IDX_FILES``) -> train (``train-*``) and test (``t10k-*``) splits of
    (N, 1, *size) images, labels in 0..classes - 1."""

    def split(prefix: str) -> Split:
        images_path, labels_path = paths[f"{prefix}-images-idx3-ubyte"], paths[f"{prefix}-labels-idx1-ubyte"]
        images = read_idx_images(images_path, shape=size)  # (N, rows, cols)
        labels = read_idx_labels(labels_path, classes)
        if len(images) != len(labels):
            raise DataError(f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path}; {FIX}")
        return Split(scale_bytes(images[:, None]), torch.from_numpy(labels).to(torch.int64))

    return split("train"), split("t10k")


def cifar_splits(paths: dict[str, Path], train: tuple[str, ...], test: tuple[str, ...], classes: int = 10):
    """CIFAR binary batches -> the train split (the ``train`` files, in order) and the test split."""

    def split(files: tuple[str, ...]) -> Split:
        batches = [read_cifar_batch(paths[file], classes) for file in files]
        images = np.concatenate([images for images, _ in batches])  # (N, 3, 32, 32) uint8
        labels = np.concatenate([labels for _, labels in batches])
        return Split(scale_bytes(images), torch.from_numpy(labels).to(torch.int64))

    return split(train), split(test)
