"""Process-wide allocator setting that makes repeated CPU training steps cheap (Linux, glibc).

A training step frees and reallocates the same large activations (100-300 MB) every step. glibc
serves blocks over 32 MB with ``mmap`` and returns them on free, so each step pays page faults and
the kernel's zeroing of every fresh page: about a third of a conv-vec step was system time
(BENCHMARKS.md). This is the CPU counterpart of CUDA's caching allocator.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # mallopt parameters, <malloc.h>


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse: no ``mmap`` per block, no trimming of the heap.

    Returns True if applied (Linux with glibc), False elsewhere or with ``GEVB_KEEP_FREED_MEMORY=0``.
    The process's resident memory then stays at its peak instead of shrinking between steps.
    ``import gevb`` calls it; it pays most before torch is imported (8% more on a conv-vec step
    than when called after).
    """
    if os.environ.get("GEVB_KEEP_FREED_MEMORY", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False
