"""Exact optimal assignments repaired from a near-optimal pairing, in O(N) memory (compiled with numba).

The particles a_i (rows) are to take the points b_j (columns), one each, at least total cost
sum_i c_i,s(i) with c_ij = |a_i - b_j|^2; they arrive paired i -> b_i, nearly optimally (the end of a
local solve). Linear-programming duality gives the certificate: a permutation s is optimal iff there
are potentials u, v with

    c_ij - u_i - v_j >= 0 for every pair (i, j),  with equality on the pairs (i, s(i)).

From any u the column potentials v_j = min_i (c_ij - u_i) are feasible (``column_potentials``). Every
pair (i, i) that they leave tight is kept; each other particle is re-inserted along a shortest
augmenting path in the reduced costs c_ij - u_i - v_j >= 0 (Dijkstra; the potentials updated so that
they stay feasible and the kept pairs tight: Crouse's form of the Jonker-Volgenant augmentation, the
algorithm of SciPy's ``linear_sum_assignment``; ``augment``). The paths run over candidate pairs only,
each particle's own point and its ``CANDIDATES`` nearest points; a row whose u rose on a path is then
priced against every column (``row_violations``), and where it undercuts one, that column's potential
is lowered to feasibility, its holder re-inserted and the pair added to the candidates. When no row
undercuts any column the certificate holds for all N^2 pairs: the result is exactly optimal (to
``TIGHT``) whatever u was; a good u only makes the paths short and the rounds few.

The start: for squared distances u_i = |a_i|^2 - 2 psi(a_i) with psi convex, its gradient taking a_i to
its point (Brenier's potential: then u_i + v_j <= c_ij is psi(a) + psi*(b) >= a.b).
``integrated_potentials`` integrates the pairing's map along the edges to each particle's
``NEIGHBOURS`` nearest neighbours, psi(a_k) - psi(a_i) ~ (b_i + b_k).(a_k - a_i) / 2 (the trapezoid
rule), by least squares (conjugate gradients on the graph Laplacian, to ``POTENTIAL_RTOL``).

Costs are computed where they are needed (no N x N matrix); the time is that of the pricing passes,
N pairs per row priced (numba's threads), and of the paths. Measured on the reassignments of the
samples solves (2-D): N = 1,000 0.03-0.04 s, N = 3,000 0.1-0.25 s (POT's emd: 0.15-0.27 s and
2.7-3.6 s, the same assignments), N = 10,000 0.9-2.8 s (where emd would take ~26 s and 2.4 GB).
"""
from __future__ import annotations

import numba
import numpy as np
from scipy import sparse
from scipy.sparse import linalg as sparse_linalg
from scipy.spatial import cKDTree

from .kernels.cells import run

#: The integrated potential's least squares use the edges from each particle to this many nearest ones
#: (N = 1,000 / 3,000 reassignments, paths over all pairs: 8 neighbours left 4,586 / 64,604 rows to scan,
#: 16 3,905 / 41,899).
NEIGHBOURS = 16
#: Candidate pairs of the augmenting paths: each particle's own point and this many points nearest it
#: (reassignments at N = 3,000 / 10,000: 16 took 0.21 / 1.0-2.3 s, 32 0.22 / 0.95-1.85 s, 64 0.24 /
#: 0.87-2.1 s); pairs outside are priced after each round (``row_violations``) and added where needed.
CANDIDATES = 32
#: The least squares are solved by conjugate gradients to this relative residual, in at most
#: POTENTIAL_ITERATIONS iterations (any u gives the exact assignment: a looser psi costs the paths a
#: little, a direct factorization more): reassignments at N = 1,000 21 -> 14 ms (the potentials 12 ->
#: 6 ms; SuperLU's factorization before), N = 3,000 166 -> 143 ms, N = 10,000 1.48 -> 1.38 s; to 1e-2
#: instead, the paths took longer than the factorization saved (25, 244 ms, 2.4 s).
POTENTIAL_RTOL, POTENTIAL_ITERATIONS = 1e-6, 300
#: A pair (i, i) counts as tight, and a pair undercuts its column only below minus this, relative to
#: the largest |u|, |v| and c_ii (rounding of the sums that make the potentials).
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


@numba.njit(parallel=True, cache=True)
def _row_violations(a: np.ndarray, b: np.ndarray, u: np.ndarray, v: np.ndarray, rows: np.ndarray,
                    tol: float) -> np.ndarray:
    n = a.shape[0]
    at = np.full(rows.shape[0], -1, dtype=np.int64)
    for t in numba.prange(rows.shape[0]):
        i = rows[t]
        low = -tol
        for j in range(n):
            r = _cost(a, b, i, j) - u[i] - v[j]
            if r < low:
                low = r
                at[t] = j
    return at


