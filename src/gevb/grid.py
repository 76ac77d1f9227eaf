"""The paper's experiment grid (docs/method.md §7): 24 configurations per data set, several seeds, one run folder each.

The configurations are {FC, Conv, LC} x {vectorized, conventional} x {nonneg, mixed} x {broadcast
rule, BP}, where the broadcast rule is GEVB in a vectorized network and DFA in a conventional one.
``--rules`` adds any other registered rule (feedback alignment, ...) beside them, in every network it is
defined for. ``grid_runs`` lists them in a fixed order (seed, then model, sign, rule), ``shard`` takes a
deterministic slice of that list, and ``run_grid`` trains each run in ``OUT/<run name>``, skipping
finished runs and resuming unfinished ones, so the command can be killed and restarted at any time. SIGINT
and SIGTERM stop the whole grid, its job processes included: no run starts after the signal, and the runs in
training stop at their next step with their last checkpoint (``gevb.jobs``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gevb.build import resolve_device
from gevb.config import TrainConfig
from gevb.data import Dataset, load_dataset
from gevb.faults import NonFiniteError
from gevb.init import SIGNS
from gevb.jobs import JOB_STOP, StopSignals, run_jobs
from gevb.locks import FolderLock
from gevb.models import ARCHITECTURES
from gevb.paper import GRID_MODELS, GRID_RULES, broadcast_rule
from gevb.rules import RULES
from gevb.runs import RunFolder, check_out
from gevb.slurm import cpus_allocated
from gevb.text import counted
from gevb.training import Trainer


@dataclass(frozen=True)
class GridRun:
    """One cell-and-seed of the grid; ``name`` is its folder under the grid's output folder."""

    config: TrainConfig

    @property
    def name(self) -> str:
        c = self.config
        return f"{c.model}-{c.rule}-{c.sign}-seed{c.seed}"


def _check_choices(kind: str, given: Sequence[str], allowed: Sequence[str]) -> None:
    unknown = [item for item in given if item not in allowed]
    if unknown:
        raise ValueError(f"unknown {kind} {unknown[0]!r} in --{kind}s; choose from {', '.join(allowed)}")


def grid_runs(
    base: TrainConfig,
    seeds: int,
    models: Sequence[str] = GRID_MODELS,
    rules: Sequence[str] = GRID_RULES,
    signs: Sequence[str] = SIGNS,
) -> list[GridRun]:
    """The grid's runs for ``base.dataset``: seeds 0..seeds-1, filtered by ``models``, ``rules``, ``signs``.

    Each model gets the rules of ``rules`` it is defined for, in the order: its broadcast rule (GEVB or
    DFA), BP, then the others in registry order. Every other setting comes from ``base``.
    """
    _check_choices("model", models, GRID_MODELS)
    _check_choices("rule", rules, tuple(RULES))
    _check_choices("sign", signs, SIGNS)
    if seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {seeds}")
    cells = [
        (model, sign, rule)
        for model in GRID_MODELS
        if model in models
        for sign in SIGNS
        if sign in signs
        for rule in model_rules(model)
        if rule in rules
    ]
    if not cells:
        raise ValueError("the filters leave no run; check --models, --rules and --signs")
    _check_list_fits(seeds, len(cells))
    return [
        GridRun(base.for_rule(rule).replace(model=model, sign=sign, seed=seed).validate())
        for seed in range(seeds)
        for model, sign, rule in cells
    ]


RUN_BYTES = 400  # what one GridRun (its TrainConfig) holds in memory, about


def _check_list_fits(seeds: int, cells: int) -> None:
    """Refuse a grid whose list of runs would fill this machine's memory: --seeds may be as large as a seed
    (2**64), and Python would grow the list until the system killed the process, with no message."""
    if not hasattr(os, "sysconf"):
        return
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if seeds * cells * RUN_BYTES > memory:
        raise ValueError(
            f"--seeds {seeds} makes {seeds * cells:,} runs, more than this machine's {memory / 2**30:.0f} GiB of "
            "memory can list; lower --seeds"
        )


