"""Optimal-transport assignments of N sources (weights 1/N) to weighted points, for squared Euclidean
costs: exact (POT's emd) where the N x K plan is affordable, multiscale beyond.

``match(x, y, b)`` returns where each source goes: the barycentric projection N sum_k P_ik y_k of the
plan P (for equal weights and K = N, a permutation of the y_k). Steering costs of the form
(y - x)^T S^{-1} (y - x) / 2 become squared distances after the linear change of variables L^T,
S^{-1} = L L^T (``solver.steering``), so one routine serves every dynamics.

Multiscale (N K > ``EXACT_PAIRS``): both clouds are cut recursively by the same hyperplane orthogonal
to the coordinate of widest spread, at the sources' median and at the matching quantile of the
points' mass (a point on the cut is shared, its weight split), which is the optimal 1-D matching of the
two halves along that coordinate; leaves of at most ``LEAF_PAIRS`` pairs are matched exactly. The
result is a transport plan between the two clouds, so its cost is an upper bound on W_2^2 (what large-N
diagnostics report), and its time is O(N log N + N LEAF): about a second per 10^4 points here.

Reassignments (``improved_permutation``: particles that already hold one point each, nearly optimally)
are exact up to ``REASSIGN_EXACT_PAIRS``, repaired from their pairing by shortest augmenting paths
(``solver.augmenting``, O(N) memory), and improved within groups beyond.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

import numpy as np

from .lazy import LazyModule, ot, scipy_spatial

augmenting = LazyModule("solver.augmenting")  # numba: compiled on first use
T, R = TypeVar("T"), TypeVar("R")

#: Up to this many pairs (N K) the plan is POT's exact emd (about a second at 2,000 x 2,000 here); for
#: diagnostics only within that square's time as well (``match``'s ``timed``, ``emd_affordable``).
EXACT_PAIRS = 4_000_000
#: Reassignments (``optimizers.reassign``) are exact up to this many pairs (N = 10,000), repaired from
#: the current pairing (``solver.augmenting``: O(N) memory, time ~N^2 per pricing round); beyond, by
#: groups of nearby particles (``improved_permutation``). One exact assignment finds what rounds of the
#: groups find a little at a time: N = 3,000 samples, 8 grouped rounds of ~1e-5 each, 12.2 s to
#: 2.5385698, exact (by emd then) 2 rounds, 11.0 s to 2.5383559. Repaired, an exact reassignment takes
#: 0.1-0.25 s at N = 3,000 (emd 2.7-3.6 s) and 1-2.8 s at N = 10,000, where the groups of four frames
#: took 1.3-4.3 s for 80-85 % of its gain: N = 10,000 samples 33.9 -> 27.0 s, 2.4928207 -> 2.4928088;
#: continuum Gaussian of 10,000 (M = 3, glassy L-BFGS; its periodic checks by groups,
#: ``PERIODIC_EXACT_PAIRS``) 60.6 -> 47.8 s, 2.9110988 -> 2.9110863 (same machine, back to back).
#: Periodic checks within a Newton solve run only up to ``EXACT_PAIRS`` (``optimizers._until_reassigned``:
#: there they interrupt solves from rough starts, whose Newton steps beyond that size are long; by emd,
#: checks every 10 Newton steps made a continuum Gaussian of 3,000 particles reach its 60 s limit); from
#: starts near the end, weighed checks at growing intervals run up to this bound, exactly
#: (``optimizers.CHECK_INTERVAL_GROWTH``).
REASSIGN_EXACT_PAIRS = 100_000_000
#: Periodic checks within a solve from a rough start (``optimizers._until_reassigned``; beyond
#: ``EXACT_PAIRS`` those of the glassy L-BFGS solves) are exact only up to this many pairs, by groups of
#: nearby particles beyond: exact checks of an unfinished L-BFGS iterate rearrange it more widely and
#: the glassy solve ended higher (continuum Gaussian of 10,000, M = 3 / M = 5: 2.9113139 / 2.9111006
#: against 2.9110988 / 2.9110520 with the groups; the round-end reassignments exact in both).
PERIODIC_EXACT_PAIRS = 9_000_000
#: From this many pairs (N = K ~ 700) up to ``EXACT_PAIRS`` an equally weighted permutation is found
#: exactly by repairing the multiscale one (``augmenting.repaired_permutation``), not by emd: the same
#: assignment, faster (2 cores, uniform sources; Gaussian targets apart from them and overlapping them;
#: best of three): 2-D N = 600 0.052 / 0.034 -> 0.034 / 0.030 s, N = 800 0.091 / 0.060 -> 0.050 / 0.042 s,
#: N = 1,000 0.154 / 0.098 -> 0.071 / 0.057 s, N = 2,000 0.71 / 0.52 -> 0.16 / 0.17 s; 3-D N = 1,000
#: 0.171 / 0.112 -> 0.126 / 0.100 s; below, emd (2-D N = 500: 0.036 against 0.046 s).
REPAIRED_FROM_PAIRS = 500_000
#: Leaves of the multiscale matching are matched exactly up to this many pairs; ...
LEAF_PAIRS = 250_000
#: ... up to this many where the plan is then repaired within emd's size: the repair fixes what smaller
#: leaves get wrong faster than emd solves larger ones (2-D, Gaussian targets apart from the uniform
#: sources / overlapping them, best of three: N = 1,000 0.082 / 0.065 -> 0.046 / 0.046 s, N = 2,000
#: 0.153 / 0.123 -> 0.113 / 0.078 s). Beyond emd's size the larger leaves stay: there the repair's time
#: grows with the plan's errors (N = 10,000 1.53 / 0.94 s with them, 2.28 / 1.05 s with these), and
#: the starts that are not repaired keep their plan.
REPAIRED_LEAF_PAIRS = 62_500
#: Groups of ``improved_permutation`` (reassignments beyond the exact plan's size) have at most this many
#: particles: N = 20,000 in 0.6 s here (groups of 500: 1.3 s, no better).
LEAF_PARTICLES = 250
#: Reassignments at a local solve's end beyond ``REASSIGN_EXACT_PAIRS`` cut their groups in this many
#: frames (``frame``). One frame's groups miss the crossings between them: on the multiscale start's
#: assignment at N = 3,000 (jittered; sources overlapping the target or apart from it) one frame found
#: 29-32 % of what the exact plan finds, four 80-84 % (0.3-0.4 s), 24 99 % (2 s, the exact plan's
#: time). N = 10,000 samples: 4 rounds, 22.4 s to 2.4929220 with one frame; 3 rounds, 21.5-23.0 s to
#: 2.4928218 with four (eight: 26.5 s, 2.4928156). Not in the periodic checks within a solve (the glassy
#: L-BFGS solves check every 150 iterations: four frames there made a continuum Gaussian of 10,000 take
#: 48.5 s, not 35.8 s).
REASSIGN_FRAMES = 4


#: emd's time grows with the plan's entries N K and with its nodes (N + K)^2: fitted here to 13 shapes
#: (uniform clouds; within 1.6x), 2.7e-7 (N K + NODE_WEIGHT (N + K)^2) seconds: 1,000 x 1,000 0.31 s,
#: 2,000 x 2,000 1.4 s, 1,000 x 4,000 1.6 s, 500 x 8,000 1.6 s, 49 x 5,000 0.54 s, 49 x 10,000 2.1 s,
#: 49 x 20,000 10.9 s, 100 x 40,000 22.7 s, 20,000 x 49 4.7 s.
NODE_WEIGHT = 0.074


def emd_affordable(n: int, k: int, pairs: int = EXACT_PAIRS) -> bool:
    """Whether emd's n x k plan costs at most what a square plan of ``pairs`` entries does, in memory
    (n k <= pairs) and in time (``NODE_WEIGHT``): on square plans the entries bound both; a plan of few
    sources and many points has few entries but many nodes (49 particles on 20,000 points drawn in the
    app: emd took 11 s, and the app's live W2^2 ran it every second)."""
    def work(a: float, b: float) -> float:
        return a * b + NODE_WEIGHT * (a + b) ** 2
    side = math.sqrt(pairs)
    return n * k <= pairs and work(n, k) <= work(side, side)


def _within(n: int, k: int, pairs: int, timed: bool) -> bool:
    """Whether emd takes the n x k plan: at most ``pairs`` entries, and with ``timed`` within their time."""
    return emd_affordable(n, k, pairs) if timed else n * k <= pairs


def exact_plan(a: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The exact optimal plan between sum_i a_i delta_{x_i} and sum_k b_k delta_{y_k} (squared costs)."""
    cost = ot.dist(x, y)
    return ot.emd(a, b, cost / max(float(cost.max()), 1e-300), numItermax=10_000_000)


def match(x: np.ndarray, y: np.ndarray, b: np.ndarray | None = None, exact_pairs: int = EXACT_PAIRS,
          repaired_pairs: int = 0, workers: int = 1, timed: bool = False) -> tuple[np.ndarray, float, bool]:
    """(images, plan cost, exact): where each source x_i (weight 1/N) goes under an optimal plan to the
    points y (weights b, uniform by default), i.e. the barycentric projection of the exact plan, or of
    the multiscale one when N K > ``exact_pairs``; the plan's cost sum_ik P_ik |x_i - y_k|^2 (W_2^2
    when exact, an upper bound otherwise); and whether the plan is the exact one. N equally weighted
    points for N sources (a plan that is a permutation) from ``REPAIRED_FROM_PAIRS`` up to
    ``exact_pairs``, and beyond up to ``repaired_pairs`` pairs: the multiscale permutation repaired to
    the exact one
    (``augmenting.repaired_permutation``; N = 3,000: 0.6 s where emd takes 1.8-3 s; N = 10,000: 2.8 s
    where emd would take 26 s and 2.4 GB). Diagnostics ask for that; starts do not: from the exact
    assignment glassy solves end higher than from the multiscale one, which their reassignments then
    improve (N = 3,000, continuum Gaussian: 2.9398841 in 10.4 s against 2.9397424 in 13.1 s; samples
    2.5383582 against 2.5383559, and at N = 10,000 2.4928116 against 2.4928088; continuum 10,000
    2.9113153 against 2.9110863; likewise at N = 1,000 the multiscale start would end at 2.5076666 in
    4.2 s where emd's ends at 2.5076701 in 2.1 s). The multiscale plan's leaves are disjoint: ``workers``
    threads solve them at once, with the same result (N = 10^4: 0.47 -> 0.24 s on two; N = 10^5, 256
    leaves: 4.6 -> 3.0 s). ``timed`` (diagnostics): emd's plans, the whole one and the leaves, only
    within their time as well (``emd_affordable``); starts take emd's plan up to ``exact_pairs``
    whatever its shape (49 particles on 20,000 points: 0.546545 from the exact plan, 0.547067 from the
    multiscale one)."""
    N, K = len(x), len(y)
    b = np.full(K, 1.0 / K) if b is None else np.asarray(b, dtype=float) / np.sum(b)
    permutation = K == N and bool(np.all(b == b[0]))
    within = _within(N, K, exact_pairs, timed)  # emd's size
    finite = bool(np.isfinite(x).all() and np.isfinite(y).all())  # (else emd's answer, NaN, as below that size)
    if within and not (permutation and finite and N * K >= REPAIRED_FROM_PAIRS):
        return _exact_match(x, y, b)
    # beyond emd's size, or a permutation repaired within it (there from smaller leaves)
    leaves: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    _split(x, np.arange(N), y, b * N, leaves, REPAIRED_LEAF_PAIRS if within else LEAF_PAIRS, timed)

    def matched(leaf: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[np.ndarray, float]:
        """The leaf's images and plan cost (in units of one source's mass)."""
        rows, points, mass = leaf
        plan = exact_plan(np.full(len(rows), 1.0 / len(rows)), mass / mass.sum(), x[rows], points)
        cost = len(rows) * float((plan * ot.dist(x[rows], points)).sum())
        return (plan @ points) / plan.sum(1, keepdims=True), cost
    images = np.empty_like(x, dtype=float)
    costs: list[float] = []
    for (rows, _, _), (leaf_images, cost) in zip(leaves, _mapped(matched, leaves, workers)):
        images[rows] = leaf_images
        costs.append(cost)
    if permutation and (within or N * K <= repaired_pairs):
        # equal masses stay whole through the cuts: each image is one of the points (to rounding)
        _, taken = scipy_spatial.cKDTree(y).query(images)
        if len(np.unique(taken)) == N:
            points = y[taken]
            points = points[augmenting.repaired_permutation(x, points)]
            return points, float(((x - points) ** 2).sum()) / N, True
    if within:  # repeated points: the images do not name one point each
        return _exact_match(x, y, b)
    return images, float(sum(costs)) / N, False


def _exact_match(x: np.ndarray, y: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, float, bool]:
    """``match``'s answer from the exact plan (emd)."""
    plan = exact_plan(np.full(len(x), 1.0 / len(x)), b, x, y)
    return (plan @ y) / plan.sum(1, keepdims=True), float((plan * ot.dist(x, y)).sum()), True


def _mapped(function: Callable[[T], R], items: list[T], workers: int) -> list[R]:
    """[function(item) for item in items], on up to ``workers`` threads (POT's emd releases the GIL)."""
    if workers > 1 and len(items) > 1:
        with ThreadPoolExecutor(min(workers, len(items)), thread_name_prefix="mfc-assign") as pool:
            return list(pool.map(function, items))
    return [function(item) for item in items]


def _split(x: np.ndarray, rows: np.ndarray, y: np.ndarray, mass: np.ndarray,
           leaves: list[tuple[np.ndarray, np.ndarray, np.ndarray]], leaf_pairs: int = LEAF_PAIRS,
           timed: bool = False) -> None:
    """Cut the matching of the sources x[rows] (mass 1 each) to the points y with masses ``mass`` (same
    total; masses in units of one source) into leaves of at most ``leaf_pairs`` pairs (``timed``: within
    the time of a square leaf of that many, ``emd_affordable``), appended to ``leaves`` as (rows, points,
    masses)."""
    n = len(rows)
    if _within(n, len(y), leaf_pairs, timed) or n <= 2:
        leaves.append((rows, y, mass))
        return
    both = np.vstack([x[rows], y])
    axis = int(np.argmax(both.max(0) - both.min(0)))
    order = rows[np.argsort(x[rows, axis], kind="stable")]
    left_rows, right_rows = order[: n // 2], order[n // 2:]
    need = float(len(left_rows))  # the points' mass that must go left
    by = np.argsort(y[:, axis], kind="stable")
    cum = np.cumsum(mass[by])
    cut = int(np.searchsorted(cum, need - 1e-9 * need))  # the point on the cut (shared)
    left_mass = mass[by[: cut + 1]].copy()
    right_mass = mass[by[cut:]].copy()
    taken = need - (cum[cut - 1] if cut > 0 else 0.0)
    left_mass[-1] = taken
    right_mass[0] = mass[by[cut]] - taken
    keep_left, keep_right = left_mass > 1e-12, right_mass > 1e-12
    _split(x, left_rows, y[by[: cut + 1]][keep_left], left_mass[keep_left], leaves, leaf_pairs, timed)
    _split(x, right_rows, y[by[cut:]][keep_right], right_mass[keep_right], leaves, leaf_pairs, timed)


def frame(k: int, dim: int) -> np.ndarray:
    """The k-th frame of ``improved_permutation``'s groups, a rotation (dim x dim): the identity for
    k = 0; in 2-D the rotation by pi times the fractional part of k (sqrt(5) - 1) / 2 (no angle repeats,
    and any first few spread evenly); in 3-D and beyond a rotation drawn at random, seeded by k (the
    same every run)."""
    if k == 0:
        return np.eye(dim)
    if dim == 2:
        angle = math.pi * ((k * (math.sqrt(5.0) - 1.0) / 2.0) % 1.0)
        return np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    q, r = np.linalg.qr(np.random.default_rng(k).standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))


def improved_permutation(a: np.ndarray, b: np.ndarray, leaf: int = LEAF_PARTICLES, workers: int = 1,
                         frames: int = 1) -> np.ndarray:
    """A permutation s with sum_i |a_i - b_s(i)|^2 <= sum_i |a_i - b_i|^2 (particle i, at a_i, takes
    the point b_s(i)), in O(N leaf) memory: the particles are cut recursively at the median of their
    points b along the widest coordinate into groups of at most ``leaf``, each group's points are
    reassigned among its particles by an exact OT plan (emd), then the same once more with groups cut
    by the particles' own coordinates a. No group can raise the cost (keeping its assignment is a
    feasible plan); crossings within a group are repaired, crossings between groups may stay. With
    ``frames`` > 1 both passes are repeated with the coordinates rotated (``frame``): groups cut along
    other directions take in crossings the first groups split. With ``leaf`` >= N: the exact OT
    assignment, repaired from the pairing i -> b_i (``augmenting.repaired_permutation``: O(N) memory;
    at N = 1,000 0.03-0.07 s where emd took 0.15-0.27 s). The groups of a pass are disjoint, so ``workers``
    threads solve them at once (POT's emd releases the GIL: 64 groups of 156, 0.16 -> 0.11 s on two),
    with the same result. In one dimension the exact assignment at any N, by sorting: for a convex cost
    of a - b the optimal matching is monotone (N = 2,500: emd took 1.8 s)."""
    if a.shape[1] == 1:
        perm = np.empty(len(a), dtype=np.int64)
        perm[np.argsort(a[:, 0], kind="stable")] = np.argsort(b[:, 0], kind="stable")
        return perm
    if len(a) <= leaf:
        return augmenting.repaired_permutation(a, b)
    perm = np.arange(len(a))
    # the first frame is the identity: a @ I is a, bitwise, so one frame cuts the groups as before
    rotations = [frame(k, a.shape[1]) for k in range(frames)]
    passes = [f for R in rotations for f in ((lambda R=R: b[perm] @ R), (lambda R=R: a @ R))]

    def reassigned(rows: np.ndarray) -> np.ndarray | None:
        """The group's new order of its points, or None where the exact plan does not lower its cost."""
        cost = 0.5 * ((a[rows][:, None, :] - b[perm[rows]][None, :, :]) ** 2).sum(-1)
        weights = np.full(len(rows), 1.0 / len(rows))
        plan = ot.emd(weights, weights, cost / max(float(cost.max()), 1e-300), numItermax=10_000_000)
        best = plan.argmax(1)
        if len(set(best.tolist())) == len(rows) and cost[np.arange(len(rows)), best].sum() < np.trace(cost):
            return perm[rows][best]
        return None

    for coordinates in passes:
        groups = _groups(coordinates(), np.arange(len(a)), leaf)
        for rows, points in zip(groups, _mapped(reassigned, groups, workers)):
            if points is not None:
                perm[rows] = points
    return perm


def _groups(points: np.ndarray, rows: np.ndarray, leaf: int) -> list[np.ndarray]:
    """``rows`` cut recursively at the median of ``points[rows]`` along its widest coordinate into
    groups of at most ``leaf``."""
    if len(rows) <= leaf:
        return [rows]
    spread = points[rows].max(0) - points[rows].min(0)
    order = rows[np.argsort(points[rows, int(np.argmax(spread))], kind="stable")]
    half = len(rows) // 2
    return _groups(points, order[:half], leaf) + _groups(points, order[half:], leaf)
