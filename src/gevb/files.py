"""Atomic file writes, shared by checkpoints, run folders and downloads."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

UMASK = os.umask(0)
os.umask(UMASK)


PARTIAL_SUFFIX = ".part"


def is_partial(path: Path) -> bool:
    """Whether ``path`` is the temporary file of an ``atomic_file`` that a killed process left behind."""
    return path.name.startswith(".") and path.name.endswith(PARTIAL_SUFFIX)


@contextmanager
def atomic_file(target: str | os.PathLike) -> Iterator[BinaryIO]:
    """A temporary file beside ``target``, flushed, fsynced and renamed over it only if the block finishes.

    A crash or an exception at any point leaves the old ``target`` (or none). An exception removes
    the temporary file; a process killed outright (SIGKILL, power loss) may leave it, as a hidden
    ``.NAME.*.part`` that ``is_partial`` recognizes. The new file gets the usual permissions
    (0666 minus the umask).
    """
    target = Path(target)
    descriptor, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=PARTIAL_SUFFIX, dir=target.parent)
    temp = Path(temp_name)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o666 & ~UMASK)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
