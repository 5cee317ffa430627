"""Closed forms of the quadratic case against independent computations (1e-10 relative)."""
import numpy as np
import pytest

from solver.distributed import bounds
from solver.distributed.deterministic import value_det
from solver.distributed.graphs import from_matrix, named_graph
from solver.distributed.model import Model
from solver.distributed.potentials import QuadraticK, QuadraticU
from solver.distributed.quadratic import gaussian_values
from solver.distributed.quadrature import value_quadrature

A, B, KAPPA, T = 0.8, 0.6, 1.3, 1.5
SHIFT = B * B * T / (2 * (1 + A * T))


def model(g, T=T):
    return Model(T, QuadraticU(A, B), QuadraticK(KAPPA), g)


def v_from_spectrum(lam, n):
    """n V = (1/2) sum log(1 + T (a + kappa lam_k(L))) - n b^2 T / (2(1 + aT)), lam_k analytic."""
    return 0.5 * np.sum(np.log1p(T * (A + KAPPA * lam))) / n - SHIFT


@pytest.mark.parametrize("kind,w,spectrum", [
    ("complete", 1 / 1000, lambda n: np.r_[0.0, np.full(n - 1, 1.0)]),   # L = (I - 11^T/n), w = 1/n
    ("ring", 1.0, lambda n: 2 - 2 * np.cos(2 * np.pi * np.arange(n) / n)),
    ("star", 1.0, lambda n: np.r_[0.0, np.ones(n - 2), float(n)]),
])
def test_values_n1000_against_analytic_spectra(kind, w, spectrum):
    n = 1000
    g = named_graph(kind, n, weight=w)
    v = gaussian_values(model(g))
    d = g.degrees
    exact_V = v_from_spectrum(spectrum(n) * (n * w if kind == "complete" else 1.0), n)
    exact_Vdstr = 0.5 * np.mean(np.log1p(T * (A + KAPPA * d))) - SHIFT
    exact_Vdet = 0.5 * T * (A + KAPPA * d.mean()) - SHIFT
    # 1e-10: the acceptance tolerance; both sides are O(n) sums in float64 (~1e-13 rounding)
    assert v.V == pytest.approx(exact_V, rel=1e-10)
    assert v.V_dstr == pytest.approx(exact_Vdstr, rel=1e-10)
    assert v.V_det == pytest.approx(exact_Vdet, rel=1e-10)


def test_sparse_lu_path_matches_dense():
    g = named_graph("regular", 2600, d=4, seed=2, normalize_mode="row")
    lam = np.linalg.eigvalsh(g.W.toarray() * -1 + np.diag(g.degrees))
    # sparse LU log-det (n > 2500) vs dense eigenvalues: 1e-10 acceptance tolerance
    assert gaussian_values(model(g)).V == pytest.approx(v_from_spectrum(lam, 2600), rel=1e-10)


@pytest.mark.parametrize("M", [[[0, 1.0], [1.0, 0]], [[0, 1, 0.5], [1, 0, 2], [0.5, 2, 0]]])
def test_V_against_quadrature(M):
    m = model(from_matrix(M))
    # trapezoid rule on analytic Gaussian integrands converges super-algebraically: 1e-10 holds with margin
    assert gaussian_values(m).V == pytest.approx(value_quadrature(m), rel=1e-10)


@pytest.mark.parametrize("g", [named_graph("ring", 30), named_graph("star", 25, normalize_mode="row"),
                               named_graph("erdos_renyi", 60, p=0.1, seed=3), named_graph("lattice", 36)])
def test_V_det_against_direct_optimization(g):
    m = model(g)
    # L-BFGS on a strongly convex quadratic with gtol 1e-13: 1e-10 relative
    assert gaussian_values(m).V_det == pytest.approx(value_det(m)[0], rel=1e-10)


def test_product_gaussian_objective_at_closed_form_optimum():
    """n V_dstr = min over N(m_i, s_i): 1/2 m^T Lam m - b 1^T m + 1/2 sum(Lam_ii s_i - 1 - log s_i + log T)."""
    g = named_graph("erdos_renyi", 40, p=0.2, seed=5)
    m = model(g)
    v = gaussian_values(m)
    L = np.diag(g.degrees) - g.W.toarray()
    Lam = A * np.eye(40) + KAPPA * L + np.eye(40) / T

    def objective(mu, s):
        return (0.5 * mu @ Lam @ mu - B * mu.sum() + 0.5 * np.sum(np.diag(Lam) * s - 1 - np.log(s) + np.log(T))) / 40

    mu0, s0 = np.full(40, v.mean), v.var_dstr
    assert objective(mu0, s0) == pytest.approx(v.V_dstr, rel=1e-12)  # same formula, rounding only
    rng = np.random.default_rng(0)
    for _ in range(20):  # any perturbation increases the (strictly convex) objective
        assert objective(mu0 + 1e-3 * rng.standard_normal(40), s0 * np.exp(1e-3 * rng.standard_normal(40))) > v.V_dstr
    # Hadamard gap: V_dstr - V = (1/2n)(sum log Lam_ii - log det Lam)
    hadamard = (np.sum(np.log(np.diag(Lam))) - np.linalg.slogdet(Lam)[1]) / 80
    assert v.V_dstr - v.V == pytest.approx(hadamard, rel=1e-10)


def test_bounds_formulas_and_orderings():
    d = 6
    g = named_graph("regular", 600, d=d, seed=1, normalize_mode="row")
    m = model(g)
    # slide: d-regular, J = A/d gives tr(J^2) = n/d and RHS = T^2 kappa^2 / (2d)
    assert bounds.bound(m) == pytest.approx(T**2 * KAPPA**2 / (2 * d), rel=1e-12)
    assert bounds.bound_trace(m) == pytest.approx(bounds.bound(m), rel=1e-12)
    # V_det bound with diagonal terms, by the definition (1/2) n T^2 sum_ij ||d_ij G||^2 on a small dense case
    small = model(named_graph("erdos_renyi", 12, p=0.4, seed=2))
    W = small.graph.W.toarray()
    H = (np.diag(A + KAPPA * W.sum(1)) - KAPPA * W) / 12  # Hessian of G (constant)
    assert bounds.bound_det(small) == pytest.approx(0.5 * 12 * T**2 * np.sum(H**2), rel=1e-12)
    assert bounds.bound(small) == pytest.approx(12 * T**2 * np.sum(np.triu(H, 1) ** 2), rel=1e-12)
    for mm in (m, small):
        v = gaussian_values(mm)
        assert 0 <= v.V_dstr - v.V <= bounds.bound(mm)
        assert 0 <= v.V_det - v.V <= bounds.bound_det(mm)
        assert v.V_dstr <= v.V_det


def test_row_sums_one_gives_mean_field_and_asymmetric_does_not():
    for g in (named_graph("regular", 200, d=3, seed=0, normalize_mode="row"),
              named_graph("complete", 50, normalize_mode="1/(n-1)"), named_graph("lattice", 49, normalize_mode="row")):
        v = gaussian_values(model(g))
        assert v.V_dstr == pytest.approx(v.V_mf, rel=1e-13)  # identical formula when d_i = 1; rounding only
    star = gaussian_values(model(named_graph("star", 20, normalize_mode="row")))
    # rows of J sum to 1 but W = (J + J^T)/2 does not: Jensen gives V_dstr < V_mf strictly
    assert star.V_dstr < star.V_mf - 1e-3
