"""Numerical faults: the error a run stops with at a non-finite loss or weight, and what it says was kept."""

from __future__ import annotations

import math
from typing import Any

from gevb.runs import RunFolder


class NonFiniteError(ArithmeticError):
    """Training met a non-finite loss or weight (``on_nonfinite="stop"``); the CLI exits with status 3."""


def nonfinite_stop(what: str, folder: RunFolder | None, epoch: int, last_eval: dict[str, Any] | None) -> NonFiniteError:
    """The error for a run stopped at a non-finite ``what`` after ``epoch`` epochs: what ``folder`` keeps (the
    last checkpoint, called good only if its evaluation ``last_eval`` had finite losses; or nothing) and what
    to do."""
    losses = [value for key, value in (last_eval or {}).items() if key.endswith("_loss")]
    if folder is not None and folder.checkpoint_path.exists() and all(map(math.isfinite, losses)):
        kept = (
            f"the last good checkpoint (epoch {epoch}) is kept in {folder.path}: fix the data and continue with "
            "--resume, or start again in another --out with a lower --lr"
        )
    elif folder is not None and folder.checkpoint_path.exists():  # skipped steps, yet no finite loss
        kept = (
            f"the last checkpoint (epoch {epoch}) is kept in {folder.path}, but its evaluation's losses are not "
            "finite either: start again in another --out with a lower --lr"
        )
    else:
        where = (
            " (no --out)" if folder is None else f" (no checkpoint was written yet; {folder.path} is left as it was)"
        )
        kept = f"nothing was kept{where}. Run again with a lower --lr, check the data, or pass --on-nonfinite skip"
    return NonFiniteError(f"non-finite {what}; training stopped and {kept}")
