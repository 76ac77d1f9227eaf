"""Run folders and their contents.

A run folder: ``config.yaml`` (resolved config), ``architecture.yaml`` (the network it builds, as
``gevb.models.specs`` reads it), ``metrics.jsonl`` (one line per evaluation; the
same records flat in ``metrics.csv``),
``checkpoint.pt`` (written every epoch) and ``result.json`` (written once the run has finished); ``.gevb.lock``
is held by the one process that trains in it; readers only check that no one holds it (``gevb.locks``).

A folder holding one run is never overwritten by another: starting a run there needs ``resume``
and the same run-defining settings (``IDENTITY_FIELDS``). ``Run`` is a folder read back whole;
``collect_runs`` reads every run under a folder of runs.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gevb.checkpoint import load_checkpoint
from gevb.config import IDENTITY_FIELDS, TrainConfig, dump_config, load_config
from gevb.files import atomic_file, is_partial, json_text, read_text
from gevb.locks import LOCK_NAME, FolderLock
from gevb.models.specs import ArchitectureSpec, spec_yaml
from gevb.text import counted


def flat_record(record: dict[str, Any]) -> dict[str, Any]:
    """A metrics record with its nested alignment flattened (``signal_deg.fc1``, ..., ``alignment_seconds``);
    None (a non-finite value) becomes an empty cell."""
    row = {key: value for key, value in record.items() if key != "alignment"}
    for key, value in record.get("alignment", {}).items():
        if isinstance(value, dict):
            row |= {f"{key}.{layer}": angle for layer, angle in value.items()}
        else:
            row[f"alignment_{key}"] = value
    return {key: "" if value is None else value for key, value in row.items()}


def check_out(out: Path) -> None:
    """Raise ValueError when ``out`` (an --out folder), or the nearest of its parents that exists, is a file."""
    existing = next((path for path in (out, *out.parents) if path.exists()), None)
    if existing is not None and not existing.is_dir():
        where = "" if existing == out else f"{out}: "
        raise ValueError(f"--out {where}{existing} is a file; choose a folder")


class RunFolder:
    """The files of one run under ``path``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config_path = self.path / "config.yaml"
        self.architecture_path = self.path / "architecture.yaml"
        self.metrics_path = self.path / "metrics.jsonl"
        self.metrics_csv_path = self.path / "metrics.csv"  # the same records, flat, for spreadsheets and pandas
        self.checkpoint_path = self.path / "checkpoint.pt"
        self.result_path = self.path / "result.json"
        self.lock_file = FolderLock(self.path)
        self.created = False  # whether ``lock`` created the folder

    def lock(self) -> None:
        """Create the folder if needed and take its lock, or raise ``FolderBusy`` (a ValueError) naming the
        process that holds it."""
        check_out(self.path)
        if not self.lock_file.held:
            self.created = not self.path.exists()
            self.path.mkdir(parents=True, exist_ok=True)
        try:
            self.lock_file.acquire()
        except BaseException:
            self.unlock()
            raise

    def unlock(self) -> None:
        """Give the lock back; in a folder that holds nothing else the lock file goes too, and the folder if
        ``lock`` created it."""
        if not self.lock_file.held:
            return
        empty = all(path.name == LOCK_NAME for path in self.path.iterdir())
        self.lock_file.release(remove=empty)
        if empty and self.created:
            self.path.rmdir()
        self.created = False

    def holds_run(self) -> bool:
        return self.config_path.is_file()

    def read_config(self) -> TrainConfig:
        return load_config(self.config_path)

    def read_metrics(self) -> list[dict[str, Any]]:
        """Every evaluation record, in order (an empty list before the first)."""
        if not self.metrics_path.is_file():
            return []
        lines = read_text(self.metrics_path, "metrics file").splitlines()
        try:
            return [json.loads(line) for line in lines if line.strip()]
        except json.JSONDecodeError:
            raise ValueError(f"{self.metrics_path} is corrupt (not JSON lines); restore or delete it") from None

    def append_metrics(self, record: dict[str, Any]) -> None:
        """One line of ``metrics.jsonl`` and one row of ``metrics.csv`` (its header from the first record)."""
        with self.metrics_path.open("a") as file:
            file.write(json_text(record) + "\n")
        self.append_metrics_row(record)

    def append_metrics_row(self, record: dict[str, Any]) -> None:
        row = flat_record(record)
        existed = self.metrics_csv_path.exists()
        columns = self.csv_columns() if existed else list(row)
        with self.metrics_csv_path.open("a", newline="") as file:
            writer = csv.DictWriter(file, columns, extrasaction="ignore", lineterminator="\n")
            if not existed:
                writer.writeheader()
            writer.writerow(row)

    def csv_columns(self) -> list[str]:
        with self.metrics_csv_path.open(newline="") as file:
            return next(csv.reader(file), [])

    def read_result(self) -> dict[str, Any] | None:
        """The result of the finished run (see ``Trainer.result``), or None while it is unfinished."""
        if not self.result_path.is_file():
            return None
        try:
            return json.loads(read_text(self.result_path, "result file"))
        except json.JSONDecodeError:
            raise ValueError(f"{self.result_path} is corrupt; delete it and resume the run to rewrite it") from None

    def write_result(self, result: dict[str, Any]) -> None:
        with atomic_file(self.result_path) as file:
            file.write((json_text(result, indent=1) + "\n").encode())

    def is_finished(self, config: TrainConfig) -> bool:
        """True when the folder holds ``config``'s run (same settings) trained to ``config.epochs`` or stopped
        early at 100% train accuracy; raises ValueError when it holds a different run."""
        if not self.holds_run():
            return False
        self.check_same_run(config)
        result = self.read_result()
        return result is not None and (result["stopped_early"] or result["epochs"] >= config.epochs)

    def keep_metrics_through(self, epoch: int) -> None:
        """Drop records written after ``epoch`` (evaluations a crash left without a checkpoint), and write
        ``metrics.csv`` again from the records kept (a crash may have cut it between the two files)."""
        records = self.read_metrics()
        kept = [record for record in records if record["epoch"] <= epoch]
        if len(kept) != len(records):
            text = "".join(json_text(record) + "\n" for record in kept)
            with atomic_file(self.metrics_path) as file:
                file.write(text.encode())
        self.metrics_csv_path.unlink(missing_ok=True)
        for record in kept:
            self.append_metrics_row(record)

    def check(self, config: TrainConfig, resume: bool) -> dict[str, Any] | None:
        """Check that ``config`` may run in the folder (``lock`` taken); return the checkpoint to resume from, if
        any. Writes nothing.

        Raises ValueError when the folder holds something else: another run (without ``resume``,
        or with different run-defining settings) or files that are not a run.
        """
        if self.holds_run():
            saved = self.read_config()
            if not resume:
                raise ValueError(
                    f"{self.path} already holds a run; pass --resume to continue it, or choose another --out"
                )
            self.check_same_run(config, saved)
            if saved.lr_schedule == "cosine" and config.epochs != saved.epochs:
                raise ValueError(
                    f"{self.path} follows a cosine schedule that reaches lr 0 at epoch {saved.epochs}, the length it "
                    f"started with, so a resume keeps --epochs {saved.epochs}; train a run of "
                    f"{counted(config.epochs, 'epoch')} in another --out"
                )
            if not self.checkpoint_path.exists():
                return None
            checkpoint = load_checkpoint(self.checkpoint_path)
            if checkpoint["epoch"] > config.epochs:
                raise ValueError(
                    f"{self.path} has already trained {counted(checkpoint['epoch'], 'epoch')}; resume it with "
                    f"--epochs {checkpoint['epoch']} or more, or choose another --out"
                )
            return checkpoint
        if self.path.is_dir() and not all(is_partial(p) or p.name == LOCK_NAME for p in self.path.iterdir()):
            raise ValueError(f"{self.path} is not empty and holds no gevb run; choose a new or empty --out")
        return None

    def run_config(self, config: TrainConfig) -> TrainConfig:
        """What ``config.yaml`` records of ``config``'s run (``check`` passed): for a run the folder holds, its
        own settings, the first segment's included (``SEGMENT_FIELDS``), with ``config``'s epochs; else ``config``."""
        return self.read_config().replace(epochs=config.epochs) if self.holds_run() else config

    def check_same_run(self, config: TrainConfig, saved: TrainConfig | None = None) -> None:
        """Raise ValueError naming the first run-defining setting (``IDENTITY_FIELDS``) that differs."""
        saved = saved or self.read_config()
        for key in IDENTITY_FIELDS:
            if getattr(saved, key) != getattr(config, key):
                raise ValueError(
                    f"{self.path} holds a run with {key}={getattr(saved, key)!r}, not {getattr(config, key)!r}; "
                    "resume it with the same settings or choose another --out"
                )

    def discard(self) -> None:
        """Remove what ``begin`` and the first evaluations wrote (``unlock`` then removes a folder ``lock``
        created)."""
        written = (self.config_path, self.architecture_path, self.metrics_path, self.metrics_csv_path, self.result_path)
        for path in written:
            path.unlink(missing_ok=True)

    def begin(self, config: TrainConfig, epoch: int, architecture: ArchitectureSpec) -> None:
        """Create the folder, save the run's config (``run_config``) and architecture where they changed, drop
        metrics newer than the checkpoint's ``epoch``, the result of an earlier, shorter finish (``fit`` writes it
        again) and the temporary files of writes a killed process left unfinished."""
        self.path.mkdir(parents=True, exist_ok=True)
        for leftover in filter(is_partial, self.path.iterdir()):
            leftover.unlink(missing_ok=True)
        self.keep_metrics_through(epoch)
        self.result_path.unlink(missing_ok=True)
        for path, text in ((self.config_path, dump_config(config)), (self.architecture_path, spec_yaml(architecture))):
            if not path.is_file() or path.read_text() != text:
                with atomic_file(path) as file:
                    file.write(text.encode())