def model_rules(model: str) -> list[str]:
    """Every rule defined for ``model``, in grid order: its broadcast rule, BP, the others as registered."""
    first = [broadcast_rule(model), "bp"]
    vectorized = ARCHITECTURES[model].vectorized
    return first + [name for name, rule in RULES.items() if name not in first and vectorized in rule.vectorized]


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N) with 1 <= I <= N."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like I/N, e.g. 2/8; got {text!r}") from None
    if not 1 <= index <= count:
        raise ValueError(f"--shard {text}: need 1 <= I <= N")
    return index, count


def shard(runs: Sequence[GridRun], index: int, count: int) -> list[GridRun]:
    """Shard ``index`` of ``count`` (1-based): every ``count``-th run from the ``index``-th. The ``count``
    shards cover ``runs`` exactly once, and interleaving spreads seeds and models evenly."""
    return list(runs[index - 1 :: count])


def run_status(out: Path, run: GridRun) -> str:
    """``done``, ``partial`` (has a checkpoint to resume) or ``new``; ValueError if the folder holds another run."""
    folder = RunFolder(out / run.name)
    if folder.is_finished(run.config):
        return "done"
    return "partial" if folder.checkpoint_path.exists() else "new"


def check_free(out: Path, runs: Sequence[GridRun]) -> None:
    """Raise ``FolderBusy`` (a ValueError) naming the process that holds a run's folder (a ``gevb train`` or
    another grid training in it), before this grid trains anything."""
    for run in runs:
        FolderLock(out / run.name).check_free()


