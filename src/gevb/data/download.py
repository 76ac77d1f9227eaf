"""Downloads, only when asked: every file is declared, with its mirrors and published md5, by its data set's
definition (``gevb.data.registry``; docs/method.md §8).

Each file streams into a temporary file beside its target, is checked against its md5, and only then moves
into place with ``os.replace``; a failed or mismatching mirror leaves nothing behind and the next one is tried.
An archive (CIFAR-10's) is verified before its definition unpacks it.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.request
from pathlib import Path
from typing import BinaryIO

from gevb.data.errors import DataError
from gevb.data.registry import DATASETS, DatasetDefinition, Download
from gevb.data.sources import default_data_dir
from gevb.files import atomic_file

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60.0


class ChecksumMismatch(Exception):
    """A downloaded file whose md5 differs from the published one."""


def download_dataset(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """Fetch ``name`` into ``data_dir`` (default :func:`default_data_dir`) and return that folder.

    Files already there with the published md5 are kept. A data set whose download is an archive
    (``DatasetDefinition.unpack``, CIFAR-10) fetches nothing while its files are all present; otherwise the
    archive is fetched, verified, unpacked and deleted.
    """
    known = DATASETS.get(name)
    if known is None or not known.downloads:
        choices = ", ".join(key for key, found in DATASETS.items() if found.downloads)
        raise DataError(f"{name!r} cannot be downloaded; choose one of {choices} (digits ships with scikit-learn)")
    folder = Path(data_dir).expanduser() if data_dir is not None else default_data_dir(name)
    created = [path for path in (folder, *folder.parents) if not path.exists()]  # deepest first
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"{folder}: cannot create the data folder ({error}); pass --data-dir DIR") from error
    try:
        if known.unpack is not None:
            if not all((folder / file).is_file() for file in known.files):
                (download,) = known.downloads
                archive = fetch(known, download, folder)
                known.unpack(archive, folder)
                archive.unlink()
        else:
            for download in known.downloads:
                fetch(known, download, folder)
    except BaseException:  # a failed download leaves no folder it created and left empty
        for path in created:
            try:
                path.rmdir()  # only an empty folder
            except OSError:
                break
        raise
    return folder


def fetch(known: DatasetDefinition, download: Download, folder: Path) -> Path:
    """``folder/file`` with the published md5, downloaded from the first mirror that gives it unless present."""
    file, expected = download.file, download.md5
    target = folder / file
    if target.is_file() and file_md5(target) == expected:
        return target
    tried = []
    for mirror in known.mirrors:
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
        f"{known.name}: could not download {target}; tried {', '.join(tried)}; check the connection, "
        f"or fetch {file} by hand into {folder}"
    )


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
