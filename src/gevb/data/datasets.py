"""Whole data sets as tensors: each split is one (N, C, H, W) float tensor in [-1, 1] and one label tensor.

A registered data set (``gevb.data.registry``) is read by its definition, which scales its pixels (uint8
images as ((x / 255) - 0.5) / 0.5 per channel, docs/method.md §7; digits' 0..16 values as x / 8 - 1); an
``.npz`` file of your own is read here. Batches are index slices of these tensors; there is no DataLoader.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from gevb.data.download import download_dataset
from gevb.data.errors import DataError
from gevb.data.fingerprint import arrays_sha256, combined_sha256, file_sha256
from gevb.data.labels import class_count
from gevb.data.readers import NPZ_ARRAYS, read_npz
from gevb.data.registry import definition
from gevb.data.sources import locate


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
    val: Split | None = None  # carved from the training split by ``with_validation``
    files: dict[str, str] = field(default_factory=dict)  # each file read -> its SHA-256; none for arrays
    fingerprint: str = ""  # SHA-256 of ``files`` (``combined_sha256``), else of the splits' tensors as given

    def __post_init__(self) -> None:
        """Labels are checked here, once per data set, so that no training step has to (a range check on
        a GPU tensor is a host-device synchronization); the fingerprint is taken once, before any
        ``with_validation`` (which keeps it)."""
        if not self.fingerprint and self.train.y.device.type != "meta":
            splits = {"train": self.train, "test": self.test}
            if self.files:
                fingerprint = combined_sha256(self.files)
            else:
                tensors = {f"{key}_{part}": getattr(split, key) for part, split in splits.items() for key in "xy"}
                fingerprint = arrays_sha256({name: tensor.cpu().numpy() for name, tensor in tensors.items()})
            object.__setattr__(self, "fingerprint", fingerprint)
        for part, split in (("train", self.train), ("test", self.test), ("val", self.val)):
            if split is None or not len(split):
                continue
            y = split.y
            if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
                raise ValueError(f"{self.name}: {part} labels must be integers, got {y.dtype}")
            if y.device.type == "meta":  # shapes only, no values to check
                continue
            low, high = (int(value) for value in torch.aminmax(y))
            if low < 0 or high >= self.num_classes:
                raise ValueError(
                    f"{self.name}: {part} labels lie in [{low}, {high}], outside [0, {self.num_classes}); "
                    "set num_classes to the label count"
                )

    def record(self) -> dict[str, object]:
        """What a run records of its data: ``dataset`` (the name), ``source``, ``sha256`` and each file's."""
        return {"dataset": self.name, "source": self.source, "sha256": self.fingerprint, "files": dict(self.files)}


def with_validation(data: Dataset, fraction: float, seed: int) -> Dataset:
    """``data`` with a random ``fraction`` of its training split (at least one example) moved to ``val``.

    The split is drawn from ``seed`` alone, so a run and its resume, or two rules on one seed, see the
    same examples; the test split is untouched (decisions use train or val, never test).
    """
    if fraction <= 0:
        return data
    size = len(data.train)
    count = max(1, round(fraction * size))
    if count >= size:
        raise ValueError(f"val_fraction {fraction} leaves no training example of {size}; use a smaller fraction")
    order = torch.randperm(size, generator=torch.Generator().manual_seed(seed)).to(data.train.x.device)
    val, train = order[:count], order[count:]
    lost = sorted(set(data.train.y.unique().tolist()) - set(data.train.y[train].unique().tolist()))
    if lost:
        raise ValueError(
            f"val_fraction {fraction} leaves {len(train)} of {size} training examples, and class {lost[0]} has none "
            "left; use a smaller fraction"
        )
    take = lambda index: Split(data.train.x[index], data.train.y[index])  # noqa: E731
    return dataclasses.replace(data, train=take(train), val=take(val))


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    device: torch.device | str | None = None,
) -> Dataset:
    """Read data set ``name`` (a registered one, ``gevb.data.registry.dataset_names()``, or the path of an
    ``.npz`` file of your own) whole and move it to ``device`` once.

    Files are searched as :func:`gevb.data.sources.search_dirs` says; when they are missing and ``download``
    is set they are fetched first (:func:`gevb.data.download.download_dataset`). A data set without files
    (digits) ignores both. Raises :class:`DataError` for an unknown name or a missing or corrupt file.
    """
    if name.endswith(".npz"):
        return _npz(name, Path(name).expanduser(), device)
    found = definition(name)
    if found.files:
        try:
            folder, paths = locate(name, data_dir)
        except DataError:
            if not download:
                raise
            download_dataset(name, data_dir)
            folder, paths = locate(name, data_dir)
        source = str(folder)
    else:
        paths, source = {}, found.package or found.title
    train, test = found.read(paths)
    files = {str(path): file_sha256(path) for path in paths.values()}  # after a read that checked them
    train, test = _to(train, device), _to(test, device)
    return Dataset(name, train, test, found.num_classes, found.input_shape, source, files=files)


