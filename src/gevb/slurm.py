"""Slurm as an executor (docs/cluster.md): a job array whose tasks each run one command, and a job that waits for it.

gevb schedules nothing itself: ``sbatch`` submits, the cluster runs, ``squeue`` says what is queued. A task's
command is the same in every task but for ``$SLURM_ARRAY_TASK_ID``, which picks its share of the work (a grid's
``--shard I/N``, a worker of a tuning study). Scripts and task logs go to one folder (``OUT/slurm``).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gevb.files import atomic_file

TASK_INDEX = "${SLURM_ARRAY_TASK_ID}"  # in a task's command: its index in the array
# ``wait_for`` asks squeue soon after a change, then less and less often while nothing changes (up to once a
# minute), so that short jobs are followed closely and long ones do not load the cluster's controller
POLL_SECONDS = (0.25, 60.0)
# a controller too busy to answer (or restarting) is not a queue without the jobs: ``wait_for`` asks again for
# this long before it gives up waiting (the jobs go on)
UNANSWERED_SECONDS = 600.0
FORGOTTEN = "Invalid job id specified"  # squeue's words once the controller has forgotten every job asked for


class SlurmError(ValueError):
    """sbatch is missing or refused a job: one line naming the cause (exit status 2)."""


class SqueueUnanswered(RuntimeError):
    """squeue could not say what is queued (its own words): the controller did not answer."""


@dataclass(frozen=True)
class SlurmOptions:
    """What users set on every cluster: ``None`` leaves a setting to the cluster's defaults. ``extra``: more
    sbatch arguments, as typed (``--sbatch-args "--account=lab --qos=low"``)."""

    partition: str | None = None
    time: str | None = None
    cpus_per_task: int | None = None
    gpus_per_task: int | None = None
    extra: str = ""

    def directives(self, gpus: bool = True) -> list[str]:
        """The ``#SBATCH`` lines of these settings (``gpus``: also the GPUs, which a report job does not need)."""
        given = {"partition": self.partition, "time": self.time, "cpus-per-task": self.cpus_per_task}
        if gpus:
            given["gpus-per-task"] = self.gpus_per_task
        return [f"#SBATCH --{name}={value}" for name, value in given.items() if value is not None]

    def extra_args(self) -> list[str]:
        """``extra`` as arguments (the command line's ``--sbatch-args`` type has checked that it splits)."""
        return shlex.split(self.extra)


def index_ranges(indices: Sequence[int]) -> str:
    """Array indices as sbatch's ``--array`` takes them: [1, 2, 3, 5] -> ``1-3,5``."""
    parts, ordered = [], sorted(set(indices))
    start = previous = ordered[0]
    for index in [*ordered[1:], None]:
        if index is not None and index == previous + 1:
            previous = index
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if index is not None:
            start = previous = index
    return ",".join(parts)


def batch_script(name: str, command: str, logs: Path, directives: Sequence[str], array: str | None = None) -> str:
    """A batch script that runs ``command`` (a shell line) in the submitting folder, its output in ``logs``
    (``%A_%a.out`` per array task, ``%j.out`` otherwise, appended when a task runs again after a requeue)."""
    log = logs / (f"{name}-%A_%a.out" if array is not None else f"{name}-%j.out")
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={name}",
        *([f"#SBATCH --array={array}"] if array is not None else []),
        f"#SBATCH --output={log}",
        "#SBATCH --open-mode=append",
        f"#SBATCH --chdir={Path.cwd()}",
        "#SBATCH --requeue",
        *directives,
        f"exec {command}",
    ]
    return "\n".join(lines) + "\n"


def sbatch_program() -> str:
    program = shutil.which("sbatch")
    if program is None:
        raise SlurmError(
            "--executor slurm needs Slurm's sbatch, which is not on PATH; run this on the cluster's login node "
            "(or leave out --executor to train here)"
        )
    return program


def submit(script: Path, options: SlurmOptions, after: str | None = None) -> str:
    """Submit ``script`` (with ``options.extra`` and, given ``after``, ``--dependency=afterany:after``); return
    the job id. sbatch's refusal is a ``SlurmError`` quoting it."""
    command = [sbatch_program(), "--parsable", *options.extra_args()]
    if after is not None:
        command.append(f"--dependency=afterany:{after}")
    done = subprocess.run([*command, str(script)], capture_output=True, text=True)
    if done.returncode != 0:
        said = " ".join((done.stderr or done.stdout).split()) or f"exit status {done.returncode}"
        raise SlurmError(f"sbatch refused {script.name}: {said}")
    return done.stdout.strip().split(";")[0]  # "ID" or "ID;cluster"


def write_script(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as file:
        file.write(text.encode())
    return path


def queued(job_ids: Sequence[str]) -> Counter:
    """How many tasks of ``job_ids`` are in each state (PENDING, RUNNING, ...); empty once all have left the
    queue (a job squeue no longer knows counts as gone). ``SqueueUnanswered`` where squeue could not ask."""
    done = subprocess.run(
        ["squeue", "--noheader", "--format=%T", f"--jobs={','.join(job_ids)}"], capture_output=True, text=True
    )
    if done.returncode == 0:
        return Counter(line.strip() for line in done.stdout.splitlines() if line.strip())
    said = " ".join((done.stderr or done.stdout).split()) or f"exit status {done.returncode}"
    if FORGOTTEN in said:
        return Counter()
    raise SqueueUnanswered(said)


def wait_for(job_ids: Sequence[str], progress: Callable[[], str], log: Callable[[str], None]) -> None:
    """Until every job of ``job_ids`` has left the queue: a line ``progress(); N running, M pending`` whenever
    it changes (``POLL_SECONDS``: how often it looks). While squeue does not answer, it asks again; after
    ``UNANSWERED_SECONDS`` without an answer, a ``SlurmError`` (the jobs go on)."""
    last, pause, unanswered_since = None, POLL_SECONDS[0], None
    while True:
        try:
            states = queued(job_ids)
        except SqueueUnanswered as error:
            unanswered_since = unanswered_since or time.monotonic()
            if time.monotonic() - unanswered_since >= UNANSWERED_SECONDS:
                raise SlurmError(
                    f"squeue has not answered for {UNANSWERED_SECONDS:.0f} s ({error}); the jobs go on: follow "
                    f"them with squeue --jobs={','.join(job_ids)} once the controller answers"
                ) from None
            line = f"{progress()}; squeue did not answer ({error}), asking again"
        else:
            unanswered_since = None
            tasks = ", ".join(f"{count} {state.lower()}" for state, count in sorted(states.items()))
            line = f"{progress()}; {tasks or 'no task queued'}"
        if line != last:
            log(line)
            last, pause = line, POLL_SECONDS[0]
        if unanswered_since is None and not states:
            return
        time.sleep(pause)
        pause = min(pause * 1.5, POLL_SECONDS[1])


def cpus_allocated() -> int | None:
    """Inside a Slurm job, the CPUs it holds on this node (``SLURM_CPUS_ON_NODE``); None elsewhere. A cluster
    without CPU binding (``TaskPlugin=task/none``) leaves the process free to use every core, yet it owns
    only these."""
    if "SLURM_JOB_ID" not in os.environ:
        return None
    try:
        return max(1, int(os.environ["SLURM_CPUS_ON_NODE"]))
    except (KeyError, ValueError):
        return None
