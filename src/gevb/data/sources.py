"""Where each data set's files live: their names, the folders searched, and the default cache folder."""

from __future__ import annotations

import os
from pathlib import Path

from gevb.data.errors import DataError

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR_FILES = ("data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin")
CIFAR_FILES += ("test_batch.bin",)
CIFAR_FOLDER = "cifar-10-batches-bin"  # the folder inside cifar-10-binary.tar.gz

# The files each data set needs, by name without a ``.gz`` suffix, and whether a ``.gz`` copy is accepted.
FILES: dict[str, tuple[tuple[str, ...], bool]] = {
    "mnist": (IDX_FILES, True),
    "fashion-mnist": (IDX_FILES, True),
    "cifar10": (CIFAR_FILES, False),
}
# Folders searched after the default one when no data folder is given (Debian's dataset-fashion-mnist).
SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {"fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),)}
HINTS = {"mnist": "the IDX files", "fashion-mnist": "the IDX files", "cifar10": "the CIFAR-10 binary .bin files"}


def default_data_dir(name: str) -> Path:
    """``$GEVB_DATA_DIR/<name>`` when that variable is set, else ``~/.cache/gevb/<name>``."""
    root = os.environ.get("GEVB_DATA_DIR")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "gevb") / name


def search_dirs(name: str, data_dir: str | os.PathLike | None) -> list[Path]:
    """The folders searched for ``name``, in order.

    With ``data_dir``: that folder and ``data_dir/<name>``. Without: the default folder, then system folders.
    CIFAR-10 also looks one level down, in ``cifar-10-batches-bin``.
    """
    if data_dir is not None:
        bases = [Path(data_dir).expanduser(), Path(data_dir).expanduser() / name]
    else:
        bases = [default_data_dir(name), *SYSTEM_DIRS.get(name, ())]
    if name == "cifar10":
        return [folder for base in bases for folder in (base, base / CIFAR_FOLDER)]
    return bases


def locate(name: str, data_dir: str | os.PathLike | None) -> tuple[Path, dict[str, Path]]:
    """The first searched folder holding every file of ``name``, and each file's path (plain preferred to .gz).

    Raises :class:`DataError` naming the first missing file in the most complete folder.
    """
    stems, gz_ok = FILES[name]
    found: list[tuple[Path, dict[str, Path]]] = []
    for folder in search_dirs(name, data_dir):
        paths = {stem: path for stem in stems if (path := _find(folder, stem, gz_ok)) is not None}
        if len(paths) == len(stems):
            return folder, paths
        found.append((folder, paths))
    folder, paths = max(found, key=lambda item: len(item[1]))  # the first of the most complete folders
    missing = next(stem for stem in stems if stem not in paths)
    suffix = "(.gz)" if gz_ok else ""
    raise DataError(
        f"{name}: missing {folder / missing}{suffix}; put {HINTS[name]} there, pass --data-dir DIR, or add --download"
    )


def _find(folder: Path, stem: str, gz_ok: bool) -> Path | None:
    for path in (folder / stem, folder / f"{stem}.gz") if gz_ok else (folder / stem,):
        if path.is_file():
            return path
    return None
