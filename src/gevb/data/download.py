"""Downloads, only when asked: every file is declared with its mirrors and published md5 (docs/method.md §8).

Each file streams into a temporary file beside its target, is checked against its md5, and only then moves
into place with ``os.replace``; a failed or mismatching mirror leaves nothing behind and the next one is tried.
CIFAR-10's archive is verified before the six named ``.bin`` members are extracted; no other path is written.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import urllib.request
import zlib
from pathlib import Path
from typing import BinaryIO

from gevb.data.errors import DataError
from gevb.data.sources import CIFAR_FILES, CIFAR_FOLDER, default_data_dir
from gevb.files import atomic_file

# Mirrors (URL prefixes) in the order tried; each file's URL is a mirror followed by the file name.
MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    "fashion-mnist": (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    "cifar10": ("https://www.cs.toronto.edu/~kriz/",),
}
# Published md5 of every file to download, by data set and file name.
MD5S: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    "cifar10": {"cifar-10-binary.tar.gz": "c32a1d4ab5d03f1284b67883e8d87530"},
}
CIFAR_ARCHIVE = "cifar-10-binary.tar.gz"
CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60.0


class ChecksumMismatch(Exception):
    """A downloaded file whose md5 differs from the published one."""


def download_dataset(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """Fetch ``name`` into ``data_dir`` (default :func:`default_data_dir`) and return that folder.

    Files already there with the published md5 are kept. For CIFAR-10 nothing is fetched when the six
    ``.bin`` files are present; otherwise the archive is fetched, verified, its six members extracted and
    the archive deleted.
    """
    if name not in MD5S:
        choices = ", ".join(MD5S)
        raise DataError(f"{name!r} cannot be downloaded; choose one of {choices} (digits ships with scikit-learn)")
    folder = Path(data_dir).expanduser() if data_dir is not None else default_data_dir(name)
    created = [path for path in (folder, *folder.parents) if not path.exists()]  # deepest first
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"{folder}: cannot create the data folder ({error}); pass --data-dir DIR") from error
    try:
        if name == "cifar10":
            if not all((folder / file).is_file() for file in CIFAR_FILES):
                archive = fetch(name, CIFAR_ARCHIVE, folder)
                extract_cifar(archive, folder)
                archive.unlink()
        else:
            for file in MD5S[name]:
                fetch(name, file, folder)
    except BaseException:  # a failed download leaves no folder it created and left empty
        for path in created:
            try:
                path.rmdir()  # only an empty folder
            except OSError:
                break
        raise
    return folder


def fetch(name: str, file: str, folder: Path) -> Path:
    """``folder/file`` with the published md5, downloaded from the first mirror that gives it unless present."""
    target, expected = folder / file, MD5S[name][file]
    if target.is_file() and file_md5(target) == expected:
        return target
    tried = []
    for mirror in MIRRORS[name]:
        url = mirror + file
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, atomic_file(target) as out:
                digest = copy_with_md5(response, out)
                if digest != expected:
                    raise ChecksumMismatch(f"md5 {digest}, expected {expected}")
            return target
        except (ChecksumMismatch, OSError, http.client.HTTPException) as error:
            tried.append(f"{url} ({error})")
    raise DataError(
        f"{name}: could not download {target}; tried {', '.join(tried)}; check the connection, "
        f"or fetch {file} by hand into {folder}"
    )


def extract_cifar(archive: Path, folder: Path) -> None:
    """Write the six ``cifar-10-batches-bin/*.bin`` members of ``archive`` into ``folder``, by exact name."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for file in CIFAR_FILES:
                member_name = f"{CIFAR_FOLDER}/{file}"
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


def copy_with_md5(source: BinaryIO, out: BinaryIO) -> str:
    """Copy ``source`` to ``out`` in chunks and return the md5 hex digest of what was copied."""
    digest = hashlib.md5(usedforsecurity=False)
    while chunk := source.read(CHUNK_BYTES):
        digest.update(chunk)
        out.write(chunk)
    return digest.hexdigest()


def file_md5(path: Path) -> str:
    """The md5 hex digest of the file at ``path``."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, lambda: hashlib.md5(usedforsecurity=False)).hexdigest()
