"""CIFAR-10 (Krizhevsky 2009), binary version: 50,000 + 10,000 32x32 colour images in six batch files, fetched
as one archive whose six ``.bin`` members are extracted by exact name (no other path is written)."""

from __future__ import annotations

import shutil
import tarfile
import zlib
from pathlib import Path

from gevb.data.datasets import Split
from gevb.data.errors import DataError
from gevb.data.formats import IDX_NORMALIZATION, cifar_splits
from gevb.data.readers import CHUNK_BYTES
from gevb.data.registry import DatasetDefinition, Download, register_dataset
from gevb.files import atomic_file

TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
FILES = (*TRAIN_FILES, "test_batch.bin")
FOLDER = "cifar-10-batches-bin"  # the folder inside cifar-10-binary.tar.gz


def read(paths: dict[str, Path]) -> tuple[Split, Split]:
    """Train: ``data_batch_1..5`` in order; test: ``test_batch``."""
    return cifar_splits(paths, TRAIN_FILES, FILES[-1:])


def unpack(archive: Path, folder: Path) -> None:
    """Write the six ``cifar-10-batches-bin/*.bin`` members of ``archive`` into ``folder``, by exact name."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for file in FILES:
                member_name = f"{FOLDER}/{file}"
                try:
                    member = tar.getmember(member_name)
                except KeyError:
                    member = None
                if member is None or not member.isfile():
                    raise DataError(f"{archive}: no regular file {member_name} inside; delete it and re-download")
                source = tar.extractfile(member)
                with source, atomic_file(folder / file) as out:
                    shutil.copyfileobj(source, out, CHUNK_BYTES)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise DataError(f"{archive}: cannot be extracted ({error}); delete it and re-download") from error


register_dataset(
    DatasetDefinition(
        "cifar10", "CIFAR-10", (3, 32, 32), 10, read, IDX_NORMALIZATION.replace("uint8 pixels", "each channel's uint8"),
        FILES, hint="the CIFAR-10 binary .bin files", subfolder=FOLDER, mirrors=("https://www.cs.toronto.edu/~kriz/",),
        downloads=(Download("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530"),), unpack=unpack,
    )
)  # fmt: skip
