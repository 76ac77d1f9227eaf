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


def probe(mode: str) -> dict:
    env = {key: value for key, value in os.environ.items() if key != "THP_MEM_ALLOC_ENABLE"}  # as in a clean shell
    done = subprocess.run([sys.executable, "-c", PROBE, mode], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


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
