"""Gaussian sums over neighbour cells (compiled with numba): O(N) memory, time proportional to the
number of pairs closer than a cutoff.

The points z are sorted into cubic cells of side ``cutoff`` (keyed by their integer coordinates, so
empty space costs nothing); each x_i visits the 3^D cells around its own and sums over the z_k in
them that lie within the cutoff. Pairs farther apart than r_c = cutoff contribute
exp(-r_c^2 / (2 s^2)) = tau or less each (``solver.kernels.cutoff`` picks r_c for tau = 1e-16; 1e-8 for
Newton's Hessian-vector products, ``PRODUCT_TRUNCATION``), so

    |S_cells - S| <= tau sum_i |a_i| sum_k |b_k|,   |grad_cells - grad|_i <= tau |a_i| (r_c / s^2) sum_k |b_k|.

The x_i are visited in cell order (neighbouring x read the same z), in parallel over numba's threads
(``numba.set_num_threads``); calls from several threads take turns (numba's default threading layer
must not run two parallel kernels at once). Sums of the stored points against themselves (the self
term's value, gradient and Hessian-vector products) visit each pair once and add it to both ends
(``_self_pairs``). Compiled once and cached on disk (``cache=True``).

An x_i meets a cell's points as one run of consecutive z_k, stored coordinate by coordinate (D x K):
``_weights`` computes the run's kernel values in loops that the compiler turns into SIMD instructions,
with ``fast_exp`` (a table and a polynomial: the C library's exp is a call, which no loop around it can
vectorize), and the sums over the run may be reordered (``FAST``). Results differ from a plain loop in
the last bits (relative error of a sum ~1e-15); measured at N = 10^4 in 2-D, the self term's value
and gradient took 11.6 ms instead of 24.5 ms.
"""
from __future__ import annotations

import functools
import math
import threading
from typing import Callable

import numba
import numpy as np

#: Bits of a cell key: its D coordinates take KEY_BITS // D bits each (``key_bits``; 21 in 3-D, 15 in
#: 4-D). With 21 bits per coordinate whatever D, the keys of 4-D cells (the states of acceleration
#: control in the plane) overflowed 64 bits and different cells shared keys: sums came out 36 % off in
#: 4-D, 430 % in 5-D (3,000 Gaussian points), and a solve of 300 particles under acceleration control
#: took releases that raised the objective, round after round, until its time limit.
KEY_BITS = 63
#: What the compiler may do to the kernels' arithmetic: reorder sums and fuse multiply-adds (vectorizing a
#: sum needs the first), not assume that no NaN or infinity occurs (a diverging solve must see them).
FAST = {"reassoc", "contract"}
#: Bytes of one pair listed by ``Cells.self_curvature``: its partner (int32) and kernel value (float64).
PAIR_BYTES = 12
#: ``fast_exp`` writes x = -n ln2 / EXP_STEPS + r with |r| <= ln2 / (2 EXP_STEPS): exp(x) is
#: 2^(-n / EXP_STEPS), from a table, times exp(r), a degree-5 Taylor polynomial (error r^6 / 720 < 4e-17
#: relative).
EXP_STEPS = 64
#: ln 2 = LN2_HIGH + LN2_LOW to ~1e-26 (fdlibm's e_exp.c): LN2_HIGH's 21 lowest mantissa bits are zero,
#: so n LN2_HIGH / EXP_STEPS is exact for every table index n (< 2^21), and x + n ln2 / EXP_STEPS loses
#: only the rounding of n LN2_LOW (Cody and Waite). One rounded constant for ln2 / EXP_STEPS would be off
#: by up to 8.7e-19, times n ~ 3,400: errors of 1.6e-15 in exp near the cutoff (measured).
LN2_HIGH, LN2_LOW = 6.93147180369123816490e-01, 1.90821492927058770002e-10
EXP_HIGH, EXP_LOW = LN2_HIGH / EXP_STEPS, LN2_LOW / EXP_STEPS
EXP_SCALE = EXP_STEPS / math.log(2.0)


