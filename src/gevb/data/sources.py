"""Where each data set's files live: the folders searched for the files its definition names
(``gevb.data.registry``), and the default cache folder."""

from __future__ import annotations

import os
from pathlib import Path

from gevb.data.errors import DataError
from gevb.data.registry import definition


def default_data_dir(name: str) -> Path:
    """``$GEVB_DATA_DIR/<name>`` when that variable is set, else ``~/.cache/gevb/<name>``."""
    root = os.environ.get("GEVB_DATA_DIR")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "gevb") / name


def search_dirs(name: str, data_dir: str | os.PathLike | None) -> list[Path]:
    """The folders searched for ``name``, in order.

    With ``data_dir``: that folder and ``data_dir/<name>``. Without: the default folder, then the definition's
    system folders. Each is also searched in the definition's ``subfolder`` (CIFAR-10's archive folder).
    """
    found = definition(name)
    if data_dir is not None:
        bases = [Path(data_dir).expanduser(), Path(data_dir).expanduser() / name]
    else:
        bases = [default_data_dir(name), *found.system_dirs]
    if found.subfolder:
        return [folder for base in bases for folder in (base, base / found.subfolder)]
    return bases


def locate(name: str, data_dir: str | os.PathLike | None) -> tuple[Path, dict[str, Path]]:
    """The first searched folder holding every file of ``name``, and each file's path (plain preferred to .gz).

    Raises :class:`DataError` naming the first missing file in the most complete folder.
    """
    found_definition = definition(name)
    stems, gz_ok = found_definition.files, found_definition.gz
    found: list[tuple[Path, dict[str, Path]]] = []
    for folder in search_dirs(name, data_dir):
        paths = {stem: path for stem in stems if (path := _find(folder, stem, gz_ok)) is not None}
        if len(paths) == len(stems):
            return folder, paths
        found.append((folder, paths))
    folder, paths = max(found, key=lambda item: len(item[1]))  # the first of the most complete folders
    missing = next(stem for stem in stems if stem not in paths)
    suffix = "(.gz)" if gz_ok else ""
    hint = found_definition.hint or "its files"
    download = ", or add --download" if found_definition.downloads else ""
    raise DataError(f"{name}: missing {folder / missing}{suffix}; put {hint} there, pass --data-dir DIR{download}")


def _find(folder: Path, stem: str, gz_ok: bool) -> Path | None:
    for path in (folder / stem, folder / f"{stem}.gz") if gz_ok else (folder / stem,):
        if path.is_file():
            return path
    return None
