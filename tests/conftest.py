"""Shared helpers: small widths per architecture, the digits, and skipping (never in CI) for absent data."""

from __future__ import annotations

import functools
import importlib.util
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from gevb import ARCHITECTURES, RULES, keep_freed_memory

# One torch thread in every test, in a pytest-xdist worker or not (and in the processes tests start): a
# trajectory's last digits depend on the thread count (GEMMs and convolutions split their sums by it), so a
# test's result must not depend on where it ran or on what ran before it; workers share the cores, too.
TEST_THREADS = 1
os.environ["OMP_NUM_THREADS"] = str(TEST_THREADS)
# The engine runs here under the allocator policy the `gevb` command sets (docs/design.md, "Memory"): freed blocks
# stay in the heap for reuse. Without it, the paper-sized networks that tests train in this process (a digits
# grid, tests/test_report.py) take every large temporary from fresh pages: 1.5 million page faults in that file.
keep_freed_memory()


@pytest.fixture(autouse=True)
def same_start_for_every_test():
    """Each test starts at ``TEST_THREADS`` torch threads and from seeded global random states (whatever an
    earlier test in the worker drew or seeded, e.g. a Trainer's seed); one that leaves another thread count
    behind fails (a library call that changes the process-wide count must give it back)."""
    torch.set_num_threads(TEST_THREADS)
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield
    left = torch.get_num_threads()
    torch.set_num_threads(TEST_THREADS)
    assert left == TEST_THREADS, f"the test left torch at {left} threads, not {TEST_THREADS}"


NO_CUDA = "no CUDA device here: this check runs where one is (benchmarks/gpu_check.sh runs it on a GPU)"
# Tests of the engine's numerics take a device: the CPU always, CUDA when present (a skip, never a failure,
# without one: GEVB_REQUIRE_DATA is about data, not devices).
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA))]
cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)


def small_widths(name: str, channels: int = 1) -> tuple[int, ...]:
    """The registered small variant of architecture ``name`` for inputs of ``channels`` channels."""
    return ARCHITECTURES[name].test_widths(channels)


def valid_pairs() -> list[tuple[str, str]]:
    """Every (architecture, rule) pair the registries allow."""
    return [
        (name, rule)
        for name, arch in ARCHITECTURES.items()
        for rule in RULES
        if arch.vectorized in RULES[rule].vectorized
    ]


FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def one_thread_env() -> dict[str, str]:
    """The environment for a child process: this one's, with one torch thread (OMP_NUM_THREADS), as the suite's
    own tests run, so that a child does not slow to a third sharing a core with the other pytest worker."""
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def require_data(path: Path, install: str) -> None:
    """Skip when a real data set is absent; fail instead under GEVB_REQUIRE_DATA=1 (CI sets it)."""
    if not path.exists():
        reason = f"{path} is absent; install it with: {install}"
        if os.environ.get("GEVB_REQUIRE_DATA"):
            pytest.fail(f"GEVB_REQUIRE_DATA is set but {reason}")
        pytest.skip(reason)


@functools.cache
def digits_tensors() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 8x8 digits as (N, 1, 8, 8) float32 in [-1, 1] and (N,) int64 labels, read by scikit-learn
    (independently of gevb's reader)."""
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    x = torch.tensor(images, dtype=torch.float32).view(-1, 1, 8, 8) / 8.0 - 1.0
    return x, torch.tensor(labels, dtype=torch.int64)


@pytest.fixture(scope="session")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    return digits_tensors()


SPLIT = ("test_learning.py", "test_corruption.py", "test_step.py")  # the suite's largest files
# files whose tests share no fixture or cache: each test a group of its own, so that the long ones spread
ALONE = ("test_doc_numbers.py", "test_distributed.py", "test_grid_signals.py", "test_run_lock.py",
         "test_system_errors.py", "test_readme.py", "test_faults.py", "test_cli.py")  # fmt: skip


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's worker reads the groups off the items
def pytest_collection_modifyitems(items) -> None:
    """pytest-xdist (``--dist loadgroup``): each test file on one worker, as its tests may share module fixtures,
    but the largest files one group per architecture and sign, so that they spread over the workers. A test that
    declares the learning triples it uses (``learning.uses``: the learning tests, a rule's own tests of what it
    learns) goes to the group ``learning:ARCH:SIGN`` of the first one, whatever its file, so that each cached
    training runs on one worker only; those groups, the suite's largest, are scheduled first."""
    for item in items:
        path = item.nodeid.split("::")[0]
        group = Path(path).stem  # short: pytest-xdist appends it to every test id
        params = getattr(item, "callspec", None)
        declared = getattr(getattr(item, "obj", None), "triples", None)  # learning.uses
        if declared is not None:
            arch, _, sign = declared(**(params.params if params is not None else {}))[0]
            group = f"learning:{arch}:{sign}"
        elif path.endswith(ALONE):
            group += f":{item.name}"
        elif path.endswith(SPLIT) and params is not None:
            given = params.params
            arch, _, sign = given.get("triple") or (given.get("arch"), None, given.get("sign"))
            group += "".join(f":{part}" for part in (arch, sign) if part is not None)
        item.add_marker(pytest.mark.xdist_group(group))
    items.sort(key=lambda item: not item.get_closest_marker("xdist_group").args[0].startswith("learning:"))


def load_benchmark(script: str, monkeypatch) -> object:
    """The module of ``benchmarks/SCRIPT`` (not a package: loaded by path, with benchmarks/ on sys.path for its
    imports of its neighbours, e.g. ``step_time``)."""
    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    monkeypatch.syspath_prepend(str(folder))
    spec = importlib.util.spec_from_file_location(f"benchmark_{Path(script).stem}", folder / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
