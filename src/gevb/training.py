"""The training engine: one ``Trainer`` per run, used by the CLI, notebooks and tests alike.

Every step is ``train_step`` (forward, rule sets ``.grad``, Adam, constraint) on an index slice
of a seeded permutation of the training split, which lives on the device as one tensor. There is
no rule-specific branch here. The same seed gives the same run on the CPU, and a resumed run ends
bit-identical to an uninterrupted one (checkpoints hold the model, rule, optimizer and RNG states).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from gevb.analysis.alignment import measure_alignment
from gevb.checkpoint import capture_rng, load_checkpoint, load_module_state, restore_rng, save_checkpoint
from gevb.config import TrainConfig, config_from_mapping
from gevb.data import Dataset, Split, load_dataset
from gevb.distributed import (
    ProcessGroup,
    average_over_processes,
    join_process_group,
    local_part,
    process_device,
    sum_over_processes,
)
from gevb.models import Network, build_model
from gevb.rules import make_rule, train_step
from gevb.runs import RunFolder

Log = Callable[[str], None]


class NonFiniteError(ArithmeticError):
    """Training met a non-finite loss or weight (``on_nonfinite="stop"``); the CLI exits with status 3."""


ALIGNMENT_BATCH = 128  # the fixed training examples of --track-alignment


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA if available, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use --device cpu or auto")
    return torch.device(name)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return the generator of the batch order, derived from ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    order_seed = int(np.random.SeedSequence([seed, 1]).generate_state(1)[0])
    return torch.Generator().manual_seed(order_seed)


def make_optimizer(model: Network, lr: float) -> torch.optim.Adam:
    """Adam; the fused kernel where this torch has it for the model's device (CPU needs torch >= 2.4)."""
    major, minor = (int(part) for part in torch.__version__.split(".")[:2])
    fused = model.layers[0].weight.device.type == "cuda" or (major, minor) >= (2, 4)
    return torch.optim.Adam(model.parameters(), lr=lr, fused=fused)


def batch_indices(size: int, batch_size: int, generator: torch.Generator, device) -> Iterator[torch.Tensor]:
    """Index slices of one seeded permutation of ``range(size)``; the last batch may be smaller."""
    order = torch.randperm(size, generator=generator).to(device)
    yield from order.split(batch_size)


