"""Gaussian sums over neighbour cells (compiled with numba): O(N) memory, time proportional to the
number of pairs closer than a cutoff.

The points z are sorted into cubic cells of side ``cutoff`` (keyed by their integer coordinates, so
empty space costs nothing); each x_i visits the 3^D cells around its own and sums over the z_k in
them that lie within the cutoff. Pairs farther apart than r_c = cutoff contribute
exp(-r_c^2 / (2 s^2)) = tau or less each (``solver.kernels.cutoff`` picks r_c for tau = 1e-16), so

    |S_cells - S| <= tau sum_i |a_i| sum_k |b_k|,   |grad_cells - grad|_i <= tau |a_i| (r_c / s^2) sum_k |b_k|.

The x_i are visited in cell order (neighbouring x read the same z), in parallel over numba's threads
(``numba.set_num_threads``); calls from several threads take turns (numba's default threading layer
must not run two parallel kernels at once). Sums of the stored points against themselves (the self
term's value, gradient and Hessian-vector products) visit each pair once and add it to both ends
(``_self_pairs``). Compiled once and cached on disk (``cache=True``).
"""
from __future__ import annotations

import math
import threading

import numba
import numpy as np

#: Bits per coordinate of a cell key (cells are indexed up to 2^20 in each direction).
BITS = 21
OFFSET = 1 << (BITS - 1)


@numba.njit(cache=True)
def key_of(xcell, i, stencil, o):
    """The key of the cell ``stencil[o]`` away from x_i's cell."""
    key = 0
    for j in range(xcell.shape[1]):
        key = (key << BITS) | (xcell[i, j] + stencil[o, j] + OFFSET)
    return key


