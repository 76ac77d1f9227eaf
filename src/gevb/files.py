"""Atomic file writes, shared by checkpoints, run folders and downloads, the strict JSON they hold, and the
one reader of text files (configs, architectures, a run's metrics), whose errors name the file."""

from __future__ import annotations

import errno
import json
import math
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import yaml

PARTIAL_SUFFIX = ".part"


def read_text(path: Path, what: str) -> str:
    """The UTF-8 text of the file ``path`` (a ``what``, e.g. "config file"), or a one-line ValueError naming
    it and what is wrong: missing, a folder or a device rather than a file, no permission, not UTF-8 text."""
    try:
        mode = path.stat().st_mode
        data = path.read_bytes() if stat.S_ISREG(mode) else None  # a FIFO or a device could block or never end
    except OSError as error:
        raise ValueError(f"cannot read {what} {path}: {error.strerror or error}; check the path") from None
    except ValueError:  # os.stat refuses a path holding a NUL character
        raise ValueError(f"cannot read {what} {path!r}: a path cannot hold a NUL character") from None
    if data is None:
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
        raise ValueError(f"cannot read {what} {path}: it is {kind}; pass the file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"cannot read {what} {path}: not UTF-8 text (byte {data[error.start]:#04x} at offset {error.start}); "
            "save it as UTF-8"
        ) from None


# What an operating-system error means for the user, and what to do about it.
SYSTEM_ERRORS = {
    errno.EROFS: "the disk is read-only; choose a folder on a writable disk",
    errno.EACCES: "no permission; choose a folder you may write, or change its permissions",
    errno.EPERM: "not permitted; choose a folder you may write, or change its permissions",
    errno.ENOSPC: "no space left on the disk; free space, then run the command again",
    errno.EDQUOT: "the disk quota is used up; free space, then run the command again",
    errno.EFBIG: "the file would pass the size limit (ulimit -f); raise it or free space, then run the command again",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
    errno.EISDIR: "it is a folder; pass a file",
    errno.ENOENT: "no such file or folder; check the path",
    errno.ENAMETOOLONG: "the name is too long; choose a shorter path",
}


def system_error_text(error: OSError) -> str:
    """One line for an operating-system error: the path, what it means and the fix (``SYSTEM_ERRORS``), never
    Python's "[Errno N] ..."; an OSError gevb raised with its own message keeps it."""
    if error.errno is None or error.strerror is None:
        return " ".join(str(error).split()) or type(error).__name__
    meaning = SYSTEM_ERRORS.get(error.errno, error.strerror.lower())
    return f"{error.filename}: {meaning}" if error.filename is not None else meaning


def read_yaml(path: Path, what: str, fix: str) -> Any:
    """The data of the YAML file ``path`` (a ``what``, e.g. "config file"), with one-line errors: a file that
    cannot be read (``read_text``), invalid YAML (with its line, and ``fix``), or nesting too deep for the parser."""
    text = read_text(path, what)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise ValueError(f"{path} is not valid YAML{line}; {fix}") from None
    except RecursionError:
        raise ValueError(f"{path} is nested too deeply to be a {what}; {fix}") from None
    except ValueError:  # int() refuses a number of over 4300 digits
        raise ValueError(f"{path} holds a number too long to read; {fix}") from None


def is_partial(path: Path) -> bool:
    """Whether ``path`` is the temporary file of an ``atomic_file`` that a killed process left behind."""
    return path.name.startswith(".") and path.name.endswith(PARTIAL_SUFFIX)


@contextmanager
def atomic_file(target: str | os.PathLike) -> Iterator[BinaryIO]:
    """A temporary file beside ``target``, flushed, fsynced and renamed over it only if the block finishes.

    A crash or an exception at any point leaves the old ``target`` (or none). An exception removes
    the temporary file; a process killed outright (SIGKILL, power loss) may leave it, as a hidden
    ``.NAME.*.part`` that ``is_partial`` recognizes. The new file gets the usual permissions
    (0666 minus the umask, which the kernel applies when the file is created).
    """
    target = Path(target)
    temp, descriptor = _new_partial_file(target)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def _new_partial_file(target: Path) -> tuple[Path, int]:
    """Create ``.NAME.<random>.part`` beside ``target`` (mode 0666 less the umask, never an existing file)."""
    while True:
        temp = target.with_name(f".{target.name}.{secrets.token_hex(6)}{PARTIAL_SUFFIX}")
        try:
            return temp, os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue


def json_text(value: Any, indent: int | None = None) -> str:
    """Strict JSON: a non-finite float (a diverged loss) becomes null, never the non-JSON ``NaN``."""

    def finite(item: Any) -> Any:
        if isinstance(item, float) and not math.isfinite(item):
            return None
        if isinstance(item, dict):
            return {key: finite(inner) for key, inner in item.items()}
        if isinstance(item, list | tuple):
            return [finite(inner) for inner in item]
        return item

    return json.dumps(finite(value), indent=indent, allow_nan=False)
