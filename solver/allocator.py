"""The C allocator of a solving process, set to keep freed memory for reuse (glibc only).

Newton's method on a thousand or more particles allocates and frees tensors of tens of MB in every
iteration: the (N D) x (N D) Hessian, its single-precision factor, N x N kernel planes. By default
glibc's malloc serves a block above its mmap threshold (adaptive, at most 32 MiB) with fresh pages
from the kernel, which are faulted in and zeroed on first touch and returned on free, and each thread
other than the main one allocates from its own arena, whose heaps (at most 64 MiB) are unmapped once a
free empties them. So every iteration paid page faults on every large tensor again.

``keep_freed_memory`` sets: one arena for all threads (``M_ARENA_MAX``), no mmap'ed blocks
(``M_MMAP_MAX`` 0: every block comes from a heap and is reused once freed) and ``TRIM_THRESHOLD``
bytes of free memory kept at a heap's top before any is returned (non-main heaps are then not
deleted either). Over the first few iterations the heap still grows (aligned blocks do not refit
their freed predecessors at once), then the faults stop. Same iterates bitwise; measured on 2 cores,
uniform sources to samples (``bench_scale.samples``), the command line: N = 1,000 7.5 -> 5.4 s, N = 1,250
11.0 -> 7.0 s (peak resident memory 613 -> 614, 675 -> 740 MB); in a worker thread as the app solves:
5.5 -> 4.8 s, 10.8 -> 6.5 s; N = 3,000 (Newton-CG), N = 10^4 and 10^5: unchanged (the 20 iterations
at N = 10^5: 629 -> 670 MB). The cost: memory a finished solve freed stays with the process.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import platform

#: glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8
#: Free memory at the top of the heap kept for reuse before any is returned to the system.
TRIM_THRESHOLD = 2**30


def keep_freed_memory() -> bool:
    """Set glibc's malloc to reuse freed memory (see the module docstring); entry points (the command
    line, the app, study workers, the benchmarks) call this once, before solving. Returns whether the
    settings took (False on other C libraries, which are left as they are)."""
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return all(mallopt(option, value) == 1 for option, value in
               ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, TRIM_THRESHOLD)))
