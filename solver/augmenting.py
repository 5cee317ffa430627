"""Exact optimal assignments repaired from a near-optimal pairing, in O(N) memory (compiled with numba).

The particles a_i (rows) are to take the points b_j (columns), one each, at least total cost
sum_i c_i,s(i) with c_ij = |a_i - b_j|^2; they arrive paired i -> b_i, nearly optimally (the end of a
local solve, or a multiscale plan). Linear-programming duality gives the certificate: a permutation s
is optimal iff there are potentials u, v with

    c_ij - u_i - v_j >= 0 for every pair (i, j),  with equality on the pairs (i, s(i)).

From any u the column potentials v_j = min_i (c_ij - u_i) are feasible (``column_potentials``). Every
pair (i, i) that they leave tight is kept; each other particle is re-inserted along a shortest
augmenting path in the reduced costs c_ij - u_i - v_j >= 0 (Dijkstra over the columns, the potentials
updated so that they stay feasible and the kept pairs tight: Crouse's form of the Jonker-Volgenant
augmentation, the algorithm of SciPy's ``linear_sum_assignment``; ``augment``). So the result is
exactly optimal whatever u was; a good u only makes the paths short.

The start: for squared distances u_i = |a_i|^2 - 2 psi(a_i) with psi convex, its gradient taking a_i to
its point (Brenier's potential: then u_i + v_j <= c_ij is psi(a) + psi*(b) >= a.b). ``integrated_potentials``
integrates the pairing's map along the edges to each particle's ``NEIGHBOURS`` nearest neighbours,
psi(a_k) - psi(a_i) ~ (b_i + b_k).(a_k - a_i) / 2 (the trapezoid rule), by least squares. Measured at
the reassignments of the N = 1,000 / 3,000 samples solves (2-D): 30-50 % of the particles re-inserted
along paths of 7-20 rows each; 0.03-0.04 s / 0.3-0.9 s where POT's emd took 0.21-0.27 s / 2.7-3.6 s,
the same assignments. Costs are computed where they are needed (no N x N matrix); the time is that of
the column potentials, N^2 pairs, and of the rows the paths scan, N pairs each.
"""
from __future__ import annotations

import numba
import numpy as np

from .kernels.cells import run
from .lazy import scipy_spatial

#: The integrated potential's least squares use the edges from each particle to this many nearest ones
#: (N = 1,000 / 3,000 reassignments: 8 neighbours left 4,586 / 64,604 rows to scan, 16 3,905 / 41,899).
NEIGHBOURS = 16
#: A pair (i, i) counts as tight when its reduced cost is at most this, relative to the largest |u|,
#: |v| and c_ii (rounding of the sums that make the potentials).
TIGHT = 1e-12


@numba.njit(inline="always", cache=True)
def _cost(a: np.ndarray, b: np.ndarray, i: int, j: int) -> float:
    s = 0.0
    for k in range(a.shape[1]):
        t = a[i, k] - b[j, k]
        s += t * t
    return s


@numba.njit(parallel=True, cache=True)
def _column_potentials(a: np.ndarray, b: np.ndarray, u: np.ndarray) -> np.ndarray:
    n = a.shape[0]
    v = np.empty(n)
    for j in numba.prange(n):
        low = np.inf
        for i in range(n):
            r = _cost(a, b, i, j) - u[i]
            if r < low:
                low = r
        v[j] = low
    return v


def column_potentials(a: np.ndarray, b: np.ndarray, u: np.ndarray) -> np.ndarray:
    """v_j = min_i (c_ij - u_i): the largest column potentials that are feasible with u."""
    return run(_column_potentials, a, b, u)


