"""A grid's job processes (``gevb reproduce --jobs``): how they start, stop on a signal, and end with their grid.

A job comes from a fork server (``job_context``) and trains the tasks a ``ProcessPoolExecutor`` hands it.
SIGINT and SIGTERM stop the whole grid alike, sent to its process group (a terminal's Ctrl-C) or to the
grid process alone: jobs leave SIGINT to the grid process (``start_job``), which sets the event every job
watches (``JobStop``); no task starts after it, a run in training stops at its next step with its last
checkpoint, and ``run_jobs`` raises ``Interrupted`` only once every job process has ended. A grid process
killed outright (SIGKILL) is noticed by each job's watchdog, which ends the job.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from gevb.hooks import Hook
from gevb.memory import keep_freed_memory, keeps_freed_memory


class Interrupted(KeyboardInterrupt):
    """A grid stopped by SIGINT or SIGTERM (``signum``); the command exits with status 128 + ``signum``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class StopSignals:
    """While a grid trains (a ``with`` block in the main thread; elsewhere nothing changes): SIGINT and SIGTERM,
    unless the process ignores them, are listed in ``received``; with ``raising`` each also raises
    ``Interrupted`` where the main thread is, as Ctrl-C raises KeyboardInterrupt. The handlers before come back
    at the end of the block."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, raising: bool) -> None:
        self.raising, self.received = raising, []
        self.before: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    self.before[signum] = signal.signal(signum, self.handle)
        return self

    def __exit__(self, *error: object) -> None:
        for signum, handler in self.before.items():
            signal.signal(signum, handler)

    def handle(self, signum: int, frame: object) -> None:
        self.received.append(signum)
        if self.raising:
            raise Interrupted(signum)

    def check(self) -> None:
        """Raise ``Interrupted`` if a signal came."""
        if self.received:
            raise Interrupted(self.received[0])


class JobStop(Hook):
    """In a job process: whether to stop (the grid process set ``grid``, its shared event, or the job itself
    was sent SIGTERM), and the hook that then ends the run at its next step, keeping its last checkpoint."""

    def __init__(self) -> None:
        self.grid: Any = None  # the grid's multiprocessing Event, from ``start_job``
        self.terminated = threading.Event()
        self.busy = threading.Lock()  # held while a task runs

    def check(self) -> None:
        """Raise ``Interrupted`` once asked to stop."""
        if self.terminated.is_set() or (self.grid is not None and self.grid.is_set()):
            raise Interrupted(signal.SIGTERM)

    @contextlib.contextmanager
    def task(self) -> Iterator[None]:
        """Around a task: ``Interrupted`` instead once asked to stop, and ``busy`` held while it runs."""
        with self.busy:
            self.check()
            yield

    def after_step(self, trainer: Any) -> None:
        self.check()


JOB_STOP = JobStop()  # this process's, when it is a job process


# Imported by torch's optimizers when one is built and when it steps (torch.optim.Optimizer.add_param_group and
# step): 1.5-2 s of CPU time, paid once in the fork server instead of once in every job process
FIRST_STEP_IMPORTS = ("torch._dynamo",)


def job_context(preload: str) -> multiprocessing.context.BaseContext:
    """Where job processes come from: a fork server that has imported the module ``preload`` (gevb, torch) and
    ``FIRST_STEP_IMPORTS`` once but run no torch kernel, so jobs start in milliseconds without inheriting a
    thread pool; ``spawn`` elsewhere."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([preload, *FIRST_STEP_IMPORTS])
    return context


def process_gone(pid: int) -> bool:
    """Whether process ``pid`` has ended, a zombie (ended, its exit status not yet read by its parent) too;
    without /proc (not Linux) a zombie counts as running."""
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
        stat = Path(f"/proc/{pid}/stat").read_text()
    except ProcessLookupError:
        return True
    except FileNotFoundError:  # ended since, or no /proc (not Linux)
        return Path("/proc/self/stat").exists()
    return stat[stat.rindex(")") + 2] == "Z"


def start_job(parent: int, keep_memory: bool, stop: Any, pids: Any) -> None:
    """In a job process: its pid put in ``pids`` (a queue the grid process reads, ``wait_for_jobs``); the grid
    process's allocator policy (``keep_memory``: ``gevb.memory``; a fork server's processes do not inherit it);
    Ctrl-C left to the grid process, which stops its jobs through ``stop`` (its Event: ``JobStop``), as does a
    SIGTERM to the job; and a watchdog: an end when the grid's process has gone (killed), so that no orphan
    keeps writing a run folder a restarted grid is about to resume, or, after the task in hand, when the fork
    server has."""
    pids.put(os.getpid())
    if keep_memory:
        keep_freed_memory()
    JOB_STOP.grid = stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal sends it to the whole group; the grid decides
    signal.signal(signal.SIGTERM, lambda signum, frame: JOB_STOP.terminated.set())

    server = os.getppid()  # the fork server (under ``spawn``, the grid process)

    def watch() -> None:
        while not process_gone(parent):
            # A fork server that has gone (a SIGTERM to the group ends it) takes the pool's way to end this
            # job with it: stop, and end once the task in hand has stopped.
            if os.getppid() != server:
                JOB_STOP.terminated.set()
                with JOB_STOP.busy:
                    os._exit(1)
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def run_jobs(
    work: Callable[..., dict[str, Any]],
    jobs: int,
    tasks: dict[int, tuple[Any, ...]],
    report: Callable[[int, dict[str, Any]], None],
    signals: StopSignals,
) -> None:
    """``work(*tasks[i])`` for every task ``i`` in ``jobs`` job processes, ``report(i, result)`` as each ends.
    A signal (``signals``) or an error stops them all: no task starts, the runs in training stop at their next
    step (``work`` passes ``JOB_STOP`` to its ``Trainer``), and every job process has ended before this raises."""
    context = job_context(work.__module__)
    stop, pids = context.Event(), context.SimpleQueue()
    pool = ProcessPoolExecutor(
        jobs, mp_context=context, initializer=start_job, initargs=(os.getpid(), keeps_freed_memory(), stop, pids)
    )
    try:
        futures = {pool.submit(work, *task): i for i, task in tasks.items()}
        pending = set(futures)
        while pending and not signals.received:  # a signal only lists itself; this loop looks 4 times a second
            done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=futures.__getitem__):
                if not signals.received:
                    report(futures[future], job_result(future))
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        wait_for_jobs(pids)
    signals.check()


def wait_for_jobs(pids: Any, seconds: float = 60.0) -> None:
    """Wait, ``seconds`` at most, until every job process whose pid is in the queue ``pids`` has ended: the pool
    joins its processes, but not once their fork server has gone (a SIGTERM to the process group ends it at
    once), and a job stopping at its next step may then still hold its run folder."""
    deadline = time.monotonic() + seconds
    while not pids.empty():
        pid = pids.get()
        while not process_gone(pid) and time.monotonic() < deadline:
            time.sleep(0.05)


def job_result(future: Future) -> dict[str, Any]:
    """A job's result, or its error (a job process that ended abruptly: OSError saying what to do)."""
    try:
        return future.result()
    except BrokenProcessPool:
        raise OSError(
            "a job process ended abruptly (killed, or out of memory); finished runs are kept: run the "
            "same command again to resume, with fewer --jobs if memory ran out"
        ) from None
