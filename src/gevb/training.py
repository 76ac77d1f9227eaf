"""The training loop: one ``Trainer`` per run, used by the CLI, notebooks and tests alike.

``Trainer`` builds its run with ``gevb.build.build_run`` and trains it. Every step is ``train_step``
(forward, rule sets ``.grad``, Adam, constraint) on an index slice of a seeded permutation of the
training split, which lives on the device as one tensor. There is no rule-specific branch here.
Evaluation, alignment tracking, progress, logging and the run folder are hooks (``gevb.hooks``), and so
are the policies: data-parallel averaging, the non-finite policy and early stopping (``gevb.policies``).
The same seed gives the same run on the CPU, and a resumed run ends bit-identical to an
uninterrupted one (checkpoints hold the model, rule, optimizer and RNG states).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gevb.build import build_run, resolve_device, saved_architecture
from gevb.checkpoint import capture_rng, load_module_state, restore_rng
from gevb.config import SEGMENT_FIELDS, TrainConfig
from gevb.data import Dataset
from gevb.data.fingerprint import check_same_data
from gevb.distributed import ProcessGroup, all_agree, join_process_group, local_part, process_device
from gevb.evaluation import evaluate_splits
from gevb.faults import NonFiniteError
from gevb.hooks import Hook, standard_hooks
from gevb.models.specs import is_spec_file
from gevb.policies import DataParallel, policy_hooks
from gevb.precision import precision
from gevb.provenance import provenance
from gevb.rules import train_step
from gevb.runs import RunFolder
from gevb.threads import torch_threads

Log = Callable[[str], None]


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return the generator of the batch order, derived from ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    order_seed = int(np.random.SeedSequence([seed, 1]).generate_state(1)[0])
    return torch.Generator().manual_seed(order_seed)


def batch_indices(size: int, batch_size: int, generator: torch.Generator, device) -> Iterator[torch.Tensor]:
    """Index slices of one seeded permutation of ``range(size)``; the last batch may be smaller."""
    order = torch.randperm(size, generator=generator).to(device)
    yield from order.split(batch_size)


def optional(hook: Hook, method: str, default: Any) -> Callable[..., Any]:
    """``hook``'s ``method``, or one returning ``default``: a hook written before gevb's hooks had it (``Hook``
    subclasses have every method) keeps working."""
    return getattr(hook, method, None) or (lambda *args: default)


class Trainer:
    """Trains the run of ``config``: its parts from ``build_run``, the loop in ``fit``.

    ``out``: the run folder (None writes nothing); ``resume``: continue the run in ``out``;
    ``log``: called with one line per evaluation; ``progress``: show a tqdm bar on stderr;
    ``data``: the loaded ``config.dataset`` (to share one copy between runs; None loads it);
    ``hooks``: more ``gevb.hooks.Hook``s, called after the built-in ones. Constructing a Trainer
    reads the run folder but writes nothing; ``fit`` begins the run there. Each ``fit`` that trains is a
    segment of the run (``segments``: its epochs, time, ``SEGMENT_FIELDS`` and provenance); ``run_config`` is
    what the run records as its config (a resumed run's own, the first segment's settings, this ``epochs``).

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
        hooks: Sequence[Hook] = (),
    ) -> None:
        self.config = config.validate()
        # Paths are saved absolute, so the run can be evaluated and resumed from anywhere.
        if self.config.data_dir is not None:
            self.config = self.config.replace(data_dir=str(Path(self.config.data_dir).expanduser().resolve()))
        if data is None and self.config.dataset.endswith(".npz"):
            self.config = self.config.replace(dataset=str(Path(self.config.dataset).expanduser().resolve()))
        if is_spec_file(self.config.model):
            self.config = self.config.replace(model=str(Path(self.config.model).expanduser().resolve()))
        device = process_device(resolve_device(self.config.device))
        self.group: ProcessGroup | None = join_process_group(device)
        main = self.group is None or self.group.main
        folder = RunFolder(out) if out is not None else None
        if self.config.tensorboard and folder is None:
            raise ValueError("--tensorboard writes into the run folder: add --out DIR")
        self.folder = folder if main else None  # other processes read the checkpoint and write nothing
        try:
            checkpoint = self.check_folder(folder, resume)  # the lock taken, held until ``fit`` returns or raises
            self.run_config = folder.run_config(self.config) if folder is not None else self.config
            self.log = log if log is not None and main else (lambda line: None)
            self.batch_order = seed_everything(self.config.seed)
            saved = None if checkpoint is None else saved_architecture(checkpoint, folder.checkpoint_path)
            parts = build_run(self.config, data, device, saved)
            self.device, self.data, self.model, self.rule = parts.device, parts.data, parts.model, parts.rule
            self.optimizer, self.schedule = parts.optimizer, parts.schedule
            self.epoch, self.seconds = 0, 0.0
            self.skipped_last_step, self.batch_share = False, 1.0
            self.last_eval: dict[str, Any] | None = None
            self.segments: list[dict[str, Any]] = []
            self.already_finished = False  # whether ``fit`` found the run finished, and so trained and wrote nothing
            policies = policy_hooks(self.config, self.group)
            self.parallel = next((hook for hook in policies if isinstance(hook, DataParallel)), None)
            log_hook = log if main else None
            self.hooks = [*standard_hooks(self.config, self.folder, log_hook, progress and main, policies), *hooks]
            if checkpoint is not None:
                self.restore(checkpoint, folder.checkpoint_path)
        except BaseException:
            self.release()  # a failed start leaves the folder as it found it
            raise

    def check_folder(self, folder: RunFolder | None, resume: bool) -> dict[str, Any] | None:
        """Take the folder's lock (the writing process: rank 0 under torchrun) and ``folder.check`` it: the
        checkpoint to resume from, if any. Under torchrun every process checks the folder, and none goes on
        (rank 0 to write it) until all have: each reads the same checkpoint, and if one is refused, all stop."""
        refused = None
        try:
            if self.folder is not None:
                self.folder.lock()
            checkpoint = folder.check(self.config, resume) if folder is not None else None
        except (ValueError, OSError) as error:  # in use, holding another run, not writable
            refused, checkpoint = error, None
        if not all_agree(refused is None, self.group):
            raise refused or ValueError(f"{folder.path} refused this run in another of its processes (rank 0 says why)")
        return checkpoint

    def restore(self, checkpoint: dict[str, Any], source: Path) -> None:
        """Load a checkpoint written from ``state`` (same run-defining config), on the same data."""
        fix = "restore the data it was trained on, or start a new run in another --out"
        check_same_data(checkpoint.get("data"), self.data.record(), source.parent, fix)
        load_module_state(self.model, checkpoint["model"], f"model {self.config.model!r}", source)
        load_module_state(self.rule, checkpoint["rule"], f"rule {self.config.rule!r}", source)
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        if self.schedule is not None:
            self.schedule.load_state_dict(checkpoint["schedule"])
        restore_rng(checkpoint["rng"], self.batch_order, self.device)
        self.epoch, self.seconds = checkpoint["epoch"], checkpoint["seconds"]
        self.last_eval, self.segments = checkpoint["last_eval"], checkpoint.get("segments", [])
        for hook in self.hooks:
            optional(hook, "restore", None)(checkpoint)

    def state(self) -> dict[str, Any]:
        """Everything a checkpoint holds to resume bit-identically (the hooks' own state too)."""
        hooks = {key: value for hook in self.hooks for key, value in optional(hook, "state", {})().items()}
        return hooks | {
            "config": self.run_config.to_dict(),
            "segments": self.segments,
            "architecture": self.model.spec.to_dict(),
            "data": self.data.record(),
            "epoch": self.epoch,
            "seconds": self.seconds,
            "last_eval": self.last_eval,
            "model": self.model.state_dict(),
            "rule": self.rule.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": None if self.schedule is None else self.schedule.state_dict(),
            "rng": capture_rng(self.batch_order, self.device),
        }

    @property
    def steps_per_epoch(self) -> int:
        return -(-len(self.data.train) // self.config.batch_size)

    def train_epoch(self, max_steps: int | None = None) -> float:
        """One pass over a fresh permutation of the training split; returns the mean batch loss."""
        total = torch.zeros((), device=self.device)
        with precision(self.config.precision, self.device):
            steps, taken = self.train_steps(total, max_steps)
        for hook in self.hooks:
            optional(hook, "after_steps", None)(self, total, steps, taken)
        return total.item() / max(taken, 1)

    def train_steps(self, total: torch.Tensor, max_steps: int | None) -> tuple[int, int]:
        """The steps of one epoch (at most ``max_steps``), their losses added to ``total`` on the device;
        returns (steps, steps taken, i.e. not skipped)."""
        train, steps, taken = self.data.train, 0, 0
        for index in batch_indices(len(train), self.config.batch_size, self.batch_order, self.device):
            local = local_part(index, self.group)
            self.batch_share = len(local) / len(index)
            if len(local):
                loss = train_step(  # labels were checked when the data set was built
                    self.model, self.rule, self.optimizer, train.x[local], train.y[local], self.before_step, False
                )
            else:  # a data-parallel process without examples in a short last batch
                loss = self.parallel.idle_step(self)
            if not self.skipped_last_step:
                total += loss
                taken += 1
            steps += 1
            for hook in self.hooks:
                hook.after_step(self)
            if steps == max_steps:
                break
        return steps, taken

    def before_step(self, loss: torch.Tensor) -> bool:
        """Between the rule and the optimizer: every hook's ``before_update`` (data-parallel averaging, the
        non-finite policy, ...); False skips the step."""
        take = True
        for hook in self.hooks:
            take = optional(hook, "before_update", True)(self, loss) and take
        self.skipped_last_step = not take
        return take

    def evaluate(self, limit: int | None = None, on_batch: Callable[[int], object] | None = None) -> dict[str, float]:
        """Loss and error % on every split (their first ``limit`` examples), over all processes; ``on_batch`` is
        called with each batch's example count."""
        return evaluate_splits(self.model, self.data, self.config.eval_batch_size, limit, self.group, on_batch)

    def measure(self, limit: int | None = None) -> dict[str, Any]:
        """Every hook's ``measure``, merged: the metrics of one evaluation."""
        metrics: dict[str, Any] = {}
        for hook in self.hooks:
            metrics |= hook.measure(self, limit)
        return metrics

    @property
    def finished(self) -> bool:
        return self.epoch >= self.config.epochs or self.stopped

    @property
    def stopped(self) -> bool:
        """Stopped before ``config.epochs`` by a hook (early stopping: ``gevb.policies``)."""
        return any(optional(hook, "stops", False)(self) for hook in self.hooks)

    def fit(self) -> dict[str, Any]:
        """Train to ``config.epochs``, or until a hook stops the run early; return the result.
        With ``config.threads``, torch runs that many CPU threads until it returns, then the caller's again."""
        try:
            with torch_threads(self.config.threads):
                return self._fit()
        finally:
            self.release()

    def release(self) -> None:
        """Give the run folder's lock back (``fit`` does when it returns or raises)."""
        if self.folder is not None:
            self.folder.unlock()

    def _fit(self) -> dict[str, Any]:
        stored = self.folder.read_result() if self.folder is not None and self.finished else None
        self.already_finished = stored is not None
        if stored is not None:  # a finished run resumed as it was: nothing to train, nothing is rewritten
            return stored
        settings = {name: getattr(self.config, name) for name in SEGMENT_FIELDS}
        segment = {"from_epoch": self.epoch, "to_epoch": self.epoch, "seconds": 0.0, **settings}
        self.segments.append(segment | {"provenance": provenance(self.device)})
        for hook in self.hooks:
            hook.start(self)
        try:
            if self.epoch == 0 and not self.finished:
                self.evaluate_initialization()
            self.run_epochs()
        except (NonFiniteError, OSError) as error:  # a non-finite value, or a write that failed (a full disk)
            for hook in self.hooks:
                hook.fail(self, error)
            raise
        result = self.result()
        for hook in self.hooks:
            hook.end(self, result)
        return result

    def add_seconds(self, seconds: float) -> None:
        """Time spent training and evaluating, counted for the run and for its segment."""
        self.seconds += seconds
        self.segments[-1]["seconds"] += seconds

    def evaluate_initialization(self) -> None:
        """The evaluation at epoch 0, before any step: the first point of every learning and alignment
        curve. Recorded like any other (hooks' ``after_epoch`` with a NaN loss), never checkpointed."""
        start = time.perf_counter()
        record = {"epoch": 0, **self.measure()}
        self.add_seconds(time.perf_counter() - start)
        self.last_eval = record | {"seconds": self.seconds, "samples_per_s": None}
        for hook in self.hooks:
            hook.after_epoch(self, math.nan, self.last_eval)

    def run_epochs(self) -> None:
        """Epochs until ``finished``: train, evaluate when due, then every hook's ``after_epoch``."""
        config = self.config
        samples, train_seconds = 0, 0.0
        while not self.finished:
            start = time.perf_counter()
            loss = self.train_epoch()
            self.epoch += 1
            if self.schedule is not None:
                self.schedule.step()
            samples += len(self.data.train)
            train_seconds += time.perf_counter() - start
            record = None
            if self.epoch % config.eval_every == 0 or self.epoch == config.epochs:
                record = {"epoch": self.epoch, **self.measure()}
            self.add_seconds(time.perf_counter() - start)
            self.segments[-1]["to_epoch"] = self.epoch
            if record is not None:
                record |= {"seconds": self.seconds, "samples_per_s": samples / train_seconds}
                self.last_eval, samples, train_seconds = record, 0, 0.0
            for hook in self.hooks:
                hook.after_epoch(self, loss, record)

    def result(self) -> dict[str, Any]:
        """The last evaluation with the run's length, time and resolved config."""
        last = self.last_eval or {}
        return {
            **{key: last.get(key) for key in ("train_error", "test_error", "train_loss", "test_loss")},
            **{key: last[key] for key in ("val_error", "val_loss") if key in last},
            "epochs": self.epoch,
            "stopped_early": self.stopped,
            "seconds": self.seconds,
            "device": str(self.device),
            "processes": 1 if self.group is None else self.group.world,
            "out": str(self.folder.path) if self.folder else None,
            "config": self.run_config.to_dict(),
            "data": self.data.record(),  # the name, source and SHA-256 of the data it trained on
            "segments": self.segments,  # each start and resume: epochs, seconds, settings, provenance
            "provenance": self.segments[-1]["provenance"],  # versions, commit and device of the last segment
        }

    def dry_run(self) -> dict[str, Any]:
        """Two training batches and one evaluation batch per split; nothing is written."""
        start = time.perf_counter()
        with torch_threads(self.config.threads):
            loss = self.train_epoch(max_steps=2)
            metrics = self.measure(limit=self.config.eval_batch_size)
        self.seconds = time.perf_counter() - start
        self.log(f"dry run: 2 steps (last loss {loss:.4f}), one eval batch per split, {self.seconds:.2f} s")
        return {**metrics, "epochs": 0, "dry_run": True, "seconds": self.seconds, "config": self.config.to_dict()}


def train(config: TrainConfig, out: str | Path | None = None, resume: bool = False, **options: Any) -> dict[str, Any]:
    """Train ``config`` to the end and return the result dict (see ``Trainer.result``)."""
    return Trainer(config, out, resume, **options).fit()
