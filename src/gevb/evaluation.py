"""Loss and error of a model on a data set's splits, alone or data-parallel, and of a saved run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from gevb.build import load_run
from gevb.data import Dataset, Split
from gevb.distributed import ProcessGroup, local_part, sum_over_processes
from gevb.models import Network


@torch.no_grad()
def evaluate(
    model: Network,
    split: Split,
    batch_size: int,
    limit: int | None = None,
    group: ProcessGroup | None = None,
    on_batch: Callable[[int], object] | None = None,
) -> tuple[float, float]:
    """Mean cross-entropy and error rate (%) of ``model`` on ``split`` (its first ``limit`` examples).

    With a process ``group``, each process evaluates its contiguous share and the sums are combined.
    ``on_batch``: called with each batch's example count (a progress bar's ``update``).
    """
    size = len(split) if limit is None else min(limit, len(split))
    share = local_part(torch.arange(size), group)
    first, stop = (int(share[0]), int(share[-1]) + 1) if len(share) else (0, 0)
    sums = torch.zeros(2, dtype=torch.float64, device=split.x.device)  # loss sum, errors
    for start in range(first, stop, batch_size):
        x, y = split.x[start : min(start + batch_size, stop)], split.y[start : min(start + batch_size, stop)]
        logits = model(x)
        sums[0] += F.cross_entropy(logits, y, reduction="sum").double()
        sums[1] += (logits.argmax(1) != y).sum()
        if on_batch is not None:
            on_batch(len(y))
    loss_sum, wrong = sum_over_processes(sums, group).tolist()
    return loss_sum / size, 100.0 * wrong / size


def evaluated_splits(data: Dataset) -> dict[str, Split]:
    """The splits an evaluation covers: train, test and, when ``data`` holds one, val."""
    return {"train": data.train, "test": data.test} | ({"val": data.val} if data.val is not None else {})


def evaluate_splits(
    model: Network,
    data: Dataset,
    batch_size: int,
    limit: int | None = None,
    group: ProcessGroup | None = None,
    on_batch: Callable[[int], object] | None = None,
) -> dict[str, float]:
    """``train_loss``, ``train_error``, ``test_loss``, ``test_error`` (error in %) of ``model`` on ``data``,
    and ``val_loss``, ``val_error`` when ``data`` holds a validation split (``evaluated_splits``)."""
    metrics = {}
    for name, split in evaluated_splits(data).items():
        loss, error = evaluate(model, split, batch_size, limit, group, on_batch)
        metrics[f"{name}_loss"], metrics[f"{name}_error"] = loss, error
    return metrics


def evaluate_run(
    path: str | Path, device: str = "auto", data_dir: str | None = None, download: bool = False
) -> dict[str, Any]:
    """Train/test loss and error of the model saved in a run folder or checkpoint file."""
    parts = load_run(path, device, data_dir, download)
    metrics = evaluate_splits(parts.model, parts.data, parts.config.eval_batch_size)
    return {**metrics, "epoch": parts.epoch, "config": parts.config.to_dict()}
