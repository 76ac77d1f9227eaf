"""An opt-in CPU allocator policy for long training loops (Linux, glibc). Importing gevb applies nothing.

A training step frees and reallocates the same large activations (100-300 MB) every step. By
default glibc serves blocks over 32 MB with ``mmap`` and returns them on free, so every step pays
page faults and the kernel's zeroing of every fresh page again. ``keep_freed_memory`` makes the
process keep freed memory for reuse instead, the CPU counterpart of CUDA's caching allocator. The
``gevb`` command and the benchmarks call it; its measured effect on time and resident memory is
in docs/design.md ("Memory").

The setting is process-wide, so a library must not make it for its users: call it yourself,
first thing in a training script.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # mallopt parameters, <malloc.h>
# M_TRIM_THRESHOLD -1 turns trimming off (mallopt(3)). The largest positive value, 2**31 - 1, still trimmed a
# heap whose free top passed 2 GiB: conv-vec's first convolution at batch 512 (a 1.1 GB output) then faulted
# its pages in again on every call (552,000 faults and 1.4 s of system time per call, BENCHMARKS.md).
NEVER_TRIM = -1

_applied = False  # whether this process has called keep_freed_memory successfully


def keeps_freed_memory() -> bool:
    """Whether ``keep_freed_memory`` is in effect in this process (processes gevb starts ask, to match it)."""
    return _applied


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse: no ``mmap`` per block, no trimming of the heap
    (``M_MMAP_MAX`` 0, ``M_TRIM_THRESHOLD`` ``NEVER_TRIM``).

    Returns True if applied (Linux with glibc), False elsewhere (e.g. musl has no ``mallopt``).
    Resident memory then stays at the heap's high-water mark instead of shrinking between steps.
    """
    global _applied
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _applied = bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, NEVER_TRIM))
    except (OSError, AttributeError):
        return False
    return _applied