@dataclass
class Run:
    """One run folder read back: its config, evaluations (``metrics.jsonl``) and result (None while unfinished)."""

    path: Path
    config: TrainConfig
    metrics: list[dict[str, Any]]
    result: dict[str, Any] | None

    @classmethod
    def read(cls, folder: RunFolder) -> Run:
        return cls(folder.path, folder.read_config(), folder.read_metrics(), folder.read_result())

    @property
    def finished(self) -> bool:
        return self.result is not None

    @property
    def last(self) -> dict[str, Any]:
        """The last evaluation: the result when finished, else the last metrics record."""
        return self.result if self.result is not None else self.metrics[-1]


def collect_runs(out: str | Path) -> list[Run]:
    """Every run folder directly under ``out`` that has at least one evaluation, sorted by folder name."""
    out = Path(out)
    if not out.is_dir():
        raise ValueError(f"{out} is not a folder of runs; pass the --out folder of gevb reproduce")
    folders = [RunFolder(path) for path in sorted(child for child in out.iterdir() if child.is_dir())]
    runs = [Run.read(folder) for folder in folders if folder.holds_run()]
    runs = [run for run in runs if run.metrics]
    if not runs:
        raise ValueError(f"{out} holds no evaluated run; start one with gevb reproduce --out {out}")
    return runs
