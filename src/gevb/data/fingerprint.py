"""The SHA-256 fingerprint of the data a run reads: each file's, or for arrays (digits, your own arrays) of their
names, dtypes, shapes and bytes. A run records it (``Dataset.record``); resume and eval refuse other data
(``check_same_data``)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

CHUNK_BYTES = 1 << 20


def file_sha256(path: Path) -> str:
    """The SHA-256 of the file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def arrays_sha256(arrays: Mapping[str, np.ndarray]) -> str:
    """The SHA-256 of named arrays: each name, dtype, shape and C-order bytes, in the mapping's order."""
    digest = hashlib.sha256()
    for name, array in arrays.items():
        array = np.ascontiguousarray(array)
        digest.update(f"{name} {array.dtype.str} {array.shape}\n".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def combined_sha256(files: Mapping[str, str]) -> str:
    """One fingerprint for several files (``files``: path -> SHA-256): a single file's own, else the SHA-256 of
    the sorted lines "NAME SHA256" (file names without their folder, so moved data keeps its fingerprint)."""
    if len(files) == 1:
        return next(iter(files.values()))
    lines = sorted(f"{Path(path).name} {sha}\n" for path, sha in files.items())
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def check_same_data(recorded: dict[str, Any] | None, record: dict[str, Any], run: Path, fix: str) -> None:
    """Raise ValueError when the data a run was trained on (``recorded``: its ``Dataset.record``; None in runs
    from before fingerprints, which are not checked) differs from the data read now (``record``), naming the
    file that changed and both fingerprints, then ``fix``."""
    if recorded is None or recorded["sha256"] == record["sha256"]:
        return
    what, then, now = record["source"], recorded["sha256"], record["sha256"]
    earlier = {Path(path).name: sha for path, sha in recorded.get("files", {}).items()}
    for path, sha in record.get("files", {}).items():
        if earlier.get(Path(path).name, sha) != sha:
            what, then, now = path, earlier[Path(path).name], sha
            break
    raise ValueError(f"{what} is not the data {run} was trained on (sha256 {then} then, {now} now); {fix}")
