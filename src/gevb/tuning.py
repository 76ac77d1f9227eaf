"""``gevb tune``: an Optuna study of one (data set, model, rule, sign) over the rule's learning rate and its
declared options (docs/cluster.md).

The objective is the validation error of a run trained on the rest of the training split (``val_fraction``; the
test split is never looked at); each trial is a normal run folder ``OUT/trial-NNNN`` (resumable, in ``gevb
report``), pruned at an evaluation whose validation error the pruner finds hopeless. Workers, local processes or
Slurm array tasks, share the study through its storage: a journal file by default, any database Optuna takes
(``--storage``) on a cluster. A worker holds a claim on its trial (a lock file in OUT) from before the study
shows it running until the study has its end; a running trial whose claim is free, its worker killed, is run
again into the same folder, resuming from its last checkpoint. Optuna is the optional ``tune`` extra.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gevb.config import TrainConfig
from gevb.files import atomic_file
from gevb.hooks import Hook
from gevb.jobs import JOB_STOP
from gevb.locks import FolderBusy, FolderLock
from gevb.rules.base import rule_class
from gevb.training import Trainer

MISSING = "gevb tune needs Optuna, the tune extra: pip install -e '.[tune]' (or pip install optuna)"
PRUNERS = ("median", "hyperband", "none")
BEST_FILE = "best.yaml"
STUDY_LOCK = ".gevb-study.lock"


def optuna_module() -> Any:
    """Optuna, quiet but for warnings (it logs every trial otherwise); a ValueError saying what to install."""
    try:
        import optuna
    except ImportError:
        raise ValueError(MISSING) from None
    optuna.logging.set_verbosity(logging.WARNING)
    return optuna


@dataclass(frozen=True)
class Parameter:
    """A setting searched log-uniformly in [low, high]: ``lr`` or one of the rule's float options."""

    name: str
    low: float
    high: float


def search_space(rule: str, names: Sequence[str] | None, ranges: Mapping[str, tuple[float, float]]) -> list[Parameter]:
    """The parameters of ``rule`` to search: ``names`` (default: lr and every option declaring a ``search``
    range), each over its declared range unless ``ranges`` gives another."""
    kind = rule_class(rule)
    declared = {"lr": kind.lr_search} | {option.name: option.search for option in kind.options if option.kind is float}
    tunable = ", ".join(declared)
    chosen = list(names) if names else [name for name, span in declared.items() if span is not None]
    for name in [*chosen, *ranges]:
        if name not in declared:
            raise ValueError(f"rule {rule!r} has no tunable setting {name!r}; it has {tunable}")
    parameters = []
    for name in chosen:
        low, high = ranges.get(name) or declared[name] or (None, None)
        if low is None:
            raise ValueError(f"{name} of rule {rule!r} declares no range to search; give one with --range {name}=LO:HI")
        parameters.append(Parameter(name, low, high))
    return parameters


def parse_range(text: str) -> tuple[str, tuple[float, float]]:
    """``NAME=LOW:HIGH`` -> (name, (low, high)), 0 < low < high."""
    try:
        name, span = text.split("=")
        low, high = (float(part) for part in span.split(":"))
    except ValueError:
        raise ValueError(f"--range must look like NAME=LOW:HIGH, e.g. lr=1e-4:1e-2; got {text!r}") from None
    if not 0 < low < high or not math.isfinite(high):
        raise ValueError(f"--range {text}: need 0 < LOW < HIGH (the range is searched log-uniformly)")
    return name, (low, high)


@dataclass(frozen=True)
class Study:
    """Where a study lives and how its workers sample and prune: everything a worker process needs."""

    name: str
    storage: str  # a database URL, or a journal file's path
    out: str  # the folder of the trials' run folders
    base: TrainConfig  # every trial's config but the searched settings
    parameters: tuple[Parameter, ...]
    trials: int  # finished (complete or pruned) trials the study stops at
    pruner: str = "median"
    seed: int = 0

    def storage_object(self) -> Any:
        optuna = optuna_module()
        if "://" in self.storage:
            return self.storage
        backend = optuna.storages.journal.JournalFileBackend(self.storage)
        return optuna.storages.JournalStorage(backend)

    def pruner_object(self) -> Any:
        pruners = optuna_module().pruners
        if self.pruner == "median":
            return pruners.MedianPruner(n_startup_trials=4)
        if self.pruner == "hyperband":
            return pruners.HyperbandPruner(min_resource=self.base.eval_every, max_resource=self.base.epochs)
        return pruners.NopPruner()

    def load(self, worker: int = 0) -> Any:
        """The study (created if new), sampling from a seed of its own per worker (TPE)."""
        optuna = optuna_module()
        return optuna.create_study(
            storage=self.storage_object(),
            study_name=self.name,
            direction="minimize",
            load_if_exists=True,
            sampler=optuna.samplers.TPESampler(seed=self.seed + worker),
            pruner=self.pruner_object(),
        )


class Pruning(Hook):
    """Reports each evaluation's validation error to the trial (step = epoch) and ends the run when the pruner
    says so; the run folder then holds a finished run, stopped early."""

    def __init__(self, trial: Any) -> None:
        self.trial, self.pruned = trial, False

    def after_epoch(self, trainer: Any, loss: float, record: dict | None) -> None:
        if record is not None and trainer.epoch > 0:
            self.trial.report(record["val_error"], trainer.epoch)
            self.pruned = self.trial.should_prune()

    def stops(self, trainer: Any) -> bool:
        return self.pruned


