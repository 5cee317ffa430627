"""``solver.allocator.keep_freed_memory``: large tensors freed by one Newton iteration are reused by
the next, in a worker thread too, instead of being page-faulted in anew."""
from __future__ import annotations

import platform
import subprocess
import sys

import pytest

#: In a fresh process (the settings are the process's), from a worker thread as the app solves: the
#: minor page faults of allocating, filling and freeing a 48 MB tensor ten times, after ten times before
#: (measured: faults in the first 2-6 of them, none after).
FAULTS = """import resource, sys, threading
import torch
from solver.allocator import keep_freed_memory
took = keep_freed_memory() if sys.argv[1] == "keep" else None
out = []
def iteration():
    torch.ones(6_000_000, dtype=torch.float64).sum()
def work():
    for _ in range(10):  # the heap grows over the first few (memalign's blocks do not refit at once)
        iteration()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        iteration()
    out.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
thread = threading.Thread(target=work)
thread.start()
thread.join()
print(took, out[0])
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the settings are glibc's mallopt")
def test_freed_large_tensors_are_reused_without_page_faults():
    def faults(mode: str) -> tuple[str, int]:
        res = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True)
        took, count = res.stdout.split()
        return took, int(count)
    pages = 48e6 / 4096  # ~11,700 pages of 4 kB per allocation
    took, kept = faults("keep")
    _, default = faults("default")
    assert took == "True"
    assert default > 9 * pages  # glibc's default: the block is mapped, faulted in and unmapped every time
    assert kept < 0.05 * pages  # reused: (almost) no new pages (the interpreter's own allocations fault a few)
