"""Interaction matrices J for the guiding example.

Conventions (pinned by tests/distributed/test_graphs.py):

* ``Graph.J`` is the matrix as built or given (possibly asymmetric, e.g. row-normalized).
* The cost uses the slide's first form G = (1/n) sum_i [U(x_i) + (1/2) sum_{j != i} J_ij K(x_i - x_j)],
  which equals (1/n) sum_i U(x_i) + (1/n) sum_{i<j} W_ij K(x_i - x_j) with the symmetrization
  W = (J + J^T) / 2 and a zero diagonal (K(0) terms are constants and are dropped).
  For symmetric J the slides' two forms of G agree and W = J.
* Normalizations: ``none`` (weight w on each edge), ``row`` (J_ij = A_ij / d_i, "degree"),
  ``1/n`` and ``1/(n-1)`` (every weight divided by n or n - 1).
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

NORMALIZATIONS = ("none", "row", "1/n", "1/(n-1)")
GRAPH_KINDS = ("complete", "ring", "path", "tree", "regular", "erdos_renyi", "star", "lattice")


@dataclass(frozen=True)
class Graph:
    """An interaction matrix J (sparse CSR) with a name and the parameters that rebuild it."""

    name: str
    J: sp.csr_matrix
    params: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.J.shape[0])

    @property
    def W(self) -> sp.csr_matrix:
        """Symmetrized weights W = (J + J^T)/2 with zero diagonal."""
        W = ((self.J + self.J.T) * 0.5).tocsr()
        W.setdiag(0.0)
        W.eliminate_zeros()
        return W

    @property
    def edges(self) -> NDArray[np.float64]:
        """Rows (i, j, W_ij) with i < j: the stored edge list of the symmetrized graph."""
        U = sp.triu(self.W, k=1).tocoo()
        order = np.lexsort((U.col, U.row))
        return np.column_stack([U.row[order], U.col[order], U.data[order]]).astype(np.float64)

    @property
    def degrees(self) -> NDArray[np.float64]:
        """Weighted degrees d_i = sum_j W_ij."""
        return np.asarray(self.W.sum(axis=1)).ravel()


def _from_pairs(n: int, i: NDArray[np.int64], j: NDArray[np.int64]) -> sp.csr_matrix:
    """0/1 symmetric adjacency matrix from undirected pairs (no duplicates, no loops)."""
    data = np.ones(2 * len(i))
    A = sp.coo_matrix((data, (np.r_[i, j], np.r_[j, i])), shape=(n, n)).tocsr()
    A.sum_duplicates()
    return A


def complete_adjacency(n: int) -> sp.csr_matrix:
    i, j = np.triu_indices(n, k=1)
    return _from_pairs(n, i, j)


def ring_adjacency(n: int) -> sp.csr_matrix:
    if n < 3:
        raise ValueError("a ring needs n >= 3; use more players or another graph")
    i = np.arange(n)
    return _from_pairs(n, i, (i + 1) % n)


def path_adjacency(n: int) -> sp.csr_matrix:
    """0 - 1 - ... - (n-1)."""
    if n < 2:
        raise ValueError("a path needs n >= 2; use more players")
    i = np.arange(n - 1)
    return _from_pairs(n, i, i + 1)


def tree_adjacency(n: int) -> sp.csr_matrix:
    """The complete binary tree in breadth-first order: node i's parent is (i - 1) // 2."""
    if n < 2:
        raise ValueError("a tree needs n >= 2; use more players")
    j = np.arange(1, n)
    return _from_pairs(n, (j - 1) // 2, j)


def star_adjacency(n: int) -> sp.csr_matrix:
    if n < 2:
        raise ValueError("a star needs n >= 2; use more players")
    j = np.arange(1, n)
    return _from_pairs(n, np.zeros_like(j), j)


def lattice_adjacency(n: int, rows: int, periodic: bool = True) -> sp.csr_matrix:
    """2-D grid of rows x (n / rows) nodes, node (p, q) -> p * cols + q; torus if periodic."""
    if rows < 1 or n % rows:
        raise ValueError(f"lattice rows = {rows} must divide n = {n}; choose rows that divide n")
    cols = n // rows
    if periodic and min(rows, cols) < 3:
        raise ValueError("a periodic lattice needs rows >= 3 and cols >= 3; use more players or periodic: false")
    p, q = np.divmod(np.arange(n), cols)
    pairs = []
    for dp, dq in ((0, 1), (1, 0)):
        p2, q2 = p + dp, q + dq
        keep = (p2 < rows) & (q2 < cols)
        if periodic:
            p2, q2, keep = p2 % rows, q2 % cols, np.ones(n, bool)
        pairs.append((np.arange(n)[keep], (p2 * cols + q2)[keep]))
    i = np.concatenate([a for a, _ in pairs])
    j = np.concatenate([b for _, b in pairs])
    return _from_pairs(n, i, j)


def erdos_renyi_adjacency(n: int, p: float, seed: int) -> sp.csr_matrix:
    """G(n, p): each pair i < j is an edge independently with probability p."""
    if not 0.0 <= p <= 1.0:
        raise ValueError("erdos_renyi p must lie in [0, 1]; give a probability")
    rng = np.random.default_rng(seed)
    i, j = np.triu_indices(n, k=1)
    keep = rng.random(len(i)) < p
    return _from_pairs(n, i[keep], j[keep])


def random_regular_adjacency(n: int, d: int, seed: int, sweeps: int = 10) -> sp.csr_matrix:
    """Random simple d-regular graph: circulant start, then sweeps * n * d / 2 degree-preserving
    double-edge swaps {a-b, c-e} -> {a-c, b-e} (rejected if they create a loop or a multi-edge)."""
    if not 0 < d < n or (n * d) % 2:
        raise ValueError(f"a d-regular graph needs 0 < d < n and n d even (n = {n}, d = {d}); change d or n")
    base = np.arange(n)
    us = [base for _ in range(1, d // 2 + 1)]
    vs = [(base + k) % n for k in range(1, d // 2 + 1)]
    if d % 2:
        half = np.arange(n // 2)
        us.append(half)
        vs.append(half + n // 2)
    u = np.concatenate(us)
    v = np.concatenate(vs)
    edges = np.column_stack([np.minimum(u, v), np.maximum(u, v)])
    present = {tuple(e) for e in edges.tolist()}
    rng = np.random.default_rng(seed)
    m = len(edges)
    n_swaps = sweeps * m
    picks = rng.integers(0, m, size=(n_swaps, 2))
    flips = rng.random(n_swaps) < 0.5
    for (e1, e2), flip in zip(picks.tolist(), flips.tolist()):
        old1, old2 = (int(edges[e1, 0]), int(edges[e1, 1])), (int(edges[e2, 0]), int(edges[e2, 1]))
        (a, b), (c, e) = old1, (old2[::-1] if flip else old2)
        new1, new2 = (min(a, c), max(a, c)), (min(b, e), max(b, e))
        if a == c or b == e or new1 in present or new2 in present:
            continue
        present.difference_update({old1, old2})
        present.update({new1, new2})
        edges[e1], edges[e2] = new1, new2
    return _from_pairs(n, edges[:, 0], edges[:, 1])


def normalize(A: sp.csr_matrix, mode: str, weight: float = 1.0) -> sp.csr_matrix:
    """J from adjacency A: none -> w A; row -> w A_ij / d_i; 1/n -> w A / n; 1/(n-1) -> w A / (n-1)."""
    n = A.shape[0]
    if mode == "none":
        return (weight * A).tocsr()
    if mode == "row":
        d = np.asarray(A.sum(axis=1)).ravel()
        inv = np.divide(1.0, d, out=np.zeros_like(d), where=d > 0)
        return (sp.diags(weight * inv) @ A).tocsr()
    if mode == "1/n":
        return (weight / n * A).tocsr()
    if mode == "1/(n-1)":
        return (weight / max(n - 1, 1) * A).tocsr()
    raise ValueError(f"normalize {mode!r} is unknown; use one of {', '.join(NORMALIZATIONS)}")


def named_graph(kind: str, n: int, *, normalize_mode: str = "none", weight: float = 1.0,
                d: int = 3, p: float = 0.1, rows: int | None = None, periodic: bool = True,
                seed: int = 0) -> Graph:
    """Build a named graph: complete, ring, path, tree (binary), regular (d, seed), erdos_renyi (p, seed),
    star, lattice (rows)."""
    if kind == "complete":
        A = complete_adjacency(n)
    elif kind == "ring":
        A = ring_adjacency(n)
    elif kind == "path":
        A = path_adjacency(n)
    elif kind == "tree":
        A = tree_adjacency(n)
    elif kind == "regular":
        A = random_regular_adjacency(n, d, seed)
    elif kind == "erdos_renyi":
        A = erdos_renyi_adjacency(n, p, seed)
    elif kind == "star":
        A = star_adjacency(n)
    elif kind == "lattice":
        r = rows if rows is not None else int(round(np.sqrt(n)))
        A = lattice_adjacency(n, r, periodic)
    else:
        raise ValueError(f"graph {kind!r} is unknown; use one of {', '.join(GRAPH_KINDS)}")
    params = {"graph": kind, "n": n, "normalize": normalize_mode, "weight": weight}
    params.update({"regular": {"d": d, "seed": seed}, "erdos_renyi": {"p": p, "seed": seed},
                   "lattice": {"rows": rows, "periodic": periodic}}.get(kind, {}))
    return Graph(kind, normalize(A, normalize_mode, weight), params)


def from_matrix(M: NDArray[np.float64] | list) -> Graph:
    """User matrix (any square array); kept as given, symmetrized only inside the cost."""
    J = np.asarray(M, dtype=np.float64)
    if J.ndim != 2 or J.shape[0] != J.shape[1]:
        raise ValueError(f"matrix of shape {J.shape} is not square; give n rows of n numbers")
    return Graph("matrix", sp.csr_matrix(J), {"graph": "matrix"})


def from_edges(n: int, edges: list | NDArray[np.float64]) -> Graph:
    """Edge list [[i, j, w], ...] with 0-based i < j meaning J_ij = J_ji = w."""
    E = np.asarray(edges, dtype=np.float64).reshape(-1, 3)
    if not np.all(np.isfinite(E[:, :2])):  # NaN or infinite indices: no integer to cast them to
        raise ValueError(f"edges need integers 0 <= i < j < n = {n}; fix the edge list")
    i, j, w = E[:, 0].astype(np.int64), E[:, 1].astype(np.int64), E[:, 2]
    if len(E) and (np.any(i != E[:, 0]) or np.any(j != E[:, 1]) or np.any(i >= j) or i.min() < 0 or j.max() >= n):
        raise ValueError(f"edges need integers 0 <= i < j < n = {n}; fix the edge list")
    J = sp.coo_matrix((np.r_[w, w], (np.r_[i, j], np.r_[j, i])), shape=(n, n)).tocsr()
    return Graph("edges", J, {"graph": "edges"})


def load_matrix(path: str | Path) -> Graph:
    """User matrix from a CSV file (rows of numbers) or a JSON file (list of lists)."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        return from_matrix(json.loads(path.read_text()))
    with path.open(newline="") as fh:
        rows = [[float(v) for v in row] for row in csv.reader(fh) if row]
    return from_matrix(rows)