@functools.lru_cache(maxsize=16)
def exp_table(limit: float) -> np.ndarray:
    """2^(-n / EXP_STEPS) for every n that ``fast_exp`` meets on [-limit, 0] (the last few limits kept:
    each scale's c r_c^2 is ln(1/tau) up to rounding, and a server tuning delta live meets many)."""
    return np.exp2(-np.arange(int(limit * EXP_SCALE) + 2) / EXP_STEPS)


@numba.njit(cache=True)
def fast_exp(x, table):
    """exp(x) for -limit <= x <= 0 (``table = exp_table(limit)``), to ~2 ulp; no call, so a loop
    around it vectorizes. Compiled without ``FAST``: reassociating x + n high + n low would undo the
    split."""
    n = int(-x * EXP_SCALE + 0.5)
    r = x + n * EXP_HIGH + n * EXP_LOW
    return table[n] * (1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0))))))


def key_bits(d: int) -> int:
    """Bits per coordinate of a D-dimensional cell key."""
    return KEY_BITS // d


@numba.njit(cache=True)
def key_of(xcell, i, stencil, o):
    """The key of the cell ``stencil[o]`` away from x_i's cell (as ``Cells._keys``)."""
    bits = KEY_BITS // xcell.shape[1]
    offset = 1 << (bits - 1)
    key = 0
    for j in range(xcell.shape[1]):
        key = (key << bits) | (xcell[i, j] + stencil[o, j] + offset)
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
def half_run(zcell, i, cell, o, keys, starts, ends, half):
    """The run [lo, hi) of stored points that z_i (in ``cell``) meets at step o of a self sum, each pair
    once: o = 0 its own cell's later points, o > 0 the cell ``half[o - 1]`` away (empty if none)."""
    if o == 0:
        return i + 1, ends[cell]
    other = find(keys, key_of(zcell, i, half, o - 1))
    if other < 0:
        return 0, 0
    return starts[other], ends[other]


@numba.njit(inline="always", fastmath=FAST, cache=True)
def _weights(xi, zT, lo, hi, c, rc2, table, e):
    """e[:m] = exp(-c |xi - z_k|^2) for the run z_k, k in [lo, hi) (m = hi - lo), 0 beyond the cutoff
    (|xi - z_k|^2 > rc2, where c rc2 is the table's limit); returns e[:m]."""
    m = hi - lo
    d2 = e[:m]
    d2[:] = 0.0
    for j in range(zT.shape[0]):
        xij = xi[j]
        zj = zT[j, lo:hi]
        for k in range(m):
            u = xij - zj[k]
            d2[k] += u * u
    for k in range(m):
        q = d2[k]
        w = fast_exp(-c * min(q, rc2), table)
        d2[k] = w if q <= rc2 else 0.0
    return d2