@numba.njit(cache=True)
def find(keys, key):
    """The index of ``key`` in the sorted ``keys``, or -1."""
    lo, hi = 0, keys.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if keys[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    return lo if lo < keys.shape[0] and keys[lo] == key else -1


@numba.njit(inline="always", cache=True)
def separation(x, i, z, k, r):
    """r = x_i - z_k (written into ``r``); returns |r|^2. For the kernels that use r again."""
    d2 = 0.0
    for j in range(r.shape[0]):
        r[j] = x[i, j] - z[k, j]
        d2 += r[j] * r[j]
    return d2


@numba.njit(parallel=True, cache=True)
def _sums(x, xcell, z, b, keys, starts, ends, stencil, inv, rc2, want_grad):
    """row_i = sum_k b_k phi_ik and g_i = sum_k b_k phi_ik (x_i - z_k) over z_k within the cutoff."""
    n, d = x.shape
    row = np.zeros(n)
    grad = np.zeros((n, d))
    for i in numba.prange(n):
        r = 0.0
        g = np.zeros(d)
        for o in range(stencil.shape[0]):
            c = find(keys, key_of(xcell, i, stencil, o))
            if c < 0:
                continue
            for k in range(starts[c], ends[c]):
                d2 = 0.0  # inline: a separation() buffer made this loop 10 % slower
                for j in range(d):
                    t = x[i, j] - z[k, j]
                    d2 += t * t
                if d2 > rc2:
                    continue
                e = b[k] * math.exp(-0.5 * inv * d2)
                r += e
                if want_grad:
                    for j in range(d):
                        g[j] += e * (x[i, j] - z[k, j])
        row[i] = r
        for j in range(d):
            grad[i, j] = g[j]
    return row, grad


@numba.njit(parallel=True, cache=True)
def _hessians(x, xcell, z, b, v, keys, starts, ends, stencil, inv, rc2, want_blocks):
    """With H_ik = b_k phi_ik (r r^T inv^2 - inv I), r = x_i - z_k: the blocks sum_k H_ik, or (x the
    same points as z, in the same order, and v indexed like them) the products sum_k H_ik (v_i - v_k)."""
    n, d = x.shape
    blocks = np.zeros((n, d, d)) if want_blocks else np.zeros((1, d, d))
    hv = np.zeros((n, d))
    for i in numba.prange(n):
        B = np.zeros((d, d))
        p = np.zeros(d)
        rr = np.empty(d)
        for o in range(stencil.shape[0]):
            c = find(keys, key_of(xcell, i, stencil, o))
            if c < 0:
                continue
            for k in range(starts[c], ends[c]):
                d2 = separation(x, i, z, k, rr)
                if d2 > rc2:
                    continue
                e = b[k] * math.exp(-0.5 * inv * d2)
                if want_blocks:
                    for j in range(d):
                        for m in range(d):
                            B[j, m] += e * (rr[j] * rr[m] * inv * inv - (inv if j == m else 0.0))
                else:
                    dot = 0.0
                    for j in range(d):
                        dot += rr[j] * (v[i, j] - v[k, j])
                    for j in range(d):
                        p[j] += e * (rr[j] * dot * inv * inv - inv * (v[i, j] - v[k, j]))
        if want_blocks:
            for j in range(d):
                for m in range(d):
                    blocks[i, j, m] = B[j, m]
        for j in range(d):
            hv[i, j] = p[j]
    return blocks, hv


@numba.njit(parallel=True, cache=True)
def _self_pairs(z, zcell, b, v, keys, starts, ends, half, inv, rc2, mode, chunks):
    """The stored points against themselves, each pair once: z_k in the cells ``half`` away from z_i's
    (offsets whose first nonzero component is positive) and, in z_i's own cell, k > i; each term is
    added to both ends (phi_ik = phi_ki, Hess phi(r) = Hess phi(-r)). ``mode`` 0: row sums, 1: and their
    gradient sums (as ``_sums``, the term k = i included), 2: the products sum_k b_k Hess phi_ik
    (v_i - v_k) (as ``_hessians``). The cells are cut into ``chunks`` runs, each summed into its own
    buffer by one thread (no two threads add to one number)."""
    n, d = z.shape
    ncell = keys.shape[0]
    row = np.zeros((chunks, n))
    out = np.zeros((chunks, n, d))
    for t in numba.prange(chunks):
        r = np.empty(d)
        for c in range(t * ncell // chunks, (t + 1) * ncell // chunks):
            for i in range(starts[c], ends[c]):
                row[t, i] += b[i]
                for o in range(half.shape[0] + 1):
                    if o == 0:
                        lo, hi = i + 1, ends[c]
                    else:
                        c2 = find(keys, key_of(zcell, i, half, o - 1))
                        if c2 < 0:
                            continue
                        lo, hi = starts[c2], ends[c2]
                    for k in range(lo, hi):
                        d2 = separation(z, i, z, k, r)
                        if d2 > rc2:
                            continue
                        e = math.exp(-0.5 * inv * d2)
                        if mode == 2:
                            dot = 0.0
                            for j in range(d):
                                dot += r[j] * (v[i, j] - v[k, j])
                            for j in range(d):
                                h = e * (r[j] * dot * inv * inv - inv * (v[i, j] - v[k, j]))
                                out[t, i, j] += b[k] * h
                                out[t, k, j] -= b[i] * h
                        else:
                            row[t, i] += b[k] * e
                            row[t, k] += b[i] * e
                            if mode == 1:
                                for j in range(d):
                                    out[t, i, j] += b[k] * e * r[j]
                                    out[t, k, j] -= b[i] * e * r[j]
    return row.sum(0), out.sum(0)


#: ``_self_pairs`` cuts the cells into this many runs per thread (cells hold different numbers of
#: points: more runs than threads even out the threads' work).
CHUNKS_PER_THREAD = 4
#: numba's default threading layer must not run two parallel kernels at once: calls take turns.
_LOCK = threading.Lock()


def run(kernel, *args):
    """Call a compiled kernel, one at a time across threads."""
    with _LOCK:
        return kernel(*args)


class Cells:
    """The points z sorted into cells of side ``cutoff``, ready to be summed against any x."""

    def __init__(self, z: np.ndarray, cutoff: float) -> None:
        self.cutoff = cutoff
        self.low = z.min(0) - cutoff
        self.source = z
        cells = self.cell_of(z)
        keys = self._keys(cells)
        self.order = np.argsort(keys, kind="stable")
        self.sorted_cells = np.ascontiguousarray(cells[self.order])
        self.z = np.ascontiguousarray(z[self.order])
        self.keys, self.starts, counts = np.unique(keys[self.order], return_index=True, return_counts=True)
        self.ends = self.starts + counts
        d = z.shape[1]
        self.stencil = np.array(np.meshgrid(*[[-1, 0, 1]] * d, indexing="ij")).reshape(d, -1).T.astype(np.int64).copy()
        first = np.array([row[row != 0][0] if row.any() else 0 for row in self.stencil])
        self.half = np.ascontiguousarray(self.stencil[first > 0])  # each neighbour pair of cells once

    def cell_of(self, x: np.ndarray) -> np.ndarray:
        return np.floor((x - self.low) / self.cutoff).astype(np.int64)

    @staticmethod
    def _keys(cells: np.ndarray) -> np.ndarray:
        key = np.zeros(len(cells), np.int64)
        for j in range(cells.shape[1]):
            key = (key << BITS) | (cells[:, j] + OFFSET)
        return key

    def pairs_within(self, x: np.ndarray) -> int:
        """How many (x_i, z_k) pairs share neighbouring cells (the work of a sum, for choosing a backend)."""
        xc = self.cell_of(x)
        total = 0
        counts = self.ends - self.starts
        for offset in self.stencil:
            idx = np.searchsorted(self.keys, self._keys(xc + offset))
            idx = np.minimum(idx, len(self.keys) - 1)
            hit = self.keys[idx] == self._keys(xc + offset)
            total += int(counts[idx[hit]].sum())
        return total

    def _visit(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """x in cell order (for locality), its cells, and the permutation to undo the order (for the
        stored points themselves, the order they are stored in)."""
        if x is self.source:
            return self.z, self.sorted_cells, self.order
        xc = self.cell_of(x)
        order = np.argsort(self._keys(xc), kind="stable")
        return np.ascontiguousarray(x[order]), np.ascontiguousarray(xc[order]), order

    def sums(self, x: np.ndarray, b: np.ndarray, scale: float, want_grad: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(row, g): row_i = sum_k b_k phi(x_i - z_k), g_i = sum_k b_k phi(x_i - z_k) (x_i - z_k); for the
        stored points themselves each pair is computed once (``_self_pairs``: 1.7x faster in 2-D)."""
        xs, xc, order = self._visit(x)
        inv = 1.0 / (scale * scale)
        bs = np.ascontiguousarray(b[self.order])
        if x is self.source:
            row, g = run(_self_pairs, self.z, self.sorted_cells, bs, self.z, self.keys, self.starts, self.ends,
                         self.half, inv, self.cutoff**2, 1 if want_grad else 0, CHUNKS_PER_THREAD * numba.get_num_threads())
        else:
            row, g = run(_sums, xs, xc, self.z, bs, self.keys, self.starts, self.ends, self.stencil, inv,
                         self.cutoff**2, want_grad)
        out_row, out_g = np.empty_like(row), np.empty_like(g)
        out_row[order], out_g[order] = row, g
        return out_row, out_g

    def blocks(self, x: np.ndarray, b: np.ndarray, scale: float) -> np.ndarray:
        """The D x D blocks sum_k b_k Hess phi(x_i - z_k), Hess phi(r) = phi(r) (r r^T / s^4 - I / s^2)."""
        xs, xc, order = self._visit(x)
        blocks, _ = run(_hessians, xs, xc, self.z, np.ascontiguousarray(b[self.order]), np.zeros((1, x.shape[1])),
                        self.keys, self.starts, self.ends, self.stencil, 1.0 / scale**2, self.cutoff**2, True)
        out = np.empty_like(blocks)
        out[order] = blocks
        return out

    def self_products(self, b: np.ndarray, scale: float, v: np.ndarray) -> np.ndarray:
        """sum_k b_k Hess phi(z_i - z_k) (v_i - v_k) for the stored points z themselves, each pair once."""
        _, hv = run(_self_pairs, self.z, self.sorted_cells, np.ascontiguousarray(b[self.order]),
                    np.ascontiguousarray(v[self.order]), self.keys, self.starts, self.ends, self.half,
                    1.0 / scale**2, self.cutoff**2, 2, CHUNKS_PER_THREAD * numba.get_num_threads())
        out = np.empty_like(hv)
        out[self.order] = hv
        return out


def compile_kernels() -> None:
    """Compile the kernels (or load them from numba's disk cache) on a small cloud. The first compile
    takes seconds (2.6 s measured inside a first N = 1,000 solve), which the first solve after an
    install would otherwise wait for; ``make install`` calls this."""
    z = np.random.default_rng(0).uniform(0.0, 1.0, (16, 2))
    grid = Cells(z, 0.5)
    grid.sums(z, np.ones(16), 0.1)
    grid.sums(z + 0.0, np.ones(16), 0.1)
    grid.blocks(z, np.ones(16), 0.1)
    grid.self_products(np.ones(16), 0.1, z)
