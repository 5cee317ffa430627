"""``solver.run.use_threads``: the thread counts a process runs its torch and numba work on."""
from __future__ import annotations

import subprocess
import sys


def test_one_thread_means_one_for_torch_after_numba_starts_its_pool():
    """Numba's first ``set_num_threads`` starts its OpenMP pool, which sets the OpenMP thread count that
    torch shares to all cores: with torch's count set first, ``use_threads(1)`` left torch on every
    core once torch's thread pool had been used (small problems then ran on two spinning threads).
    A fresh process, since the pool starts once per process."""
    code = ("import torch, numba\n"
            "from solver.run import use_threads\n"
            "torch.zeros(3).sum(); torch.get_num_threads()\n"  # torch's pool in use before the call
            "use_threads(1)\n"
            "print(torch.get_num_threads(), numba.get_num_threads())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["1", "1"]
