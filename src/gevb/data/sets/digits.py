"""scikit-learn's 1,797 8x8 digits (``gevb.data.digits``): the default data set, shipped with scikit-learn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gevb.data.datasets import Split
from gevb.data.digits import digits_splits
from gevb.data.registry import DatasetDefinition, register_dataset

SHAPE = (1, 8, 8)


def read(paths: dict[str, Path]) -> tuple[Split, Split]:
    """gevb's fixed stratified 80/20 split (1,437 train / 360 test), pixels 0..16 scaled as x / 8 - 1."""

    def split(x: np.ndarray, y: np.ndarray) -> Split:
        return Split(torch.from_numpy(x).to(torch.float32).view(-1, *SHAPE) / 8 - 1, torch.from_numpy(y))

    (x_train, y_train), (x_test, y_test) = digits_splits()
    return split(x_train, y_train), split(x_test, y_test)


SCALING = "x / 8 - 1 (pixels 0..16 to [-1, 1])"
register_dataset(DatasetDefinition("digits", "Digits", SHAPE, 10, read, SCALING, package="scikit-learn"))