@numba.njit(cache=True)
def augment(a: np.ndarray, b: np.ndarray, u: np.ndarray, v: np.ndarray, col4row: np.ndarray,
            row4col: np.ndarray, free_rows: np.ndarray) -> int:
    """Insert each of ``free_rows`` along a shortest augmenting path (in place: the assignment
    ``col4row`` / ``row4col``, -1 where free, and the potentials u, v, feasible on entry and kept so).
    Returns the number of rows scanned (each costs N pairs). Costs must be finite."""
    n = a.shape[0]
    shortest = np.empty(n)
    path = np.empty(n, dtype=np.int64)
    scanned_row = np.zeros(n, dtype=np.bool_)
    scanned_col = np.zeros(n, dtype=np.bool_)
    remaining = np.empty(n, dtype=np.int64)
    scans = 0
    for start in free_rows:
        for j in range(n):
            shortest[j] = np.inf
            path[j] = -1
            scanned_row[j] = False
            scanned_col[j] = False
            remaining[j] = n - 1 - j
        left = n
        reached = 0.0
        i = start
        sink = -1
        while sink == -1:
            scanned_row[i] = True
            scans += 1
            best = -1
            lowest = np.inf
            ui = u[i]
            for k in range(left):
                j = remaining[k]
                r = reached + _cost(a, b, i, j) - ui - v[j]
                if r < shortest[j]:
                    path[j] = i
                    shortest[j] = r
                # ties go to a free column: the path ends there
                if shortest[j] < lowest or (shortest[j] == lowest and row4col[j] == -1):
                    lowest = shortest[j]
                    best = k
            reached = lowest
            j = remaining[best]
            scanned_col[j] = True
            left -= 1
            remaining[best] = remaining[left]
            if row4col[j] == -1:
                sink = j
            else:
                i = row4col[j]
        u[start] += reached
        for r in range(n):
            if scanned_row[r] and r != start:
                u[r] += reached - shortest[col4row[r]]
        for j in range(n):
            if scanned_col[j]:
                v[j] -= reached - shortest[j]
        j = sink
        while True:
            i = path[j]
            row4col[j] = i
            j, col4row[i] = col4row[i], j
            if i == start:
                break
    return scans


def integrated_potentials(a: np.ndarray, b: np.ndarray, neighbours: int = NEIGHBOURS) -> np.ndarray:
    """u_i = |a_i|^2 - 2 psi_i, psi the least-squares integral of the pairing's map a_i -> b_i along
    the edges from each a_i to its nearest ``neighbours`` (see the module docstring). A start only:
    any u gives the exact assignment."""
    from scipy import sparse
    from scipy.sparse import linalg

    n = len(a)
    k = min(neighbours, n - 1)
    if k < 1:
        return np.zeros(n)
    _, near = scipy_spatial.cKDTree(a).query(a, k=k + 1)
    rows = np.repeat(np.arange(n), k)
    cols = near[:, 1:].ravel()
    rise = 0.5 * ((b[rows] + b[cols]) * (a[cols] - a[rows])).sum(1)
    m = len(rows)
    edges = np.arange(m)
    D = sparse.csr_matrix((np.r_[-np.ones(m), np.ones(m)], (np.r_[edges, edges], np.r_[rows, cols])), shape=(m, n))
    laplacian = (D.T @ D).tocsc()
    # each connected group of particles fixes its potential's constant: a shift small against the
    # Laplacian's entries (2 k per particle) pins it near 0 without moving the differences
    psi = linalg.spsolve(laplacian + sparse.identity(n, format="csc") * (1e-9 * k), D.T @ rise)
    if not np.all(np.isfinite(psi)):
        return np.zeros(n)
    return (a * a).sum(1) - 2.0 * psi


def repaired_permutation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The exact optimal assignment s (particle i, at a_i, takes b_s(i); minimum sum |a_i - b_s(i)|^2),
    repaired from the pairing i -> b_i (see the module docstring). a, b: (N, D) float64."""
    a = np.ascontiguousarray(a, dtype=np.float64)
    b = np.ascontiguousarray(b, dtype=np.float64)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("repaired_permutation: the points must be finite (NaN or infinite coordinates given)")
    n = len(a)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    u = integrated_potentials(a, b)
    v = column_potentials(a, b, u)
    own = ((a - b) ** 2).sum(1)
    scale = max(float(np.abs(u).max()), float(np.abs(v).max()), float(own.max()), 1e-300)
    tight = own - u - v <= TIGHT * scale
    col4row = np.where(tight, np.arange(n), -1)
    row4col = col4row.copy()
    u = np.where(tight, own - v, u)
    augment(a, b, u, v, col4row, row4col, np.flatnonzero(~tight))
    return col4row