def run_trial(study: Study, trial: Any, name: str) -> float:
    """One trial: its settings drawn, its run trained (or resumed) in ``OUT/name``; the validation error."""
    values = {p.name: trial.suggest_float(p.name, p.low, p.high, log=True) for p in study.parameters}
    lr = values.pop("lr", study.base.lr)
    config = study.base.replace(lr=lr, rule_options={**study.base.rule_options, **values})
    pruning = Pruning(trial)
    try:  # JOB_STOP: a worker process stops at the next step when its command is stopped (gevb.jobs)
        result = Trainer(config, Path(study.out) / name, resume=True, hooks=[pruning, JOB_STOP]).fit()
    except KeyboardInterrupt:
        trial.set_user_attr("interrupted", True)  # to be run again, resuming its run (``retry_abandoned``)
        raise
    trial.set_user_attr("test_error", result["test_error"])
    if pruning.pruned:
        raise optuna_module().TrialPruned()
    return result["val_error"]


def finished_trials(study: Any) -> int:
    states = optuna_module().trial.TrialState
    return len(study.get_trials(deepcopy=False, states=(states.COMPLETE, states.PRUNED)))


def study_lock(study: Study) -> FolderLock:
    """``OUT/.gevb-study.lock``: held while a worker takes a trial and while abandoned ones are queued again."""
    out = Path(study.out)
    out.mkdir(parents=True, exist_ok=True)
    return FolderLock(out, STUDY_LOCK)


def claim(study: Study, run: str) -> FolderLock:
    """``OUT/.RUN.claim``: held by the worker of the trial training in ``OUT/RUN``, from before the study shows
    the trial running to after the worker has told the study its end (a run folder's own lock spans less)."""
    return FolderLock(Path(study.out), f".{run}.claim")


def take_trial(study: Study, loaded: Any) -> tuple[Any, str, FolderLock]:
    """The next trial (a queued-again one first), its run folder's name and its claim, held: taken under the
    study's lock, so that no ``retry_abandoned`` ever sees the trial running and unclaimed."""
    lock = study_lock(study)
    lock.acquire(wait=True)
    try:
        trial = loaded.ask()
        name = trial.user_attrs.get("run") or f"trial-{trial.number:04d}"
        held = claim(study, name)
        held.acquire()
        trial.set_user_attr("run", name)
    finally:
        lock.release()
    return trial, name, held


def work(study: Study, worker: int = 0) -> dict[str, Any]:
    """A worker: trials until the study has ``study.trials`` finished ones (complete or pruned), each told to the
    study as Optuna's ``optimize`` would, its claim released only then."""
    optuna = optuna_module()
    states = optuna.trial.TrialState
    loaded = study.load(worker)
    for _ in range(study.trials - finished_trials(loaded)):
        if finished_trials(loaded) >= study.trials:
            break
        trial, name, held = take_trial(study, loaded)
        try:
            value = run_trial(study, trial, name)
        except optuna.TrialPruned:
            loaded.tell(trial, state=states.PRUNED)
        except BaseException:
            loaded.tell(trial, state=states.FAIL)
            raise
        else:
            loaded.tell(trial, value)
        finally:
            held.release(remove=True)
    return {}


def retry_abandoned(study: Study) -> int:
    """Trials whose run did not end: stopped by Ctrl-C or SIGTERM, or left running by a worker that is gone (its
    claim no longer held). Each is queued again, once, for the same folder, where its run resumes. Returns how
    many."""
    optuna = optuna_module()
    states = optuna.trial.TrialState
    lock = study_lock(study)
    lock.acquire(wait=True)
    try:
        loaded = study.load()
        latest = {}  # run folder -> the last trial that trained in it
        for trial in loaded.get_trials(deepcopy=False):
            if "run" in trial.user_attrs:
                latest[trial.user_attrs["run"]] = trial
        again = 0
        for name, trial in latest.items():
            stopped = trial.state == states.FAIL and trial.user_attrs.get("interrupted")
            if trial.state == states.RUNNING:
                try:
                    claim(study, name).check_free()
                except FolderBusy:
                    continue
                loaded._storage.set_trial_state_values(trial._trial_id, state=states.FAIL)
            elif not stopped:
                continue
            loaded.enqueue_trial(trial.params, user_attrs={"run": name})
            again += 1
        return again
    finally:
        lock.release()


def best_setting(study: Study) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the best trial's settings as YAML overrides: ``lr`` and ``rule_options``, what it measured)."""
    loaded = study.load()
    try:
        best = loaded.best_trial
    except ValueError:
        raise ValueError(
            f"no trial of study {study.name!r} has finished yet; run gevb tune without --best-only"
        ) from None
    params = dict(best.params)
    setting: dict[str, Any] = {"lr": params.pop("lr", study.base.lr)}
    if params:
        setting["rule_options"] = params
    measured = {
        "val_error": best.value,
        "test_error": best.user_attrs.get("test_error"),
        "run": best.user_attrs.get("run"),
        "finished": finished_trials(loaded),
    }
    return setting, measured


def write_best(study: Study) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """``OUT/best.yaml``: the best setting, with a comment saying where it comes from; ``gevb reproduce
    --config`` takes it."""
    setting, measured = best_setting(study)
    base = study.base
    header = (
        f"# gevb tune: best of {measured['finished']} trials of study {study.name!r} ({base.dataset}, {base.model}, "
        f"{base.rule}, {base.sign}): validation error {measured['val_error']:.2f}% in {measured['run']}\n"
    )
    path = Path(study.out) / BEST_FILE
    with atomic_file(path) as file:
        file.write((header + yaml.safe_dump(setting, sort_keys=False)).encode())
    return path, setting, measured
