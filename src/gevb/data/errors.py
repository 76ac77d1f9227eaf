"""The one exception for every user-facing data problem."""

from __future__ import annotations


class DataError(ValueError):
    """A missing, truncated or corrupt data file, a failed download or an unknown data set.

    The message is one line naming the file (or data set) and what to do about it.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).splitlines()))