@numba.njit(parallel=True, fastmath=FAST, cache=True)
def _cross_pairs(x, xcell, zT, b, keys, starts, ends, stencil, c, rc2, table, mode, chunks):
    """Sums over the z_k within the cutoff of each x_i, phi_ik = exp(-c |x_i - z_k|^2), r = x_i - z_k:
    ``mode`` 0: row_i = sum_k b_k phi_ik, 1: and g_i = sum_k b_k phi_ik r, 2: and the D x D blocks
    sum_k b_k phi_ik (r r^T (2c)^2 - 2c I) (Hess phi at r, with 2c = 1 / s^2). The x_i in ``chunks``
    runs, one per task. Returns (row, g, blocks); g and blocks hold one row where not asked for."""
    n, d = x.shape
    row = np.zeros(n)
    grad = np.zeros((n if mode == 1 else 1, d))
    blocks = np.zeros((n if mode == 2 else 1, d, d))
    longest = (ends - starts).max()
    for t in numba.prange(chunks):
        e = np.empty(longest)
        for i in range(t * n // chunks, (t + 1) * n // chunks):
            for o in range(stencil.shape[0]):
                cell = find(keys, key_of(xcell, i, stencil, o))
                if cell < 0:
                    continue
                lo, hi = starts[cell], ends[cell]
                w = _weights(x[i], zT, lo, hi, c, rc2, table, e)
                bk = b[lo:hi]
                r = 0.0
                for k in range(hi - lo):
                    r += bk[k] * w[k]
                row[i] += r
                if mode == 1:
                    for j in range(d):
                        xij = x[i, j]
                        zj = zT[j, lo:hi]
                        g = 0.0
                        for k in range(hi - lo):
                            g += bk[k] * w[k] * (xij - zj[k])
                        grad[i, j] += g
                elif mode == 2:
                    for j in range(d):
                        xij, zj = x[i, j], zT[j, lo:hi]
                        for q in range(j, d):
                            xiq, zq = x[i, q], zT[q, lo:hi]
                            s = 0.0
                            for k in range(hi - lo):
                                s += bk[k] * w[k] * (xij - zj[k]) * (xiq - zq[k])
                            blocks[i, j, q] += 4.0 * c * c * s
                            if q != j:
                                blocks[i, q, j] += 4.0 * c * c * s
                        blocks[i, j, j] -= 2.0 * c * r
    return row, grad, blocks


@numba.njit(parallel=True, fastmath=FAST, cache=True)
def _self_pairs(zT, zcell, b, vT, keys, starts, ends, half, c, rc2, table, mode, chunks):
    """The stored points against themselves, each pair once: z_k in the cells ``half`` away from z_i's
    (offsets whose first nonzero component is positive) and, in z_i's own cell, k > i; each term is
    added to both ends (phi_ik = phi_ki, Hess phi(r) = Hess phi(-r)). ``mode`` 0: row sums, 1: and their
    gradient sums (as ``_cross_pairs``, the term k = i included), 2: the products sum_k b_k Hess phi_ik
    (v_i - v_k) (Hess phi(r) = phi(r) ((2c)^2 r r^T - 2c I)). The cells are cut into ``chunks`` runs,
    each summed into its own buffer by one task (no two threads add to one number). Coordinates and
    the results' columns are stored coordinate by coordinate (D x K)."""
    d, n = zT.shape
    ncell = keys.shape[0]
    row = np.zeros((chunks, n))
    out = np.zeros((chunks, d, n))
    longest = (ends - starts).max()
    for t in numba.prange(chunks):
        e = np.empty(longest)
        dots = np.empty(longest)
        zi = np.empty(d)
        row_t, out_t = row[t], out[t]
        for cell in range(t * ncell // chunks, (t + 1) * ncell // chunks):
            for i in range(starts[cell], ends[cell]):
                bi = b[i]
                row_t[i] += bi
                for j in range(d):
                    zi[j] = zT[j, i]
                for o in range(half.shape[0] + 1):
                    lo, hi = half_run(zcell, i, cell, o, keys, starts, ends, half)
                    m = hi - lo
                    if m <= 0:
                        continue
                    w = _weights(zi, zT, lo, hi, c, rc2, table, e)
                    bk = b[lo:hi]
                    if mode == 2:
                        dot = dots[:m]
                        dot[:] = 0.0
                        for j in range(d):
                            zij, zj = zi[j], zT[j, lo:hi]
                            vij, vj = vT[j, i], vT[j, lo:hi]
                            for k in range(m):
                                dot[k] += (zij - zj[k]) * (vij - vj[k])
                        for j in range(d):
                            zij, zj = zi[j], zT[j, lo:hi]
                            vij, vj = vT[j, i], vT[j, lo:hi]
                            out_j = out_t[j, lo:hi]
                            s = 0.0
                            for k in range(m):
                                h = w[k] * (4.0 * c * c * (zij - zj[k]) * dot[k] - 2.0 * c * (vij - vj[k]))
                                s += bk[k] * h
                                out_j[k] -= bi * h
                            out_t[j, i] += s
                        continue
                    rows = row_t[lo:hi]
                    s = 0.0
                    for k in range(m):
                        s += bk[k] * w[k]
                        rows[k] += bi * w[k]
                    row_t[i] += s
                    if mode == 1:
                        for j in range(d):
                            zij, zj = zi[j], zT[j, lo:hi]
                            out_j = out_t[j, lo:hi]
                            s = 0.0
                            for k in range(m):
                                g = w[k] * (zij - zj[k])
                                s += bk[k] * g
                                out_j[k] -= bi * g
                            out_t[j, i] += s
    return row.sum(0), out.sum(0)


@numba.njit(parallel=True, cache=True)
def _partners(zT, zcell, keys, starts, ends, half, c, rc2, table, first, partner, weight):
    """The pairs ``_self_pairs`` visits from each stored point z_i (in cell order: k > i in its own cell,
    every point of the cells ``half`` away) that lie within the cutoff: how many per point (returned);
    unless ``first`` is empty, also pair p of z_i written at first[i] + p: its partner k (``partner``)
    and phi_ik (``weight``; ``fast_exp`` as in ``_weights``)."""
    d, n = zT.shape
    fill = first.shape[0] > 0
    counts = np.zeros(n, np.int64)
    for cell in numba.prange(keys.shape[0]):
        for i in range(starts[cell], ends[cell]):
            at = first[i] if fill else 0
            p = at
            for o in range(half.shape[0] + 1):
                lo, hi = half_run(zcell, i, cell, o, keys, starts, ends, half)
                for k in range(lo, hi):
                    q = 0.0
                    for j in range(d):
                        u = zT[j, i] - zT[j, k]
                        q += u * u
                    if q <= rc2:
                        if fill:
                            partner[p] = k
                            weight[p] = fast_exp(-c * q, table)
                        p += 1
            counts[i] = p - at
    return counts


@numba.njit(parallel=True, fastmath=FAST, cache=True)
def _partner_products(first, partner, weight, zT, b, v_given, order, c, runs):
    """sum_k b_k Hess phi(z_i - z_k) (v_i - v_k) over the listed pairs (``_partners``), each added to
    both ends as in ``_self_pairs``' mode 2; the points zT (D, N) and the result in cell order, v_given in
    the caller's (v_i = v_given[order[i]], gathered here: numpy's fancy indexing took 11 us at N = 1,000).
    A pair's difference z_i - z_k is read from the points (neighbours in cell order, so mostly from cache)
    rather than stored with it: a listed pair is then 12 bytes, not 4 + 8 (D + 1), and the products
    stream less memory (2-D N = 3,000: 0.97 against 1.12 ms; 3-D N = 2,500, with the scalar loop below:
    3.4 against 7.2 ms). The z_i are cut
    into the runs [runs[t], runs[t + 1]) (about equal numbers of pairs), each summed into its own buffer;
    returns the buffers (chunks, N, D) for ``_summed``.
    In 2-D and 3-D the terms are written out in scalars (the general loops over coordinates keep them in
    memory: 1.9 against 4.2 ns a pair at N = 1,000 in 2-D)."""
    n, d = v_given.shape
    v = np.empty((n, d))
    for i in numba.prange(n):
        for j in range(d):
            v[i, j] = v_given[order[i], j]
    chunks = runs.shape[0] - 1
    out = np.zeros((chunks, n, d))
    c4, c2 = 4.0 * c * c, 2.0 * c
    for t in numba.prange(chunks):
        out_t = out[t]
        dv = np.empty(d)
        r = np.empty(d)
        s = np.empty(d)
        for i in range(runs[t], runs[t + 1]):
            bi = b[i]
            if d == 2:
                v0, v1, s0, s1 = v[i, 0], v[i, 1], 0.0, 0.0
                z0, z1 = zT[0, i], zT[1, i]
                for p in range(first[i], first[i + 1]):
                    k = partner[p]
                    d0, d1 = v0 - v[k, 0], v1 - v[k, 1]
                    w, r0, r1 = weight[p], z0 - zT[0, k], z1 - zT[1, k]
                    dot = c4 * (r0 * d0 + r1 * d1)
                    h0, h1 = w * (r0 * dot - c2 * d0), w * (r1 * dot - c2 * d1)
                    s0 += b[k] * h0
                    s1 += b[k] * h1
                    out_t[k, 0] -= bi * h0
                    out_t[k, 1] -= bi * h1
                out_t[i, 0] += s0
                out_t[i, 1] += s1
                continue
            if d == 3:
                v0, v1, v2, s0, s1, s2 = v[i, 0], v[i, 1], v[i, 2], 0.0, 0.0, 0.0
                z0, z1, z2 = zT[0, i], zT[1, i], zT[2, i]
                for p in range(first[i], first[i + 1]):
                    k = partner[p]
                    d0, d1, d2 = v0 - v[k, 0], v1 - v[k, 1], v2 - v[k, 2]
                    w, r0, r1, r2 = weight[p], z0 - zT[0, k], z1 - zT[1, k], z2 - zT[2, k]
                    dot = r0 * d0 + r1 * d1 + r2 * d2
                    h0 = w * (c4 * r0 * dot - c2 * d0)
                    h1 = w * (c4 * r1 * dot - c2 * d1)
                    h2 = w * (c4 * r2 * dot - c2 * d2)
                    s0 += b[k] * h0
                    s1 += b[k] * h1
                    s2 += b[k] * h2
                    out_t[k, 0] -= bi * h0
                    out_t[k, 1] -= bi * h1
                    out_t[k, 2] -= bi * h2
                out_t[i, 0] += s0
                out_t[i, 1] += s1
                out_t[i, 2] += s2
                continue
            s[:] = 0.0
            for p in range(first[i], first[i + 1]):
                k = partner[p]
                dot = 0.0
                for j in range(d):
                    dv[j] = v[i, j] - v[k, j]
                    r[j] = zT[j, i] - zT[j, k]
                    dot += r[j] * dv[j]
                w = weight[p]
                for j in range(d):
                    h = w * (c4 * r[j] * dot - c2 * dv[j])
                    s[j] += b[k] * h
                    out_t[k, j] -= bi * h
            for j in range(d):
                out_t[i, j] += s[j]
    return out


@numba.njit(parallel=True, fastmath=FAST, cache=True)
def _partner_blocks(first, partner, weight, zT, b, c, runs):
    """The D x D blocks sum_{k != i} b_k Hess phi(z_i - z_k) over the listed pairs (``_partners``), each
    pair's Hess phi(r) = phi(r) ((2c)^2 r r^T - 2c I) added to both ends (b_k times it to row i, b_i
    times it to row k): the diagonal blocks of ``_partner_products``' operator, from the same pairs and
    kernel values. Computed once per (j, q), j <= q, and written to both (exactly symmetric). Per-run
    buffers (chunks, N, D^2) in cell order, for ``_summed``, as ``_partner_products``. In 2-D the terms
    are written out in scalars, as there (N = 1,000 0.15 against 0.29 ms, N = 10^4 0.87 against 2.8 ms
    with the general loops)."""
    d, n = zT.shape
    chunks = runs.shape[0] - 1
    out = np.zeros((chunks, n, d * d))
    c4, c2 = 4.0 * c * c, 2.0 * c
    for t in numba.prange(chunks):
        out_t = out[t]
        r = np.empty(d)
        s = np.empty(d * d)
        for i in range(runs[t], runs[t + 1]):
            bi = b[i]
            if d == 2:
                z0, z1, s00, s01, s11 = zT[0, i], zT[1, i], 0.0, 0.0, 0.0
                for p in range(first[i], first[i + 1]):
                    k = partner[p]
                    w, r0, r1 = weight[p], z0 - zT[0, k], z1 - zT[1, k]
                    h00, h01, h11 = w * (c4 * r0 * r0 - c2), w * (c4 * r0 * r1), w * (c4 * r1 * r1 - c2)
                    s00 += b[k] * h00
                    s01 += b[k] * h01
                    s11 += b[k] * h11
                    out_t[k, 0] += bi * h00
                    out_t[k, 1] += bi * h01
                    out_t[k, 2] += bi * h01
                    out_t[k, 3] += bi * h11
                out_t[i, 0] += s00
                out_t[i, 1] += s01
                out_t[i, 2] += s01
                out_t[i, 3] += s11
                continue
            s[:] = 0.0
            for p in range(first[i], first[i + 1]):
                k = partner[p]
                w = weight[p]
                for j in range(d):
                    r[j] = zT[j, i] - zT[j, k]
                for j in range(d):
                    for q in range(j, d):
                        h = w * (c4 * r[j] * r[q] - (c2 if q == j else 0.0))
                        s[j * d + q] += b[k] * h
                        out_t[k, j * d + q] += bi * h
                        if q != j:
                            out_t[k, q * d + j] += bi * h
            for j in range(d):
                for q in range(j, d):
                    out_t[i, j * d + q] += s[j * d + q]
                    if q != j:
                        out_t[i, q * d + j] += s[j * d + q]
    return out


@numba.njit(parallel=True, cache=True)
def _summed(buffers, order):
    """The sum over t of the per-run buffers (chunks, K, m) of ``_partner_products``, with row i (cell
    order) put back at the caller's order[i]; added in order t = 0, 1, ... (bitwise numpy's
    ``buffers.sum(0)``). Inside that kernel numba's own ``out.sum(0)`` took twice as long as all its
    pairs: a product at 2-D N = 1,000 (8 runs) 0.27 ms so, 0.09 ms with this call after the kernel; and
    the scatter here spares numpy's fancy indexing (11 us at N = 1,000). (``_self_pairs``' sums, with
    their buffers coordinate by coordinate, were 10 % slower this way: they keep numba's sum.)"""
    chunks, n, m = buffers.shape
    total = np.empty((n, m))
    for i in numba.prange(n):
        for j in range(m):
            acc = 0.0
            for t in range(chunks):
                acc += buffers[t, i, j]
            total[order[i], j] = acc
    return total


#: The x of ``_cross_pairs`` and the cells of ``_self_pairs`` are cut into this many runs per
#: thread (cells hold different numbers of points: more runs than threads even out the threads' work).
CHUNKS_PER_THREAD = 4
#: numba's default threading layer must not run two parallel kernels at once: calls take turns.
_LOCK = threading.Lock()


def run(kernel, *args):
    """Call a compiled kernel, one at a time across threads."""
    with _LOCK:
        return kernel(*args)


def _chunks() -> int:
    return CHUNKS_PER_THREAD * numba.get_num_threads()


def bounds(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The smallest and largest coordinates of ``points`` (N, D), column by column (numpy's min over
    axis 0 of a (10^4, 2) array takes 25x longer: it reduces across the short rows). NaN anywhere in a
    column makes its bounds NaN."""
    columns = range(points.shape[1])
    return (np.array([points[:, j].min() for j in columns]), np.array([points[:, j].max() for j in columns]))


@functools.cache
def stencils(d: int) -> tuple[np.ndarray, np.ndarray]:
    """The 3^D offsets from a cell to its neighbours and itself ((3^D, D), int64), and the half of them
    that visits each neighbouring pair of cells once (its first nonzero coordinate positive). Made once
    per dimension and shared by every ``Cells`` (never written)."""
    stencil = np.array(np.meshgrid(*[[-1, 0, 1]] * d, indexing="ij")).reshape(d, -1).T.astype(np.int64).copy()
    first = np.array([row[row != 0][0] if row.any() else 0 for row in stencil])
    return stencil, np.ascontiguousarray(stencil[first > 0])


def fits(low: np.ndarray, high: np.ndarray, cutoff: float) -> bool:
    """Whether points within the bounds [low, high] can be sorted into cells of side ``cutoff``: every
    cell coordinate, with a margin for the neighbours and the clamped x (``Cells.cell_of``), within its
    ``key_bits`` (in 2-D 2^30 cells a side, 2^14 in 4-D)."""
    span = float(np.max((high - low) / cutoff))
    return span + 4 < (1 << (key_bits(len(low)) - 1))


class Cells:
    """The points z sorted into cells of side ``cutoff``, ready to be summed against any x. Their cells
    must fit their keys (``fits``)."""

    def __init__(self, z: np.ndarray, cutoff: float, box: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """``box``: z's smallest and largest coordinates (``bounds``), when known."""
        z_low, z_high = bounds(z) if box is None else box
        if not fits(z_low, z_high, cutoff):
            raise ValueError(f"the points span more than {1 << (key_bits(z.shape[1]) - 1)} cells of side "
                             f"{cutoff:.3g} in some coordinate; the cells backend cannot key them (use dense or grid)")
        self.cutoff = cutoff
        self.low = z_low - cutoff
        self.top = np.floor((z_high - self.low) / cutoff).astype(np.int64) + 1  # z's cells: 1 .. top - 1
        self.source = z
        cells = self.cell_of(z)
        keys = self._keys(cells)
        self.order = np.argsort(keys, kind="stable")
        self.sorted_cells = np.ascontiguousarray(cells[self.order])
        self.zT = np.ascontiguousarray(z[self.order].T)  # coordinate by coordinate: runs of z_k are contiguous
        self.keys, self.starts, counts = np.unique(keys[self.order], return_index=True, return_counts=True)
        self.ends = self.starts + counts
        self.stencil, self.half = stencils(z.shape[1])

    def cell_of(self, x: np.ndarray) -> np.ndarray:
        """x's cells, clamped to 0 .. top in each coordinate: an x beyond the stored points' cells meets
        the outer ones, whose points the sums then find farther than the cutoff, as they are (the keys
        stay within their bits however far x lies)."""
        return np.floor(np.clip((x - self.low) / self.cutoff, 0, self.top)).astype(np.int64)

    @staticmethod
    def _keys(cells: np.ndarray) -> np.ndarray:
        """The cells' keys: their coordinates (offset to be positive) side by side, ``key_bits`` each."""
        bits = key_bits(cells.shape[1])
        key = np.zeros(len(cells), np.int64)
        for j in range(cells.shape[1]):
            key = (key << bits) | (cells[:, j] + (1 << (bits - 1)))
        return key

    def pairs_within(self, x: np.ndarray) -> int:
        """How many (x_i, z_k) pairs share neighbouring cells (the work of a sum, for choosing a backend):
        every x_i's 3^D neighbouring cells looked up at once (one lookup per offset: 283 against 81 us for
        the 256 sampled points at N = 1,000 in 2-D, 987 against 206 us in 3-D; with the stencils made
        once, ``stencils``, planning a sum took 0.15 instead of 0.5 ms, beside 0.6 ms for the sum itself)."""
        wanted = self._keys((self.cell_of(x)[:, None, :] + self.stencil[None]).reshape(-1, x.shape[1]))
        idx = np.minimum(np.searchsorted(self.keys, wanted), len(self.keys) - 1)
        hit = self.keys[idx] == wanted
        return int((self.ends - self.starts)[idx[hit]].sum())

    def _exponent(self, scale: float) -> tuple[float, float, np.ndarray]:
        """(c, r_c^2, table): phi(r) = exp(-c |r|^2), c = 1 / (2 s^2), and ``fast_exp``'s table up to c r_c^2."""
        c = 0.5 / (scale * scale)
        return c, self.cutoff**2, exp_table(c * self.cutoff**2)

    def _visit(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """x in cell order (for locality), its cells, and the permutation to undo the order."""
        xc = self.cell_of(x)
        order = np.argsort(self._keys(xc), kind="stable")
        return np.ascontiguousarray(x[order]), np.ascontiguousarray(xc[order]), order

    def sums(self, x: np.ndarray, b: np.ndarray, scale: float, want_grad: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(row, g): row_i = sum_k b_k phi(x_i - z_k), g_i = sum_k b_k phi(x_i - z_k) (x_i - z_k); for the
        stored points themselves each pair is computed once (``_self_pairs``: 1.7x faster in 2-D)."""
        bs = np.ascontiguousarray(b[self.order])
        if x is self.source:
            row, g = run(_self_pairs, self.zT, self.sorted_cells, bs, self.zT, self.keys, self.starts, self.ends,
                         self.half, *self._exponent(scale), 1 if want_grad else 0, _chunks())
            out_row, out_g = np.empty_like(row), np.empty_like(g.T)
            out_row[self.order], out_g[self.order] = row, g.T
            return out_row, out_g
        xs, xc, order = self._visit(x)
        row, g, _ = run(_cross_pairs, xs, xc, self.zT, bs, self.keys, self.starts, self.ends, self.stencil,
                        *self._exponent(scale), 1 if want_grad else 0, _chunks())
        out_row, out_g = np.empty_like(row), np.zeros_like(x, dtype=float)
        out_row[order] = row
        if want_grad:
            out_g[order] = g
        return out_row, out_g

    def blocks(self, x: np.ndarray, b: np.ndarray, scale: float) -> np.ndarray:
        """The D x D blocks sum_k b_k Hess phi(x_i - z_k), Hess phi(r) = phi(r) (r r^T / s^4 - I / s^2)."""
        xs, xc, order = self._visit(x)
        _, _, blocks = run(_cross_pairs, xs, xc, self.zT, np.ascontiguousarray(b[self.order]), self.keys,
                           self.starts, self.ends, self.stencil, *self._exponent(scale), 2, _chunks())
        out = np.empty_like(blocks)
        out[order] = blocks
        return out

    def self_curvature(self, b: np.ndarray, scale: float, memory: int = 0
                       ) -> tuple[Callable[[np.ndarray], np.ndarray], np.ndarray]:
        """The self term's second derivatives at the stored points z, for all the products of a Newton
        step: (v -> sum_k b_k Hess phi(z_i - z_k) (v_i - v_k), each pair once; the (N, D, D) diagonal
        blocks of that operator, sum_{k != i} b_k Hess phi(z_i - z_k)).

        The pairs within the cutoff are listed once with their kernel values (``_partners``,
        ``PAIR_BYTES`` each) when they fit in ``memory`` bytes: each product then reads them instead of
        searching the cells and evaluating the kernel again (a Newton step takes dozens of products at
        the same points), and so do the blocks (``_partner_blocks``: 0.15 ms at 2-D N = 1,000, where a
        search of the cells for them took 1.3 ms); otherwise every product runs ``_self_pairs`` and the
        blocks are ``blocks``' sums less their k = i terms (Hess phi(0) = -2c I)."""
        bs, exponent = np.ascontiguousarray(b[self.order]), self._exponent(scale)
        where = (self.zT, self.sorted_cells, self.keys, self.starts, self.ends, self.half, *exponent)
        counts = run(_partners, *where, np.empty(0, np.int64), np.empty(0, np.int32), np.empty(0))
        first = np.concatenate([[0], np.cumsum(counts)])
        d = self.zT.shape[0]
        if first[-1] * PAIR_BYTES <= memory:
            partner, weight = np.empty(first[-1], np.int32), np.empty(first[-1])
            run(_partners, *where, first, partner, weight)
            runs = np.searchsorted(first, np.linspace(0, first[-1], _chunks() + 1), side="left")
            runs[0], runs[-1] = 0, len(counts)

            def listed(v: np.ndarray) -> np.ndarray:
                buffers = run(_partner_products, first, partner, weight, self.zT, bs,
                              np.ascontiguousarray(v, dtype=float), self.order, exponent[0], runs)
                return run(_summed, buffers, self.order)
            blocks = run(_summed, run(_partner_blocks, first, partner, weight, self.zT, bs, exponent[0], runs),
                         self.order).reshape(-1, d, d)
            return listed, blocks

        def product(v: np.ndarray) -> np.ndarray:
            _, hv = run(_self_pairs, self.zT, self.sorted_cells, bs, np.ascontiguousarray(v[self.order].T),
                        self.keys, self.starts, self.ends, self.half, *exponent, 2, _chunks())
            out = np.empty_like(hv.T)
            out[self.order] = hv.T
            return out
        blocks = self.blocks(self.source, b, scale)
        blocks[:, range(d), range(d)] += (2.0 * exponent[0]) * b[:, None]
        return product, blocks