def row_violations(a: np.ndarray, b: np.ndarray, u: np.ndarray, v: np.ndarray, rows: np.ndarray,
                   tol: float) -> np.ndarray:
    """For each of ``rows`` the column j of its most negative reduced cost c_ij - u_i - v_j if that is
    below -tol, else -1 (N pairs a row)."""
    return run(_row_violations, a, b, u, v, rows, tol)


@numba.njit(inline="always", cache=True)
def _push(keys: np.ndarray, items: np.ndarray, size: int, key: float, item: int) -> int:
    k = size
    keys[k] = key
    items[k] = item
    while k > 0:
        parent = (k - 1) >> 1
        if keys[parent] <= keys[k]:
            break
        keys[parent], keys[k] = keys[k], keys[parent]
        items[parent], items[k] = items[k], items[parent]
        k = parent
    return size + 1


@numba.njit(inline="always", cache=True)
def _pop(keys: np.ndarray, items: np.ndarray, size: int) -> tuple[float, int, int]:
    key, item = keys[0], items[0]
    size -= 1
    keys[0], items[0] = keys[size], items[size]
    k = 0
    while True:
        child = 2 * k + 1
        if child >= size:
            break
        if child + 1 < size and keys[child + 1] < keys[child]:
            child += 1
        if keys[k] <= keys[child]:
            break
        keys[child], keys[k] = keys[k], keys[child]
        items[child], items[k] = items[k], items[child]
        k = child
    return key, item, size


@numba.njit(cache=True)
def augment(a: np.ndarray, b: np.ndarray, indptr: np.ndarray, indices: np.ndarray, u: np.ndarray,
            v: np.ndarray, col4row: np.ndarray, row4col: np.ndarray, free_rows: np.ndarray,
            changed: np.ndarray) -> int:
    """Insert each of ``free_rows`` along a shortest augmenting path over the candidate pairs (row i's
    columns ``indices[indptr[i]:indptr[i + 1]]``), in place: the assignment ``col4row`` / ``row4col``
    (-1 where free) and the potentials u, v, feasible on the candidate pairs on entry and kept so;
    ``changed[i]`` is set for every row whose u rose. Dijkstra with a binary heap, resetting only what
    a path touched. Returns the number of rows scanned, or -1 if a row reached no free column (each
    row's own column must be among its candidates)."""
    n = a.shape[0]
    shortest = np.full(n, np.inf)
    path = np.full(n, -1, dtype=np.int64)
    done = np.zeros(n, dtype=np.bool_)
    touched_cols = np.empty(n, dtype=np.int64)
    touched_rows = np.empty(n, dtype=np.int64)
    keys = np.empty(indices.shape[0] + 1)
    items = np.empty(indices.shape[0] + 1, dtype=np.int64)
    scans = 0
    for start in free_rows:
        n_cols = 0
        n_rows = 0
        size = 0
        reached = 0.0
        i = start
        sink = -1
        while sink == -1:
            touched_rows[n_rows] = i
            n_rows += 1
            for e in range(indptr[i], indptr[i + 1]):
                j = indices[e]
                if done[j]:
                    continue
                r = reached + _cost(a, b, i, j) - u[i] - v[j]
                if r < shortest[j]:
                    if shortest[j] == np.inf:
                        touched_cols[n_cols] = j
                        n_cols += 1
                    shortest[j] = r
                    path[j] = i
                    size = _push(keys, items, size, r, j)
            j = -1
            while size > 0:
                key, j, size = _pop(keys, items, size)
                if not done[j] and key == shortest[j]:
                    break
                j = -1
            if j == -1:
                return -1
            reached = shortest[j]
            done[j] = True
            if row4col[j] == -1:
                sink = j
            else:
                i = row4col[j]
        scans += n_rows
        u[start] += reached
        changed[start] = True
        for t in range(1, n_rows):
            r = touched_rows[t]
            u[r] += reached - shortest[col4row[r]]
            changed[r] = True
        for t in range(n_cols):
            j = touched_cols[t]
            if done[j]:
                v[j] -= reached - shortest[j]
        j = sink
        while True:
            i = path[j]
            row4col[j] = i
            j, col4row[i] = col4row[i], j
            if i == start:
                break
        for t in range(n_cols):
            j = touched_cols[t]
            done[j] = False
            shortest[j] = np.inf
            path[j] = -1
    return scans