def cpu_cores() -> int:
    """The CPU cores this process may run on (its affinity mask; ``os.cpu_count()`` where that is unknown), and
    within a Slurm job no more than the job holds on this node (``gevb.slurm.cpus_allocated``)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return min(cores, cpus_allocated() or cores)


def grid_config(config: TrainConfig, runs: int) -> TrainConfig:
    """A grid run's config with its CPU threads fixed by the size of the grid alone, never by how many runs
    train at once: the config's own ``threads``, else ``cores // runs`` (at least 1). torch's CPU GEMM and
    convolution kernels split their sums by thread count, so a run's numbers depend on it (docs/design.md,
    "Many runs at once"); fixed this way, a grid gives the same numbers with any ``--jobs`` and across
    restarts. Other devices: unchanged."""
    if config.threads is not None or resolve_device(config.device).type != "cpu":
        return config
    return config.replace(threads=max(1, cpu_cores() // runs))


def auto_jobs(config: TrainConfig) -> int:
    """How many runs train at once unless told: on the CPU as many as the cores hold at ``config.threads``
    each; on another device one (how many runs fill a GPU is not measured yet)."""
    if resolve_device(config.device).type != "cpu":
        return 1
    return max(1, cpu_cores() // (config.threads or cpu_cores()))


@functools.lru_cache(maxsize=1)
def job_data(name: str, data_dir: str | None, download: bool, device: str) -> Dataset:
    """In a job process: the data set, read once for all the runs this process trains."""
    return load_dataset(name, data_dir, download, torch.device(device))


def train_job(config: TrainConfig, path: Path) -> dict[str, Any]:
    """One run in a job process (``train_run`` on the process's copy of the data set) that stops at its next
    step when the grid stops (``gevb.jobs.JobStop``); once it has, no run starts."""
    with JOB_STOP.task():
        device = str(resolve_device(config.device))
        data = job_data(config.dataset, config.data_dir, bool(config.download), device)
        return train_run(config, path, data=data, hooks=[JOB_STOP])


def train_run(config: TrainConfig, path: Path, progress: bool = False, data=None, hooks=()) -> dict[str, Any]:
    """Train (or resume) one run in ``path``; a non-finite stop is a result ``{"error", "config"}``."""
    try:
        return Trainer(config, path, resume=True, progress=progress, data=data, hooks=hooks).fit()
    except NonFiniteError as error:  # one diverging run does not stop the grid
        return {"error": str(error), "config": config.to_dict()}


def run_grid(
    runs: Sequence[GridRun],
    out: str | Path,
    log: Callable[[str], None] = lambda line: None,
    progress: bool = False,
    jobs: int | None = 1,
) -> list[dict[str, Any]]:
    """Train every unfinished run of ``runs`` in ``out/<name>`` (resuming partial ones); return all results.

    A run that stops at a non-finite loss or weight gets ``{"error": message, "config": ...}`` and
    the grid goes on. Every folder is checked before any training starts, so a folder holding a
    different run, or one in use by another process (``FolderBusy``), stops the command before it spends
    time. SIGINT or SIGTERM stops every run, each at its last checkpoint (the same call resumes it), and
    raises ``gevb.jobs.Interrupted`` once no job process is left. ``jobs``: how many runs train at once, each
    in its own process (None: ``auto_jobs``); with one, this process trains them in turn, reading the
    data set once. Each run's CPU threads come from ``grid_config``, whatever ``jobs`` is (this process's
    torch thread count is restored afterwards). Results come back in ``runs``' order either way.
    """
    if jobs is not None and jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {jobs}")
    out = Path(out)
    check_out(out)
    check_free(out, runs)
    configs = [grid_config(run.config, len(runs)) for run in runs]
    statuses = [run_status(out, run) for run in runs]
    todo = [i for i, status in enumerate(statuses) if status != "done"]
    jobs = min(jobs or (auto_jobs(configs[0]) if configs else 1), max(1, len(todo)))
    threads = sorted({config.threads for config in configs if config.threads is not None})
    at_once = f"; {jobs} at once" if jobs > 1 else ""
    each = f", {'/'.join(map(str, threads))} CPU thread{'s' if threads[-1] > 1 else ''} each" if threads else ""
    log(f"{counted(len(runs), 'run')}: {len(runs) - len(todo)} finished, {len(todo)} to train, in {out}{at_once}{each}")
    if threads and jobs * threads[-1] > cpu_cores():
        log(f"note: {jobs} jobs x {threads[-1]} threads exceed the {cpu_cores()} CPU cores; they slow each other")
    elif threads and len(todo) > jobs and jobs * threads[-1] < cpu_cores():
        idle = f"{counted(jobs, 'job')} x {counted(threads[-1], 'thread')} leave CPU cores idle"
        log(f"note: {idle} (--jobs auto fills all {cpu_cores()})")
    results: dict[int, dict[str, Any]] = {
        i: RunFolder(out / run.name).read_result() for i, run in enumerate(runs) if statuses[i] == "done"
    }

    def report(i: int, result: dict[str, Any]) -> None:
        results[i] = result
        trained = len(results) - (len(runs) - len(todo))
        counter = f"[{trained}/{len(todo)}] {runs[i].name}"
        if "error" in result:
            log(f"{counter}: {result['error']}")
        else:
            log(
                f"{counter}: test {result['test_error']:.2f}% (train {result['train_error']:.2f}%), "
                f"{counted(result['epochs'], 'epoch')}, {result['seconds']:.1f} s"
            )

    with StopSignals(raising=jobs == 1) as signals:
        if jobs == 1:  # each run's Trainer gives the caller's torch thread count back when it returns
            data = None
            for i in todo:
                config = configs[i]
                if data is None:
                    device = resolve_device(config.device)
                    data = load_dataset(config.dataset, config.data_dir, config.download, device)
                report(i, train_run(config, out / runs[i].name, progress, data))
        else:
            run_jobs(train_job, jobs, {i: (configs[i], out / runs[i].name) for i in todo}, report, signals)
    return [results[i] for i in range(len(runs))]
