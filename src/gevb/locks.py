"""One process at a time in a run folder: an exclusive ``flock`` on the folder's ``.gevb.lock``.

The kernel releases the lock when its holder exits, however it exits (a SIGKILLed run never leaves a stale
lock), so the file's presence means nothing; only a held lock does. The holder writes its pid into the file,
for the message of whoever is refused. On a platform without ``fcntl`` (Windows) the lock is not taken.
"""

from __future__ import annotations

import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None

LOCK_NAME = ".gevb.lock"


class FolderBusy(ValueError):
    """The folder's lock is held by another process."""


class FolderLock:
    """The lock ``name`` of ``folder`` (which must exist; by default a run folder's): ``acquire`` it or raise
    ``FolderBusy`` (``wait``: until it is free); ``release``."""

    def __init__(self, folder: Path, name: str = LOCK_NAME) -> None:
        self.folder, self.path = folder, folder / name
        self.descriptor: int | None = None

    @property
    def held(self) -> bool:
        return self.descriptor is not None

    def acquire(self, wait: bool = False) -> None:
        if self.held or fcntl is None:
            return
        while True:
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                error = self.busy(descriptor)
                os.close(descriptor)
                raise error from None
            if _same_file(self.path, descriptor):  # not removed between our open and our lock
                break
            os.close(descriptor)
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        self.descriptor = descriptor

    def check_free(self) -> None:
        """Raise ``FolderBusy`` if a process holds the lock (a reader's check: it creates and keeps nothing, so
        a read-only folder can be read)."""
        if fcntl is None:
            return
        try:
            descriptor = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise self.busy(descriptor) from None
        finally:
            os.close(descriptor)

    def busy(self, descriptor: int) -> FolderBusy:
        holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip() or "unknown"
        return FolderBusy(
            f"{self.folder} is in use by process {holder} (a gevb run or resume); wait until it ends, or "
            "choose another folder"
        )

    def __del__(self) -> None:  # a raw descriptor is not closed by garbage collection on its own
        self.release()

    def release(self, remove: bool = False) -> None:
        """Give the lock back (``remove``: delete its file first, while still holding it)."""
        if self.descriptor is None:
            return
        if remove:
            self.path.unlink(missing_ok=True)
        os.close(self.descriptor)
        self.descriptor = None


def _same_file(path: Path, descriptor: int) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(descriptor).st_ino
    except FileNotFoundError:
        return False
