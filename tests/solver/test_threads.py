"""``solver.threads``: the thread counts a process runs its torch and numba work on, in every thread."""
from __future__ import annotations

import os
import subprocess
import sys


def test_one_thread_means_one_for_torch_after_numba_starts_its_pool():
    """Numba's first ``set_num_threads`` starts its OpenMP pool, which sets the OpenMP thread count that
    torch shares to all cores: with torch's count set first, ``use_threads(1)`` left torch on every
    core once torch's thread pool had been used (small problems then ran on two spinning threads).
    A fresh process, since the pool starts once per process."""
    code = ("import torch, numba\n"
            "from solver.threads import use_threads\n"
            "torch.zeros(3).sum(); torch.get_num_threads()\n"  # torch's pool in use before the call
            "use_threads(1)\n"
            "print(torch.get_num_threads(), numba.get_num_threads())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["1", "1"]


OTHER_THREADS = """
import threading
import numba, torch
from solver.optimizers import prepared
from solver.problem import problem_from_dict
from solver.run import solve_iter
from solver.steps import Step
from solver.threads import use_threads
use_threads(1)
seen = {}

def bare():
    seen["bare"] = numba.get_num_threads()

def solving():
    steps = solve_iter(problem_from_dict({"source": {"points": [[0.0, 0.0], [1.0, 0.0]]}, "M": 3,
                                          "target": {"kind": "particles", "points": [[2.0, 0.0], [2.0, 1.0]]}}))
    next(steps)
    seen["solve"] = numba.get_num_threads()
    steps.close()

for target in (bare, solving):
    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
preparing = prepared(lambda cancel: numba.get_num_threads(), Step(torch.zeros(1), {}, 0.0, 0.0, 0, 0, "x"))
try:
    while True:
        next(preparing)
except StopIteration as stop:
    seen["prepared"] = stop.value
print(seen["bare"], seen["solve"], seen["prepared"])
"""


def test_solves_in_other_threads_run_their_kernels_on_the_process_count():
    """Numba's thread count belongs to each thread (a new one starts with all of NUMBA_NUM_THREADS), so
    ``use_threads(1)`` in the main thread left the explorer's solves, which run in worker threads, on
    every core. A solve, and the worker preparing its start, adopt the process's count. NUMBA_NUM_THREADS
    = 2 makes the default differ from 1 on any machine; a fresh process, since the pool starts once."""
    env = dict(os.environ, NUMBA_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-c", OTHER_THREADS], capture_output=True, text=True, check=True,
                         env=env, timeout=300).stdout
    assert out.split() == ["2", "1", "1"], out  # a bare thread keeps the default; solves adopt 1


def test_torch_is_imported_before_numba_starts_its_openmp_pool():
    """Numba's pool loads the system's OpenMP runtime, which torch imported afterwards binds to instead of
    its own: then its parallel exp, log, sqrt ... took ~3 ms each whatever their size (``use_threads``'
    docstring). ``use_threads`` imports torch first; a fresh process that had imported neither records,
    when numba's first ``set_num_threads`` (which starts the pool) is called, whether torch was loaded."""
    code = ("import sys\n"
            "import numba\n"
            "seen = []\n"
            "original = numba.set_num_threads\n"
            "def recording(n):\n"
            "    seen.append('torch' in sys.modules)\n"
            "    original(n)\n"
            "numba.set_num_threads = recording\n"
            "assert 'torch' not in sys.modules\n"
            "from solver.threads import use_threads\n"
            "use_threads(2)\n"
            "print(seen)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[True]"
