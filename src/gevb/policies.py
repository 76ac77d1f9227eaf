"""What the loop decides besides stepping, each one hook (``gevb.hooks``): averaging over data-parallel
processes and their idle steps, the policy at a non-finite loss or weight, and when a run stops early
(``patience``, ``stop_at_100``). ``Trainer`` keeps the loop, its state and the step; these keep their own
state, which its checkpoints hold (``state`` / ``restore``, under the checkpoint keys they always had)."""

from __future__ import annotations

import math
from typing import Any

import torch

from gevb.config import TrainConfig
from gevb.distributed import ProcessGroup, average_over_processes
from gevb.faults import nonfinite_stop
from gevb.hooks import Hook, Record, Trainer
from gevb.rules.base import take_step


class DataParallel(Hook):
    """Under torchrun: every step's gradients and loss averaged over the processes (each weighted by its share of
    the batch, ``Trainer.batch_share``), in one all-reduce before any other hook sees them; a process whose share
    of a short last batch is empty still joins the average and the step (``idle_step``)."""

    def before_update(self, trainer: Trainer, loss: torch.Tensor) -> bool:
        grads = [param.grad for param in trainer.model.parameters() if param.grad is not None]
        average_over_processes([*grads, loss.view(1)], trainer.batch_share)
        return True

    def idle_step(self, trainer: Trainer) -> torch.Tensor:
        """The step of a process without examples: zero gradients and loss into the average, then the update."""
        for param in trainer.model.parameters():
            param.grad = torch.zeros_like(param)
        loss = torch.zeros((), device=trainer.device)
        if trainer.before_step(loss):
            take_step(trainer.model, trainer.rule, trainer.optimizer)
        return loss


class NonFinitePolicy(Hook):
    """``on_nonfinite="stop"``: a non-finite epoch loss or weight ends the run (``NonFiniteError``, exit 3, saying
    what was kept). ``"skip"``: a step whose loss or gradients are not finite is skipped and the learning rate
    halved (kept in the optimizer's checkpointed state); an epoch of only skipped steps, or non-finite weights,
    still ends the run."""

    def __init__(self, skip: bool) -> None:
        self.skip = skip

    def before_update(self, trainer: Trainer, loss: torch.Tensor) -> bool:
        if not self.skip:
            return True
        grads = [param.grad for param in trainer.model.parameters() if param.grad is not None]
        if torch.isfinite(loss + torch.stack([grad.sum() for grad in grads]).sum()):
            return True
        for group in trainer.optimizer.param_groups:
            group["lr"] *= 0.5
        lr = trainer.optimizer.param_groups[0]["lr"]
        trainer.log(f"epoch {trainer.epoch + 1}: non-finite loss or gradient; step skipped, lr halved to {lr:.3g}")
        return False

    def after_steps(self, trainer: Trainer, total: torch.Tensor, steps: int, taken: int) -> None:
        bad_weights = not all(bool(torch.isfinite(param).all()) for param in trainer.model.parameters())
        bad_loss = not bool(torch.isfinite(total))
        if bad_loss or bad_weights:
            what = " and ".join(name for name, bad in (("loss", bad_loss), ("weights", bad_weights)) if bad)
            self.stop(trainer, f"{what} in epoch {trainer.epoch + 1}")
        if taken == 0 and steps > 0:
            lr = trainer.optimizer.param_groups[0]["lr"]
            self.stop(trainer, f"loss or gradient at every step of epoch {trainer.epoch + 1} (all skipped, lr halved "
                      f"to {lr:.3g})")  # fmt: skip

    @staticmethod
    def stop(trainer: Trainer, what: str) -> None:
        """Raise NonFiniteError saying what was not finite, what was kept and what to do."""
        raise nonfinite_stop(what, trainer.folder, trainer.epoch, trainer.last_eval)


class StopAt100(Hook):
    """``stop_at_100``: the run ends at an evaluation (after the first epoch) with 100% training accuracy."""

    def __init__(self) -> None:
        self.reached = False

    def after_epoch(self, trainer: Trainer, loss: float, record: Record | None) -> None:
        if record is not None and trainer.epoch > 0:
            self.reached = record["train_error"] == 0.0

    def stops(self, trainer: Trainer) -> bool:
        return self.reached

    def state(self) -> dict[str, Any]:
        return {"stopped_early": self.reached}

    def restore(self, checkpoint: dict[str, Any]) -> None:
        self.reached = checkpoint.get("stopped_early", False)


class EarlyStopping(Hook):
    """``patience``: the run ends after ``patience`` evaluations without a lower validation loss (the training
    loss without a validation split; never the test loss). The evaluation at initialization counts."""

    def __init__(self, patience: int) -> None:
        self.patience, self.best_loss, self.stale_evaluations = patience, math.inf, 0

    def after_epoch(self, trainer: Trainer, loss: float, record: Record | None) -> None:
        if record is None:
            return
        value = record.get("val_loss", record["train_loss"])
        if value < self.best_loss:
            self.best_loss, self.stale_evaluations = value, 0
        else:
            self.stale_evaluations += 1

    def stops(self, trainer: Trainer) -> bool:
        return self.stale_evaluations >= self.patience

    def state(self) -> dict[str, Any]:
        return {"best_loss": self.best_loss, "stale_evaluations": self.stale_evaluations}

    def restore(self, checkpoint: dict[str, Any]) -> None:
        self.best_loss = checkpoint.get("best_loss", math.inf)
        self.stale_evaluations = checkpoint.get("stale_evaluations", 0)


def policy_hooks(config: TrainConfig, group: ProcessGroup | None) -> list[Hook]:
    """``DataParallel`` (under torchrun), ``NonFinitePolicy``, then ``StopAt100`` and ``EarlyStopping`` where
    ``config`` asks for them, in the order their ``before_update`` must run."""
    hooks: list[Hook] = [] if group is None else [DataParallel()]
    hooks.append(NonFinitePolicy(skip=config.on_nonfinite == "skip"))
    if config.stop_at_100:
        hooks.append(StopAt100())
    if config.patience is not None:
        hooks.append(EarlyStopping(config.patience))
    return hooks