def scale_bytes(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 ((x / 255) - 0.5) / 0.5, so 0 -> -1 and 255 -> 1 exactly."""
    return torch.from_numpy(images).to(torch.float32).div_(255).sub_(0.5).div_(0.5)


def _npz(name: str, path: Path, device: torch.device | str | None) -> Dataset:
    """Your own data: ``x_train``, ``y_train``, ``x_test``, ``y_test`` (``read_npz``). Images may be (N, D),
    (N, H, W) or (N, C, H, W); uint8 pixels are scaled to [-1, 1] like the built-in sets, floats are
    used as they are. Labels are integers 0..K-1; K (the vector dimension of a VNN) is the archive's
    ``num_classes`` if it holds one, else the training labels' largest + 1 (``class_count``)."""
    if path.is_dir():
        raise DataError(f"{path} is a folder; pass the path of an .npz file with {', '.join(NPZ_ARRAYS)}")
    if not path.is_file():
        raise DataError(f"no file {path}; pass the path of an .npz file with {', '.join(NPZ_ARRAYS)}")
    arrays = read_npz(path)
    train, test, classes = _checked_splits(str(path), **arrays, device=device)
    files = {str(path): file_sha256(path)}
    return Dataset(name, train, test, classes, tuple(train.x.shape[1:]), str(path), files=files)


def dataset_from_arrays(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    device: torch.device | str | None = None,
    source: str = "arrays",
    num_classes: int | np.ndarray | None = None,
) -> Dataset:
    """A ``Dataset`` of your own arrays, as an ``.npz`` file holds them (see ``load_dataset``); train it
    with ``Trainer(config.replace(dataset=name), data=...)``. ``num_classes``: K, when some classes have no
    example (``class_count``). Raises DataError naming ``source``."""
    train, test, classes = _checked_splits(source, x_train, y_train, x_test, y_test, device, num_classes)
    return Dataset(name, train, test, classes, tuple(train.x.shape[1:]), source)


def _checked_splits(
    source: str, x_train, y_train, x_test, y_test, device=None, num_classes=None
) -> tuple[Split, Split, int]:
    """The train and test splits of arrays (``dataset_from_arrays``) on ``device``, and their class count."""
    arrays = {"train": (x_train, y_train), "test": (x_test, y_test)}
    splits = [_array_split(source, np.asarray(x), np.asarray(y), part) for part, (x, y) in arrays.items()]
    if splits[0].x.shape[1:] != splits[1].x.shape[1:]:
        shapes = f"{tuple(splits[0].x.shape[1:])} and {tuple(splits[1].x.shape[1:])}"
        raise DataError(f"{source}: x_train and x_test images differ in shape, {shapes}")
    labels = {part: np.asarray(y) for part, (_, y) in arrays.items()}
    classes = class_count(source, labels, None if num_classes is None else declared_count(source, num_classes))
    train, test = (_to(split, device) for split in splits)
    return train, test, classes


def declared_count(source: str, num_classes: int | np.ndarray) -> int:
    """The one integer of an ``.npz``'s ``num_classes`` array (or a number given in Python)."""
    array = np.asarray(num_classes)
    if array.size != 1 or array.dtype.kind not in "iu":
        raise DataError(f"{source}: num_classes must be one integer (K), got {array.dtype} of shape {array.shape}")
    return int(array.reshape(()))


def _array_split(path: str, x: np.ndarray, y: np.ndarray, part: str) -> Split:
    if x.ndim not in (2, 3, 4) or len(x) == 0:
        raise DataError(f"{path}: x_{part} has shape {x.shape}; use (N, D), (N, H, W) or (N, C, H, W) with N > 0")
    if x.dtype != np.uint8 and x.dtype.kind != "f":
        raise DataError(
            f"{path}: x_{part} holds {x.dtype} pixels; store uint8 (0..255, scaled to [-1, 1]) or floats (used as "
            "they are), e.g. x.astype(numpy.float32) / 255"
        )
    if y.shape != (len(x),) or y.dtype.kind not in "iu":
        raise DataError(f"{path}: y_{part} must be {len(x)} integer labels, got {y.dtype} of shape {y.shape}")
    x = x.reshape(len(x), 1, 1, -1) if x.ndim == 2 else x[:, None] if x.ndim == 3 else x
    if x.dtype == np.uint8:
        images = scale_bytes(np.ascontiguousarray(x))
    else:
        images = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        if not bool(torch.isfinite(images).all()):
            raise DataError(f"{path}: x_{part} holds NaN or infinite values; clean the data")
    return Split(images, torch.from_numpy(y.astype(np.int64)))


def _to(split: Split, device: torch.device | str | None) -> Split:
    return split if device is None else Split(split.x.to(device), split.y.to(device))
