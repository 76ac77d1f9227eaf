"""The allocator setting ``import gevb`` applies (gevb/memory.py): freed large blocks are reused."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import resource, json
import gevb, torch
faults = []
for _ in range(8):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = torch.ones(64 * 2**20 // 4)  # 64 MiB: above glibc's largest mmap threshold
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    del block
print(json.dumps({"applied": gevb.keep_freed_memory(), "faults": faults}))
"""


def probe(setting: str) -> dict:
    env = {**os.environ, "GEVB_KEEP_FREED_MEMORY": setting, "THP_MEM_ALLOC_ENABLE": "0"}
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the setting is for glibc on Linux")
def test_freed_large_blocks_are_reused_without_page_faults():
    kept, returned = probe("1"), probe("0")
    assert kept["applied"] and not returned["applied"]
    pages = 64 * 2**20 // os.sysconf("SC_PAGE_SIZE")
    assert sum(returned["faults"][1:]) > 6 * pages  # each fresh mmap faults in every page again
    assert sum(kept["faults"][1:]) < 3 * pages  # the heap keeps the pages (now and then it re-faults once)
