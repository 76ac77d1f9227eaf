"""Numbers in words for messages: "1 epoch", "2 epochs"."""

from __future__ import annotations


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``count`` and ``noun``, plural (``plural``, else noun + "s") unless the count is 1: "1 epoch", "3 runs"."""
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"
