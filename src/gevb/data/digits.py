"""scikit-learn's 1,797 8x8 digits, read from the file scikit-learn ships, without importing scikit-learn.

Importing scikit-learn takes about 1.4 s, more than a short digits run trains; every ``gevb`` command, test
process and grid job on the default data set paid it. The train/test split is the one gevb has always used,
``train_test_split(..., test_size=0.2, stratify=labels, random_state=0)``, stored as row order in
``digits-split.txt`` (tests/test_data.py holds it equal to that call), so it no longer depends on the version
of scikit-learn either.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
from pathlib import Path

import numpy as np

from gevb.data.errors import DataError

DIGITS_COUNT, DIGITS_PIXELS = 1797, 64
SPLIT_FILE = Path(__file__).with_name("digits-split.txt")


def digits_file() -> Path:
    """``sklearn/datasets/data/digits.csv.gz``, found without importing scikit-learn."""
    spec = importlib.util.find_spec("sklearn")
    folders = (spec.submodule_search_locations or []) if spec is not None else []
    path = Path(folders[0] if folders else ".") / "datasets" / "data" / "digits.csv.gz"
    if not folders or not path.is_file():
        raise DataError("scikit-learn's digits.csv.gz is missing; reinstall scikit-learn (pip install scikit-learn)")
    return path


def read_digits(raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The bytes of ``digits.csv.gz`` -> images (1797, 64) int64 in 0..16 and labels (1797,) int64.

    Each CSV row is 64 pixel values and the label.
    """
    try:
        table = np.loadtxt(io.BytesIO(gzip.decompress(raw)), delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, ValueError) as error:
        raise DataError(f"digits.csv.gz is not scikit-learn's digits table ({error}); reinstall scikit-learn") from None
    if table.shape != (DIGITS_COUNT, DIGITS_PIXELS + 1) or table.min() < 0 or table[:, :-1].max() > 16:
        raise DataError(f"digits.csv.gz holds a {table.shape} table, not 1797 rows of 64 pixels and a label")
    return table[:, :-1], table[:, -1]


def read_split(text: str) -> tuple[np.ndarray, np.ndarray]:
    """``digits-split.txt`` -> (train rows, test rows): lines ``train i i ...`` and ``test i i ...``."""
    rows = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, *values = line.split()
            rows[name] = np.array(values, dtype=np.int64)
    return rows["train"], rows["test"]


def digits_splits() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """((train images, train labels), (test images, test labels)) in gevb's fixed split and order."""
    images, labels = read_digits(digits_file().read_bytes())
    train, test = read_split(SPLIT_FILE.read_text())
    return (images[train], labels[train]), (images[test], labels[test])
