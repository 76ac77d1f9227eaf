"""Importing gevb changes nothing outside gevb; ``keep_freed_memory`` is the explicit opt-in (gevb/memory.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

MODULES = "gevb gevb.cli gevb.analysis.report gevb.analysis.plots gevb.analysis.clusters gevb.analysis.width"
PROBE = f"""
import json, os, resource, sys
before = {{"environ": dict(os.environ), "umask": os.umask(0o022)}}
os.umask(before["umask"])
for name in "{MODULES}".split():
    __import__(name)
umask = os.umask(0o022)
os.umask(umask)
import torch, gevb
changed = {{
    "environ": sorted(set(os.environ.items()) ^ set(before["environ"].items())),
    "umask": umask != before["umask"],
}}
applied = gevb.keep_freed_memory() if sys.argv[1] == "opt-in" else None
faults = []
for _ in range(10):
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = torch.ones(64 * 2**20 // 4)  # 64 MiB: above glibc's largest mmap threshold
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start)
    del block
print(json.dumps({{"changed": changed, "applied": applied, "faults": faults}}))
"""


def in_a_clean_process(code: str, *argv: str):
    """The JSON ``code`` prints last, run in a fresh interpreter without torch's huge-page switch (as in a clean
    shell: huge pages would change the page-fault counts)."""
    env = {key: value for key, value in os.environ.items() if key != "THP_MEM_ALLOC_ENABLE"}
    done = subprocess.run([sys.executable, "-c", code, *argv], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def probe(mode: str) -> dict:
    return in_a_clean_process(PROBE, mode)


needs_linux = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the allocator policy is for glibc on Linux"
)


@needs_linux
def test_importing_gevb_changes_no_environment_umask_or_allocator():
    result = probe("plain")
    assert result["changed"] == {"environ": [], "umask": False}
    pages = 64 * 2**20 // os.sysconf("SC_PAGE_SIZE")
    assert sum(result["faults"][1:]) > 6 * pages  # glibc's default: each fresh mmap faults in every page again


@needs_linux
def test_the_opt_in_keeps_freed_blocks_for_reuse():
    result = probe("opt-in")
    assert result["applied"] is True
    pages = 64 * 2**20 // os.sysconf("SC_PAGE_SIZE")
    # the heap keeps the pages: it may give them back during the first few rounds (measured: up to 4 of
    # the first 5 re-fault, under load), never once it has settled
    assert sum(result["faults"][-4:]) <= pages


LARGE_CONVOLUTION = """
import json, resource, torch, torch.nn.functional as F, gevb
gevb.keep_freed_memory()
x, w = torch.rand(512, 1, 28, 28), torch.randn(704, 1, 5, 5)
faults = []
for _ in range(4):  # conv-vec's first layer at batch 512: a 1.13 GB output, freed and made again
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    y = F.conv2d(x, w, padding=2)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start)
    del y
print(json.dumps(faults))
"""


@needs_linux
def test_the_opt_in_keeps_outputs_whose_free_heap_passes_2_gib():
    """Trimming off, not only at its largest positive threshold (2**31 - 1 bytes): conv-vec's first
    convolution at batch 512 otherwise faults its 1.13 GB output in again on every call (measured 552,000
    faults and 1.4 s of system time a call, BENCHMARKS.md)."""
    faults = in_a_clean_process(LARGE_CONVOLUTION)
    pages = 512 * 704 * 28 * 28 * 4 // os.sysconf("SC_PAGE_SIZE")
    assert faults[0] > pages // 2  # the first output is fresh memory
    assert max(faults[2:]) < pages // 100, faults


@pytest.mark.parametrize(("setting", "calls"), [(None, 1), ("1", 1), ("0", 0)])
def test_the_gevb_process_opts_in_unless_told_not_to(monkeypatch, capsys, setting, calls):
    import gevb.cli as cli

    applied = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: applied.append(True))
    monkeypatch.setattr(sys, "argv", ["gevb", "train", "--dry-run", "--device", "cpu", "--quiet"])
    if setting is None:
        monkeypatch.delenv("GEVB_KEEP_FREED_MEMORY", raising=False)
    else:
        monkeypatch.setenv("GEVB_KEEP_FREED_MEMORY", setting)
    with pytest.raises(SystemExit) as done:
        cli.run()
    assert done.value.code == 0 and len(applied) == calls
    assert "test error" in capsys.readouterr().out
