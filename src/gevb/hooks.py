"""What ``Trainer.fit`` does besides training: each concern is one hook, called in list order.

``Trainer`` takes ``standard_hooks`` (``Evaluation`` first, then the policies of ``gevb.policies``: data-parallel
averaging, the non-finite policy, early stopping; then those its arguments ask for), then any hooks the caller
passes. Between the rule's gradients and the optimizer's step every hook's ``before_update`` runs (any False skips
the step); after an epoch's steps, ``after_steps``. At an evaluation epoch every hook's ``measure`` contributes to
the epoch's record; then every hook's ``after_epoch`` sees it (None between evaluations). A run ends at its
epochs or when a hook ``stops`` it; a hook with state gives it to the checkpoint (``state`` / ``restore``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm import tqdm

from gevb.alignment import measure_alignment
from gevb.checkpoint import save_checkpoint
from gevb.config import TrainConfig
from gevb.data import Dataset
from gevb.evaluation import evaluated_splits
from gevb.models import Network
from gevb.rules import Rule
from gevb.runs import RunFolder, flat_record

Record = dict[str, Any]


class Trainer(Protocol):
    """What a hook may use of the ``gevb.training.Trainer`` that calls it."""

    config: TrainConfig
    run_config: TrainConfig
    data: Dataset
    model: Network
    rule: Rule
    optimizer: torch.optim.Optimizer
    device: torch.device
    folder: RunFolder | None
    epoch: int
    batch_share: float
    last_eval: dict[str, Any] | None

    def log(self, line: str) -> None: ...

    def before_step(self, loss: torch.Tensor) -> bool: ...

    @property
    def steps_per_epoch(self) -> int: ...

    @property
    def finished(self) -> bool: ...

    def evaluate(
        self, limit: int | None = None, on_batch: Callable[[int], object] | None = None
    ) -> dict[str, float]: ...

    def state(self) -> dict[str, Any]: ...


class Hook:
    """A no-op at every point; subclasses override what they need."""

    def start(self, trainer: Trainer) -> None:
        """Before the first epoch of ``fit`` (also when resuming, and when the run is already finished)."""

    def before_update(self, trainer: Trainer, loss: torch.Tensor) -> bool:
        """Between the rule's gradients and the optimizer's step (``loss``: the batch's, on the device); False
        skips the step (every hook's ``before_update`` still runs)."""
        return True

    def after_step(self, trainer: Trainer) -> None:
        """After every training step."""

    def after_steps(self, trainer: Trainer, total: torch.Tensor, steps: int, taken: int) -> None:
        """After an epoch's steps, before the epoch counts: their summed loss (device), how many ran and were taken."""

    def stops(self, trainer: Trainer) -> bool:
        """Whether the run ends now, before its ``epochs`` (checked after every ``after_epoch``)."""
        return False

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps of this hook, as top-level checkpoint keys."""
        return {}

    def restore(self, checkpoint: dict[str, Any]) -> None:
        """Take back what ``state`` gave, from a checkpoint being resumed."""

    def measure(self, trainer: Trainer, limit: int | None = None) -> Record:
        """At an evaluation: metrics to add to the epoch's record (``limit``: examples per split, for dry runs)."""
        return {}

    def after_epoch(self, trainer: Trainer, loss: float, record: Record | None) -> None:
        """After every epoch: its mean batch ``loss`` and, at an evaluation, the finished ``record``; also
        after the evaluation at epoch 0, before any step (``loss`` NaN)."""

    def end(self, trainer: Trainer, result: Record) -> None:
        """After the last epoch, with ``Trainer.result``."""

    def fail(self, trainer: Trainer, error: Exception) -> None:
        """When ``fit`` stops at a non-finite value or a failed write (``error``, re-raised after every hook's
        ``fail``)."""


class Evaluation(Hook):
    """Loss and error % on every split (``train_loss``, ``train_error``, ``test_loss``, ``test_error``, and
    ``val_loss``, ``val_error`` with a validation split); with ``progress``, a tqdm bar of the examples evaluated
    (on a large data set an evaluation takes as long as many steps; the step bar would stand still)."""

    def __init__(self, progress: bool = False) -> None:
        self.progress = progress

    def measure(self, trainer: Trainer, limit: int | None = None) -> Record:
        if not self.progress:
            return trainer.evaluate(limit)
        sizes = [
            len(split) if limit is None else min(limit, len(split)) for split in evaluated_splits(trainer.data).values()
        ]
        with tqdm(total=sum(sizes), desc="evaluating", unit="example", leave=False, dynamic_ncols=True) as bar:
            return trainer.evaluate(limit, bar.update)


class AlignmentTracking(Hook):
    """``alignment``: each layer's angles to BP on the first ``examples`` training examples
    (``signal_deg``, ``update_deg``; ``gevb.alignment``) and the ``seconds`` they took."""

    def __init__(self, examples: int = 128) -> None:
        self.examples = examples

    def measure(self, trainer: Trainer, limit: int | None = None) -> Record:
        train = trainer.data.train
        start = time.perf_counter()
        alignment = measure_alignment(trainer.model, trainer.rule, train.x[: self.examples], train.y[: self.examples])
        return {"alignment": {**alignment, "seconds": time.perf_counter() - start}}


class ProgressBar(Hook):
    """A tqdm bar of training steps on stderr, from ``fit``'s start (a dry run shows none)."""

    bar: tqdm | None = None

    def start(self, trainer: Trainer) -> None:
        config, steps = trainer.config, trainer.steps_per_epoch
        self.bar = tqdm(
            total=config.epochs * steps, initial=trainer.epoch * steps, disable=trainer.finished, unit="step",
            desc=f"{config.model} {config.rule}", leave=False, dynamic_ncols=True,
        )  # fmt: skip

    def after_step(self, trainer: Trainer) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def after_epoch(self, trainer: Trainer, loss: float, record: Record | None) -> None:
        if trainer.epoch > 0:
            self.bar.set_postfix(epoch=trainer.epoch, loss=f"{loss:.4f}")

    def end(self, trainer: Trainer, result: Record) -> None:
        self.bar.close()


def split_errors(record: Record, words: str = "{split} {error:.2f}% (loss {loss:.4f})") -> str:
    """Each split's error and loss in ``record`` (train, test, then val where there is one), as ``words`` says."""
    splits = ("train", "test", "val") if record.get("val_error") is not None else ("train", "test")
    return "  ".join(
        words.format(split=split, error=record[f"{split}_error"], loss=record[f"{split}_loss"]) for split in splits
    )


class EvaluationLog(Hook):
    """One line per evaluation: errors, losses, time, throughput and (when tracked) signal angles."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log

    def after_epoch(self, trainer: Trainer, loss: float, record: Record | None) -> None:
        if record is None:
            return
        line = f"epoch {record['epoch']}/{trainer.config.epochs}  {split_errors(record)}  {record['seconds']:.1f} s"
        line += (
            "  (initialization)" if record["samples_per_s"] is None else f"  {record['samples_per_s']:.0f} samples/s"
        )
        if "alignment" in record:
            angles = record["alignment"]["signal_deg"].items()
            named = (f"{name} {'-' if a is None else f'{a:.0f}'}" for name, a in angles)
            line += "  signal angles to BP: " + ", ".join(named) + " deg"
        self.log(line)


class RunFolderWriter(Hook):
    """Every write to the run folder: at the start ``RunFolder.begin``, after each evaluation a line of
    ``metrics.jsonl``, after each epoch the checkpoint, at the end ``result.json``."""

    def __init__(self, folder: RunFolder) -> None:
        self.folder = folder

    def start(self, trainer: Trainer) -> None:
        # A run starting from scratch drops every record (an earlier start's epoch 0 is evaluated again).
        self.folder.begin(trainer.run_config, trainer.epoch if trainer.epoch > 0 else -1, trainer.model.spec)

    def after_epoch(self, trainer: Trainer, loss: float, record: Record | None) -> None:
        if record is not None:
            self.folder.append_metrics(record)
        if trainer.epoch > 0:  # the initialization is not worth a checkpoint: a fresh build recreates it
            save_checkpoint(self.folder.checkpoint_path, trainer.state())

    def end(self, trainer: Trainer, result: Record) -> None:
        self.folder.write_result(result)

    def fail(self, trainer: Trainer, error: Exception) -> None:
        """A run that failed before its first checkpoint leaves the folder as it found it."""
        if not self.folder.checkpoint_path.exists():
            self.folder.discard()


class TensorBoardLog(Hook):
    """Every evaluation's numbers (``flat_record``: losses, errors, angles) as TensorBoard scalars, step =
    epoch, in ``folder``; needs the ``tensorboard`` package (``pip install 'gevb[tensorboard]'``)."""

    def __init__(self, folder: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ValueError("--tensorboard needs the tensorboard package: pip install 'gevb[tensorboard]'") from None
        self.folder, self.writer_type, self.writer = folder, SummaryWriter, None

    def start(self, trainer: Trainer) -> None:
        self.writer = self.writer_type(log_dir=str(self.folder))

    def after_epoch(self, trainer: Trainer, loss: float, record: Record | None) -> None:
        if record is None:
            return
        for key, value in flat_record(record).items():
            if key != "epoch" and isinstance(value, int | float):
                self.writer.add_scalar(key, value, global_step=record["epoch"])
        self.writer.flush()

    def end(self, trainer: Trainer, result: Record) -> None:
        self.writer.close()

    def fail(self, trainer: Trainer, error: Exception) -> None:
        self.writer.close()


def standard_hooks(
    config: TrainConfig,
    folder: RunFolder | None,
    log: Callable[[str], None] | None,
    progress: bool,
    policies: Sequence[Hook] = (),
) -> list[Hook]:
    """``Evaluation``, then ``AlignmentTracking`` (``config.track_alignment``), the ``policies``
    (``gevb.policies``: they see every record before anything is written), ``ProgressBar`` (``progress``),
    ``EvaluationLog`` (``log``), ``RunFolderWriter`` (``folder``) and ``TensorBoardLog`` (``config.tensorboard``,
    into ``folder``)."""
    hooks: list[Hook] = [Evaluation(progress)]
    if config.track_alignment:
        hooks.append(AlignmentTracking())
    hooks += policies
    if progress:
        hooks.append(ProgressBar())
    if log is not None:
        hooks.append(EvaluationLog(log))
    if folder is not None:
        hooks.append(RunFolderWriter(folder))
        if config.tensorboard:
            hooks.append(TensorBoardLog(folder.path / "tensorboard"))
    return hooks