@torch.no_grad()
def evaluate(
    model: Network, split: Split, batch_size: int, limit: int | None = None, group: ProcessGroup | None = None
) -> tuple[float, float]:
    """Mean cross-entropy and error rate (%) of ``model`` on ``split`` (its first ``limit`` examples).

    With a process ``group``, each process evaluates its contiguous share and the sums are combined.
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
    loss_sum, wrong = sum_over_processes(sums, group).tolist()
    return loss_sum / size, 100.0 * wrong / size


class Trainer:
    """Builds the data, model, rule and optimizer of ``config`` and trains them.

    ``out``: the run folder (None writes nothing); ``resume``: continue the run in ``out``;
    ``log``: called with one line per evaluation; ``progress``: show a tqdm bar on stderr;
    ``data``: the loaded ``config.dataset`` (to share one copy between runs; None loads it).

    Under ``torchrun`` the processes train one model data-parallel (``gevb.distributed``); only
    rank 0 logs and writes the run folder.
    """

    def __init__(
        self,
        config: TrainConfig,
        out: str | Path | None = None,
        resume: bool = False,
        log: Log | None = None,
        progress: bool = False,
        data: Dataset | None = None,
    ) -> None:
        self.config = config.validate()
        self.device = process_device(resolve_device(config.device))
        self.group = join_process_group(self.device)
        main = self.group is None or self.group.main
        self.log, self.progress = (log or (lambda line: None)) if main else (lambda line: None), progress and main
        self.folder = RunFolder(out) if out is not None else None
        checkpoint = self.folder.check(config, resume) if self.folder is not None else None
        if not main:
            self.folder = None  # read the checkpoint, write nothing
        self.batch_order = seed_everything(config.seed)
        if data is None:
            data = load_dataset(config.dataset, config.data_dir, config.download, self.device)
        elif data.name != config.dataset or data.train.x.device.type != self.device.type:
            raise ValueError(f"data holds {data.name} on {data.train.x.device}, not {config.dataset} on {self.device}")
        self.data = data
        self.model = build_model(
            config.model, self.data.input_shape, self.data.num_classes, config.sign, config.widths, config.seed,
            device=self.device,
        )  # fmt: skip
        self.rule = make_rule(config.rule, self.model, config.seed).to(self.device)
        self.optimizer = make_optimizer(self.model, config.lr)
        self.epoch, self.seconds, self.stopped_early = 0, 0.0, False
        self.skipped_last_step, self.batch_share = False, 1.0
        self.last_eval: dict[str, Any] | None = None
        if checkpoint is not None:
            self.restore(checkpoint)
        if self.folder is not None:
            self.folder.begin(config, self.epoch)

    def restore(self, checkpoint: dict[str, Any]) -> None:
        """Load a checkpoint written by ``save`` (same run-defining config)."""
        source = self.folder.checkpoint_path if self.folder else Path("checkpoint")
        load_module_state(self.model, checkpoint["model"], f"model {self.config.model!r}", source)
        load_module_state(self.rule, checkpoint["rule"], f"rule {self.config.rule!r}", source)
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        restore_rng(checkpoint["rng"], self.batch_order)
        self.epoch, self.seconds = checkpoint["epoch"], checkpoint["seconds"]
        self.stopped_early, self.last_eval = checkpoint["stopped_early"], checkpoint["last_eval"]

    def save(self) -> None:
        save_checkpoint(
            self.folder.checkpoint_path,
            {
                "config": self.config.to_dict(),
                "epoch": self.epoch,
                "seconds": self.seconds,
                "stopped_early": self.stopped_early,
                "last_eval": self.last_eval,
                "model": self.model.state_dict(),
                "rule": self.rule.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "rng": capture_rng(self.batch_order),
            },
        )

    @property
    def steps_per_epoch(self) -> int:
        return -(-len(self.data.train) // self.config.batch_size)

    def train_epoch(self, bar: tqdm, max_steps: int | None = None) -> float:
        """One pass over a fresh permutation of the training split; returns the mean batch loss."""
        train = self.data.train
        total, steps, taken = torch.zeros((), device=self.device), 0, 0
        for index in batch_indices(len(train), self.config.batch_size, self.batch_order, self.device):
            local = local_part(index, self.group)
            self.batch_share = len(local) / len(index)
            if len(local):
                loss = train_step(
                    self.model, self.rule, self.optimizer, train.x[local], train.y[local], self.before_step
                )
            else:
                loss = self.idle_step()
            if not self.skipped_last_step:
                total += loss
                taken += 1
            steps += 1
            bar.update(1)
            if steps == max_steps:
                break
        self.check_finite(total)
        return total.item() / max(taken, 1)

    def idle_step(self) -> torch.Tensor:
        """A process whose share of a short last batch is empty still joins the average and the step."""
        for param in self.model.parameters():
            param.grad = torch.zeros_like(param)
        loss = torch.zeros((), device=self.device)
        if self.before_step(loss):
            self.optimizer.step()
            self.model.apply_constraint()
        return loss

    def before_step(self, loss: torch.Tensor) -> bool:
        """Between the rule and the optimizer: average gradients and loss over processes (data parallel);
        with ``on_nonfinite="skip"``, skip a step whose loss or gradients are not finite and halve the
        learning rate (kept in the optimizer's checkpointed state)."""
        self.skipped_last_step = False
        grads = [param.grad for param in self.model.parameters() if param.grad is not None]
        if self.group is not None:
            average_over_processes([*grads, loss.view(1)], self.batch_share)
        if self.config.on_nonfinite != "skip":
            return True
        if torch.isfinite(loss + torch.stack([grad.sum() for grad in grads]).sum()):
            return True
        for group in self.optimizer.param_groups:
            group["lr"] *= 0.5
        self.skipped_last_step = True
        self.log(f"epoch {self.epoch + 1}: non-finite loss or gradient; step skipped, lr halved to {group['lr']:.3g}")
        return False

    def check_finite(self, total_loss: torch.Tensor) -> None:
        """Raise NonFiniteError if the epoch's summed loss or any weight is not finite."""
        bad_weights = not all(bool(torch.isfinite(param).all()) for param in self.model.parameters())
        bad_loss = not bool(torch.isfinite(total_loss))
        if not (bad_loss or bad_weights):
            return
        what = " and ".join(name for name, bad in (("loss", bad_loss), ("weights", bad_weights)) if bad)
        if self.folder is None:
            kept = "nothing was saved (no --out)"
        elif self.folder.checkpoint_path.exists():
            kept = f"the last good checkpoint (epoch {self.epoch}) is kept in {self.folder.path}"
        else:
            kept = f"no checkpoint was written yet in {self.folder.path}"
        raise NonFiniteError(
            f"non-finite {what} in epoch {self.epoch + 1}; training stopped and {kept}. "
            "Lower --lr, check the data, or pass --on-nonfinite skip"
        )

    def evaluate(self, limit: int | None = None) -> dict[str, Any]:
        """Loss and error % on both splits (their first ``limit`` examples); with ``track_alignment``, also
        ``alignment``: each layer's angles to BP on the first ``ALIGNMENT_BATCH`` training examples
        (``signal_deg``, ``update_deg``; ``gevb.analysis.alignment``) and the ``seconds`` they took."""
        size = self.config.eval_batch_size
        train_loss, train_error = evaluate(self.model, self.data.train, size, limit, self.group)
        test_loss, test_error = evaluate(self.model, self.data.test, size, limit, self.group)
        metrics = {"train_loss": train_loss, "train_error": train_error}
        metrics |= {"test_loss": test_loss, "test_error": test_error}
        if self.config.track_alignment:
            x, y = self.data.train.x[:ALIGNMENT_BATCH], self.data.train.y[:ALIGNMENT_BATCH]
            start = time.perf_counter()
            metrics["alignment"] = measure_alignment(self.model, self.rule, x, y)
            metrics["alignment"]["seconds"] = time.perf_counter() - start
        return metrics

    @property
    def finished(self) -> bool:
        return self.epoch >= self.config.epochs or (self.stopped_early and self.config.stop_at_100)

    def fit(self) -> dict[str, Any]:
        """Train to ``config.epochs`` (or 100% train accuracy with ``stop_at_100``); return the result."""
        config = self.config
        bar = tqdm(
            total=config.epochs * self.steps_per_epoch, initial=self.epoch * self.steps_per_epoch,
            disable=not self.progress or self.finished, unit="step", desc=f"{config.model} {config.rule}",
            leave=False, dynamic_ncols=True,
        )  # fmt: skip
        samples, train_seconds = 0, 0.0
        while not self.finished:
            start = time.perf_counter()
            loss = self.train_epoch(bar)
            self.epoch += 1
            samples += len(self.data.train)
            train_seconds += time.perf_counter() - start
            bar.set_postfix(epoch=self.epoch, loss=f"{loss:.4f}")
            evaluating = self.epoch % config.eval_every == 0 or self.epoch == config.epochs
            metrics = self.evaluate() if evaluating else None
            self.seconds += time.perf_counter() - start
            if metrics is not None:
                self.record(metrics, samples / train_seconds)
                samples, train_seconds = 0, 0.0
                self.stopped_early = metrics["train_error"] == 0.0
            if self.folder is not None:
                self.save()
        bar.close()
        result = self.result()
        if self.folder is not None:
            self.folder.write_result(result)
        return result

    def record(self, metrics: dict[str, float], samples_per_s: float) -> None:
        """Log one evaluation and append it to ``metrics.jsonl``."""
        self.last_eval = {"epoch": self.epoch, **metrics, "seconds": self.seconds, "samples_per_s": samples_per_s}
        if self.folder is not None:
            self.folder.append_metrics(self.last_eval)
        line = (
            f"epoch {self.epoch}/{self.config.epochs}  train {metrics['train_error']:.2f}% "
            f"(loss {metrics['train_loss']:.4f})  test {metrics['test_error']:.2f}% "
            f"(loss {metrics['test_loss']:.4f})  {self.seconds:.1f} s  {samples_per_s:.0f} samples/s"
        )
        if "alignment" in metrics:
            angles = metrics["alignment"]["signal_deg"].values()
            line += "  signal angles " + "/".join("-" if a is None else f"{a:.0f}" for a in angles) + " deg"
        self.log(line)

    def result(self) -> dict[str, Any]:
        """The last evaluation with the run's length, time and resolved config."""
        last = self.last_eval or {}
        return {
            **{key: last.get(key) for key in ("train_error", "test_error", "train_loss", "test_loss")},
            "epochs": self.epoch,
            "stopped_early": self.stopped_early and self.config.stop_at_100,
            "seconds": self.seconds,
            "device": str(self.device),
            "processes": 1 if self.group is None else self.group.world,
            "out": str(self.folder.path) if self.folder else None,
            "config": self.config.to_dict(),
        }

    def dry_run(self) -> dict[str, Any]:
        """Two training batches and one evaluation batch per split; nothing is written."""
        start = time.perf_counter()
        with tqdm(disable=True) as bar:
            loss = self.train_epoch(bar, max_steps=2)
        metrics = self.evaluate(limit=self.config.eval_batch_size)
        self.seconds = time.perf_counter() - start
        self.log(f"dry run: 2 steps (last loss {loss:.4f}), one eval batch per split, {self.seconds:.2f} s")
        return {**metrics, "epochs": 0, "dry_run": True, "seconds": self.seconds, "config": self.config.to_dict()}


def train(config: TrainConfig, out: str | Path | None = None, resume: bool = False, **options: Any) -> dict[str, Any]:
    """Train ``config`` to the end and return the result dict (see ``Trainer.result``)."""
    return Trainer(config, out, resume, **options).fit()


def load_run(path: str | Path, device: str = "auto", data_dir: str | None = None, download: bool = False) -> Trainer:
    """A ``Trainer`` (writing nothing) holding the model and rule saved in a run folder or checkpoint file,
    at the checkpoint's epoch. ``device``, ``data_dir``, ``download`` replace the run's own."""
    path = Path(path)
    checkpoint_path = RunFolder(path).checkpoint_path if path.is_dir() else path
    checkpoint = load_checkpoint(checkpoint_path)
    config = config_from_mapping(checkpoint["config"], str(checkpoint_path))
    config = config.replace(device=device, data_dir=data_dir or config.data_dir, download=download)
    trainer = Trainer(config)
    load_module_state(trainer.model, checkpoint["model"], f"model {config.model!r}", checkpoint_path)
    load_module_state(trainer.rule, checkpoint["rule"], f"rule {config.rule!r}", checkpoint_path)
    trainer.epoch = checkpoint["epoch"]
    return trainer


def evaluate_run(
    path: str | Path, device: str = "auto", data_dir: str | None = None, download: bool = False
) -> dict[str, Any]:
    """Train/test loss and error of the model saved in a run folder or checkpoint file."""
    trainer = load_run(path, device, data_dir, download)
    return {**trainer.evaluate(), "epoch": trainer.epoch, "config": trainer.config.to_dict()}
