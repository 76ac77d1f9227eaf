"""The data set registry: each built-in or plugin data set is one ``DatasetDefinition`` (name, title, input
shape, classes, files with their mirrors and checksums, reader), registered with ``register_dataset``.

Every place that lists data sets reads this registry: ``load_dataset``, the search for files
(``gevb.data.sources``), ``--download`` (``gevb.data.download``), the command line's choices, and the titles
of reports and the paper's tables. The definitions of ``gevb.data.sets`` (one file each) and those of
installed plugins (the ``gevb.datasets`` entry-point group) are loaded on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gevb.data.errors import DataError
from gevb.plugins import Registry

Reader = Callable[[dict[str, Path]], tuple[Any, Any]]  # {file: path} -> (train, test) gevb.data.datasets.Split


@dataclass(frozen=True)
class Download:
    """A file fetched from its data set's mirrors (the URL is a mirror followed by ``file``), checked against its
    published ``md5``."""

    file: str
    md5: str


@dataclass(frozen=True)
class DatasetDefinition:
    """One data set.

    ``files``: the files ``read`` takes, by name (without ``.gz``; ``gz``: a ``.gz`` copy is accepted too);
    none for a data set that ships with a package. ``read(paths)``: ``{file: path}`` -> (train, test)
    ``Split``s, scaled as ``normalization`` says, labels in 0..``num_classes - 1``. ``hint``: what a user
    puts in the folder. ``subfolder``: also searched inside each folder (CIFAR-10's archive folder).
    ``system_dirs``: searched after the default cache folder (a distribution's package). ``mirrors`` and
    ``downloads``: what ``--download`` fetches; ``unpack(archive, folder)``, if given, turns the one
    download into ``files`` (a download is skipped while they are all present). ``package``: where a data set
    without files comes from (the source its runs record; default: its title).
    """

    name: str
    title: str
    input_shape: tuple[int, int, int]
    num_classes: int
    read: Reader
    normalization: str
    files: tuple[str, ...] = ()
    gz: bool = False
    hint: str = ""
    subfolder: str = ""
    system_dirs: tuple[Path, ...] = ()
    mirrors: tuple[str, ...] = ()
    downloads: tuple[Download, ...] = ()
    unpack: Callable[[Path, Path], None] | None = None
    package: str = ""


DATASETS: dict[str, DatasetDefinition] = Registry("gevb.datasets", builtins="gevb.data.sets")


def register_dataset(definition: DatasetDefinition) -> DatasetDefinition:
    """Add ``definition`` to the registry under its name (a name taken is an error)."""
    if DATASETS.has(definition.name):
        raise ValueError(f"a data set named {definition.name!r} is registered already; choose another name")
    if definition.name.endswith(".npz"):
        raise ValueError(f"data set name {definition.name!r} ends in .npz, which names a file of your own")
    DATASETS[definition.name] = definition
    return definition


def dataset_names() -> tuple[str, ...]:
    """Every registered data set's name, in registration order: the built-in ones, then plugins'."""
    return tuple(DATASETS)


def definition(name: str) -> DatasetDefinition:
    """The definition of data set ``name``, or a DataError naming the registered ones."""
    found = DATASETS.get(name)
    if found is None:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}, or a path to an .npz file")
    return found
