"""Exact assignments repaired from a pairing (``solver.augmenting``) against SciPy's
``linear_sum_assignment`` on the dense cost matrix (an independent exact solver)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from solver import augmenting
from solver.augmenting import augment, column_potentials, integrated_potentials, repaired_permutation


def squared_costs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


def optimum(a: np.ndarray, b: np.ndarray) -> float:
    C = squared_costs(a, b)
    rows, cols = linear_sum_assignment(C)
    return float(C[rows, cols].sum())


def cost(a: np.ndarray, b: np.ndarray, perm: np.ndarray) -> float:
    return float(((a - b[perm]) ** 2).sum())


@pytest.mark.parametrize("dim", [2, 3, 4])
def test_repaired_permutations_are_optimal_from_good_and_bad_pairings(dim):
    """From the nearly optimal pairing a solve ends with (the optimum, jittered) and from a random one
    (far from optimal: the potentials' start is poor, the paths long), the result is a permutation
    whose cost is the optimum. Tolerance: 1e-9 relative, the rounding of sums of N squared distances
    of O(1) (two exact solvers may break ties differently, never at a different cost)."""
    rng = np.random.default_rng(dim)
    for trial in range(40):
        n = int(rng.integers(2, 80))
        a = rng.normal(size=(n, dim))
        b = rng.normal(size=(n, dim)) * rng.uniform(0.2, 2.0) + rng.normal(size=dim)
        best = optimum(a, b)
        _, cols = linear_sum_assignment(squared_costs(a, b))
        near = b[cols] + 1e-3 * rng.normal(size=b.shape)
        for points in (near, b[rng.permutation(n)]):
            perm = repaired_permutation(a, points)
            assert sorted(perm.tolist()) == list(range(n))
            assert cost(a, points, perm) == pytest.approx(optimum(a, points), rel=1e-9)
        assert optimum(a, b) == best


def test_ties_and_repeated_points_still_give_an_optimal_permutation():
    """Points on a coarse lattice (many equal costs) and repeated points: the result is a permutation
    (no column taken twice) at the optimal cost; on a grid matched to itself shifted by a lattice step,
    to its exact cost, the shift's (tolerance: rounding of 100 O(1) squares)."""
    rng = np.random.default_rng(7)
    for trial in range(30):
        n = int(rng.integers(2, 50))
        a = np.round(rng.normal(size=(n, 2)), 1)
        b = np.round(rng.normal(size=(n, 2)), 0)
        b[: n // 3] = b[0]  # a third of the points at one place
        perm = repaired_permutation(a, b)
        assert sorted(perm.tolist()) == list(range(n))
        assert cost(a, b, perm) == pytest.approx(optimum(a, b), rel=1e-9, abs=1e-12)
    grid = np.array([[i, j] for i in range(10) for j in range(10)], dtype=float)
    shifted = grid + [0.0, 1.0]
    perm = repaired_permutation(grid, shifted[::-1].copy())
    assert cost(grid, shifted[::-1], perm) == pytest.approx(100.0, rel=1e-12)


def test_augmenting_from_zero_potentials_is_exact_and_keeps_them_feasible():
    """The certificate itself: from zero potentials (the worst start: nothing priced) every particle
    is inserted along a shortest path over all pairs; the result is optimal and the final potentials
    satisfy c_ij - u_i - v_j >= 0 everywhere with equality on the assignment (tolerance: 1e-12 of the
    largest cost, rounding of the potentials' updates); every row's u rose."""
    rng = np.random.default_rng(3)
    n = 60
    a, b = rng.uniform(size=(n, 2)), rng.normal(size=(n, 2))
    u = np.zeros(n)
    v = column_potentials(a, b, u)
    col4row = np.full(n, -1)
    row4col = np.full(n, -1)
    changed = np.zeros(n, dtype=bool)
    indptr, indices = np.arange(n + 1) * n, np.tile(np.arange(n), n)
    scans = augment(a, b, indptr, indices, u, v, col4row, row4col, np.arange(n), changed)
    assert scans >= n and changed.all()
    C = squared_costs(a, b)
    reduced = C - u[:, None] - v[None, :]
    assert reduced.min() >= -1e-12 * C.max()
    assert np.abs(reduced[np.arange(n), col4row]).max() <= 1e-12 * C.max()
    assert (row4col[col4row] == np.arange(n)).all()
    assert C[np.arange(n), col4row].sum() == pytest.approx(optimum(a, b), rel=1e-12)


def test_pairs_outside_the_candidates_are_priced_and_taken(monkeypatch):
    """With one candidate per particle (its own point and its nearest) the optimal assignment needs
    pairs outside the candidates (a cloud shifted by far more than its spacing, paired in reverse):
    the pricing rounds find them, and the result is still the optimum (tolerance as above)."""
    monkeypatch.setattr(augmenting, "CANDIDATES", 1)
    rng = np.random.default_rng(11)
    a = rng.uniform(size=(200, 2))
    b = (a + [0.3, 0.0])[::-1].copy()
    perm = repaired_permutation(a, b)
    assert cost(a, b, perm) == pytest.approx(optimum(a, b), rel=1e-9)
    assert cost(a, b, perm) == pytest.approx(200 * 0.09, rel=1e-9)  # the shift itself is optimal


def test_integrated_potentials_price_an_optimal_pairing_nearly_tight():
    """For a smooth optimal map (a shifted and stretched cloud) the integrated Brenier potential
    makes the column potentials leave most pairs tight or nearly so: the start the repair counts on.
    Measured: every pair's reduced cost below 1e-3 of the largest cost (a first-order integral of a
    map whose derivative is constant); fails if the potential's sign or factor 2 is wrong."""
    rng = np.random.default_rng(5)
    a = rng.uniform(size=(400, 2))
    b = a * [2.0, 0.5] + [3.0, 1.0]  # the gradient of a convex quadratic: the optimal map
    u = integrated_potentials(a, b)
    v = column_potentials(a, b, u)
    own = ((a - b) ** 2).sum(1)
    assert (own - u - v).max() <= 1e-3 * own.max()
    assert (repaired_permutation(a, b) == np.arange(400)).all()


def test_non_finite_points_are_refused_with_a_message():
    a = np.zeros((3, 2))
    b = np.array([[0.0, 1.0], [np.nan, 0.0], [1.0, 1.0]])
    with pytest.raises(ValueError, match="finite"):
        repaired_permutation(a, b)
