"""Labels are classes: integers 0..K-1 in every split, with K declared (an ``.npz``'s ``num_classes``) or read
from the training labels' range, and every class of 0..K-1 has a training example unless K is declared."""

from __future__ import annotations

import warnings

import numpy as np

from gevb.data.errors import DataError

FIX = "relabel the classes 0..K-1, or declare K as a num_classes array in the .npz"


def absent_classes(present: np.ndarray, count: int) -> list[tuple[int, int]]:
    """The classes of 0..``count``-1 missing from the sorted unique labels ``present``, as inclusive ranges."""
    bounds = [-1, *present.tolist(), count]
    return [(low + 1, high - 1) for low, high in zip(bounds, bounds[1:], strict=False) if high - low > 1]


def classes_text(ranges: list[tuple[int, int]]) -> str:
    """ "class 1 has", "classes 1, 3 have" or "classes 3..254 have": ranges of 3 or more as a..b."""
    parts = []
    for low, high in ranges:
        parts += [f"{low}..{high}"] if high - low >= 2 else [str(number) for number in range(low, high + 1)]
    single = len(parts) == 1 and ".." not in parts[0]
    return f"class {parts[0]} has" if single else f"classes {', '.join(parts)} have"


def class_count(source: str, labels: dict[str, np.ndarray], declared: int | None = None) -> int:
    """K for the labels of each split (``labels``: split name -> integer labels, ``train`` first), checked: K is
    ``declared`` or the training labels' largest + 1; every label lies in 0..K-1; every class has a training
    example (with a declared K, a missing class is a warning). Raises DataError naming ``source``, the split,
    the label and the fix."""
    if declared is not None and declared < 2:
        raise DataError(f"{source}: num_classes is {declared}; a classifier needs at least 2 classes")
    train = labels["train"]
    count = declared if declared is not None else int(train.max()) + 1
    where = f"num_classes declares {count}" if declared is not None else f"the classes of y_train are 0..{count - 1}"
    for part, values in labels.items():
        if values.size and int(values.min()) < 0:
            raise DataError(f"{source}: y_{part} holds a negative label {int(values.min())}; {FIX}")
        if values.size and int(values.max()) >= count:
            label = int(values.max())
            raise DataError(f"{source}: y_{part} holds label {label}, outside 0..{count - 1} ({where}); {FIX}")
    if count < 2:
        raise DataError(f"{source}: the labels name only one class; a classifier needs two or more")
    absent = absent_classes(np.unique(train), count)
    if absent and declared is None:
        raise DataError(
            f"{source}: y_train's largest label {count - 1} makes {count} classes, but {classes_text(absent)} no "
            f"training example; {FIX} to keep absent classes"
        )
    if absent:
        warnings.warn(f"{source}: {classes_text(absent)} no training example ({where})", UserWarning, stacklevel=3)
    return count
