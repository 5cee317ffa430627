"""The thread counts a process runs its torch and numba work on.

``use_threads(n)`` is an entry point's choice for the whole process (the command line's from the
problem's size, ``run.threads_for``; the explorer's one thread). Torch keeps one count for all threads;
numba's ``set_num_threads`` holds only in the calling thread, so every thread that runs compiled kernels
adopts the process's choice first (``adopt_threads``).
"""
from __future__ import annotations

from .lazy import load, numba, torch

#: The thread count ``use_threads`` chose for this process; None while none was chosen.
_THREADS: int | None = None


def use_threads(n: int) -> None:
    """Run torch and the compiled kernels on ``n`` threads. Entry points (the command line, the app,
    the benchmark) call this once; a solve never changes the process's thread settings itself.
    Torch's count is set last: numba's first ``set_num_threads`` starts its OpenMP pool, which sets
    the OpenMP thread count (shared with torch) to all cores, so set first, torch's 1 became 2.
    Torch's count holds in every thread, numba's only in the calling one (``adopt_threads``).

    Torch is imported before numba's pool starts: the pool loads the system's OpenMP runtime
    (libgomp.so.1), and torch imported after it binds to that library (the same soname) instead of the
    one it ships with. Then every transcendental elementwise op that torch runs in parallel (exp, log,
    sqrt, sin, tanh over a few thousand entries and more) took about 3 ms, whatever its size: exp over
    4,000 entries 3.1 ms against 7.5 us, over 100,000 2.8 ms against 0.1 ms (two threads; sums,
    products, matmul and Cholesky alike either way). The command line started numba first: uniform
    sources to 1,000 samples at eps = 0.1 spent 1.4 s (0.1 s so) in the greedy releases, whose
    kernel is such an exp per release."""
    global _THREADS
    _THREADS = n
    load(torch)  # before numba's OpenMP pool: see above
    adopt_threads()
    torch.set_num_threads(n)


def adopt_threads() -> None:
    """Run the calling thread's compiled kernels on the count ``use_threads`` chose for the process (if
    it chose one). Numba's count belongs to each thread: every other thread starts with all cores. The
    explorer calls ``use_threads(1)`` at import and solves in worker threads, whose kernels therefore
    ran on both cores of this machine, against the app's design (one core for the solver threads, one
    left for the event loop and the pages: ``explorer.cores``). Measured in one process, alternating, a
    solve of N = 1,000 samples in a worker thread beside an event loop doing Python work: on two kernel
    threads 1.19 s with the loop's 95th-percentile lag 2.9 ms, on one 1.48 s and 0.33 ms (N = 300: 1.3 s
    and 0.6 ms either way, its kernels mostly serial). Solves, the workers that prepare their starts
    and the explorer's landscape thread call this first."""
    if _THREADS is not None:
        numba.set_num_threads(max(1, min(_THREADS, numba.config.NUMBA_NUM_THREADS)))