def integrated_potentials(a: np.ndarray, b: np.ndarray, neighbours: int = NEIGHBOURS) -> np.ndarray:
    """u_i = |a_i|^2 - 2 psi_i, psi the least-squares integral of the pairing's map a_i -> b_i along
    the edges from each a_i to its nearest ``neighbours`` (see the module docstring). A start only:
    any u gives the exact assignment."""
    n = len(a)
    k = min(neighbours, n - 1)
    if k < 1:
        return np.zeros(n)
    _, near = cKDTree(a).query(a, k=k + 1)
    rows = np.repeat(np.arange(n), k)
    cols = near[:, 1:].ravel()
    rise = 0.5 * ((b[rows] + b[cols]) * (a[cols] - a[rows])).sum(1)
    m = len(rows)
    edges = np.arange(m)
    D = sparse.csr_matrix((np.r_[-np.ones(m), np.ones(m)], (np.r_[edges, edges], np.r_[rows, cols])), shape=(m, n))
    laplacian = (D.T @ D).tocsr()
    # each connected group of particles fixes its potential's constant: a shift small against the
    # Laplacian's entries (2 k per particle) pins it near 0 without moving the differences
    psi, _ = sparse_linalg.cg(laplacian + sparse.identity(n, format="csr") * (1e-9 * k), D.T @ rise,
                              rtol=POTENTIAL_RTOL, maxiter=POTENTIAL_ITERATIONS)
    if not np.all(np.isfinite(psi)):
        return np.zeros(n)
    return (a * a).sum(1) - 2.0 * psi


def candidates(near: np.ndarray, extra_rows: np.ndarray, extra_cols: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """The candidate pairs as compressed rows (indptr, indices): row i's own column, the columns
    ``near[i]`` (of the points nearest b_i), and the extra pairs."""
    n = len(near)
    rows = np.r_[np.repeat(np.arange(n), near.shape[1] + 1), extra_rows]
    cols = np.r_[np.c_[np.arange(n), near].ravel(), extra_cols]
    order = np.argsort(rows, kind="stable")
    return np.searchsorted(rows[order], np.arange(n + 1)), cols[order].astype(np.int64)


def repaired_permutation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The exact optimal assignment s (particle i, at a_i, takes b_s(i); minimum sum |a_i - b_s(i)|^2),
    repaired from the pairing i -> b_i (see the module docstring). a, b: (N, D) float64."""
    a = np.ascontiguousarray(a, dtype=np.float64)
    b = np.ascontiguousarray(b, dtype=np.float64)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("repaired_permutation: the points must be finite (NaN or infinite coordinates given)")
    n = len(a)
    if n <= 1:
        return np.zeros(n, dtype=np.int64)
    u = integrated_potentials(a, b)
    v = column_potentials(a, b, u)
    own = ((a - b) ** 2).sum(1)
    scale = max(float(np.abs(u).max()), float(np.abs(v).max()), float(own.max()), 1e-300)
    tol = TIGHT * scale
    tight = own - u - v <= tol
    col4row = np.where(tight, np.arange(n), -1)
    row4col = col4row.copy()
    u = np.where(tight, own - v, u)
    _, near = cKDTree(b).query(b, k=min(CANDIDATES, n - 1) + 1)
    near = near[:, 1:]
    free = np.flatnonzero(~tight)
    extra_rows = extra_cols = np.zeros(0, dtype=np.int64)
    recheck = extra_rows
    while True:
        indptr, indices = candidates(near, extra_rows, extra_cols)
        changed = np.zeros(n, dtype=np.bool_)
        if augment(a, b, indptr, indices, u, v, col4row, row4col, free, changed) < 0:
            raise ArithmeticError("repaired_permutation: a particle reached no free point "
                                  "(rounding in the potentials)")
        # rows whose u rose may now undercut a column outside their candidates: price them against all
        changed[recheck] = True
        rows = np.flatnonzero(changed)
        at = row_violations(a, b, u, v, rows, tol)
        hit = at >= 0
        if not hit.any():
            return col4row
        rows, cols = rows[hit], at[hit]
        # lower those columns' potentials to feasibility; their holders are no longer tight: re-insert them
        lowered = v.copy()
        np.minimum.at(lowered, cols, ((a[rows] - b[cols]) ** 2).sum(1) - u[rows])
        moved = np.flatnonzero(lowered < v)
        v = lowered
        free = row4col[moved]
        col4row[free] = -1
        row4col[moved] = -1
        recheck = rows  # a row may undercut several columns: the next round prices it again
        extra_rows, extra_cols = np.r_[extra_rows, rows], np.r_[extra_cols, cols]
