"""The self term's dense Hessian, compiled (numba): what Newton's method factors on small problems.

For S(x) = sum_ik a_i a_k phi(x_i - x_k), phi(r) = exp(-|r|^2 / (2 s^2)), and
T_ik = a_i a_k Hess phi(x_i - x_k) = a_i a_k phi (r r^T / s^4 - I / s^2), r = x_i - x_k:

    d^2S / dx_i dx_k = -2 T_ik (i != k),   d^2S / dx_i^2 = 2 sum_{k != i} T_ik,

so each diagonal block is minus the sum of its row's off-diagonal blocks. One pass over the pairs writes
every entry (N^2 D^2 of them) with the cells' kernel values of a run of points (``cells._weights``,
its vectorized exponential ``cells.fast_exp``); pairs beyond
the cells' cutoff (phi < tau = 1e-16) are 0, as in the cells' sums. Measured at N = 1,000 in 2-D:
3.9 ms where the same built from N x N torch planes took 22.6 ms, as long as a float32 Cholesky of it
(with freed memory reused, as the command line and the app run: ``solver.allocator``; 10.8 ms when
the 32 MB of each call are faulted in anew).

Exactly symmetric: entry (k, q, i, p) is computed from the same numbers as (i, p, k, q) (r changes sign,
r_p r_q and |r|^2 do not, a_i a_k commutes) by the same operations: ``_weights`` (compiled with
reassociation) adds no pair to another, only |r|^2's coordinates in order, and the rest is compiled
without it, so the two are bitwise equal (Cholesky reads one triangle, products read both).
"""
from __future__ import annotations

import numba
import numpy as np

from .cells import FAST, _weights, exp_table, run

#: Rows of the Hessian per parallel task: more tasks than threads even out the threads' work.
TASKS_PER_THREAD = 4
#: Below this many pairs (N^2) the Hessian is built on the calling thread alone: a parallel region's
#: start and its threads' spinning after it (numba's OpenMP layer) cost more than they save there, and
#: the spinning takes the core from other work (2 benchmark processes, each of 25 particles: Fig. 4
#: 3.4 -> 4.6 s).
PARALLEL_PAIRS = 2**18


@numba.njit(fastmath=FAST, cache=True)
def _total(values):
    """The sum of ``values``, vectorized (the same numbers give the same sum, whatever the order chosen)."""
    total = 0.0
    for k in range(values.shape[0]):
        total += values[k]
    return total


def _self_hessian_rows(xT, a, factor, c, rc2, table, tasks):
    """``factor`` H (N, D, N, D), H as the module docstring states, with phi = exp(-c |r|^2)
    (c = 1 / (2 s^2)) and 0 for |r|^2 > rc2; ``xT`` the points coordinate by coordinate (D x N). Rows
    (i, p, :, q) and (i, q, :, p) hold the same numbers: each pair p <= q is computed once."""
    d, n = xT.shape
    H = np.empty((n, d, n, d))
    inv = 2.0 * c
    for t in numba.prange(tasks):
        e = np.empty(n)
        v = np.empty(n)
        for i in range(t * n // tasks, (t + 1) * n // tasks):
            _weights(xT[:, i], xT, 0, n, c, rc2, table, e)  # phi_ik, 0 beyond the cutoff
            ai = a[i]
            for k in range(n):
                e[k] = factor * (ai * a[k]) * e[k]
            e[i] = 0.0
            for p in range(d):
                xip, xp = xT[p, i], xT[p]
                for q in range(p, d):
                    xiq, xq = xT[q, i], xT[q]
                    shift = 2.0 * inv if p == q else 0.0
                    for k in range(n):
                        v[k] = e[k] * (shift - 2.0 * inv * inv * ((xip - xp[k]) * (xiq - xq[k])))
                    v[i] = -_total(v)
                    H[i, p, :, q] = v
                    if q != p:
                        H[i, q, :, p] = v
    return H


_self_hessian = numba.njit(parallel=True, cache=True)(_self_hessian_rows)
_self_hessian_serial = numba.njit(cache=True)(_self_hessian_rows)  # prange is range here


def self_hessian(x: np.ndarray, a: np.ndarray, scale: float, limit: float, factor: float = 1.0) -> np.ndarray:
    """``factor`` times the Hessian (N, D, N, D) of sum_ik a_i a_k exp(-|x_i - x_k|^2 / (2 s^2)) at the
    points x (N, D), pairs whose kernel value is below exp(-limit) left out (taking turns with the cells'
    kernels: ``cells.run``). The factor scales each pair's weight, so the Hessian needs no second pass."""
    c = 0.5 / (scale * scale)
    kernel = _self_hessian if len(x) ** 2 >= PARALLEL_PAIRS else _self_hessian_serial
    return run(kernel, np.ascontiguousarray(x.T), np.ascontiguousarray(a), factor, c, limit / c, exp_table(limit),
               TASKS_PER_THREAD * numba.get_num_threads())
