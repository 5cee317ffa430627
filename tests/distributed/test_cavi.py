"""Grid CAVI: equal to closed forms on quadratic cases, to the mean-field value when rows sum to 1,
and 0 <= V_dstr - V <= bound on random convex cases."""
import numpy as np
import pytest

from solver.distributed import bounds
from solver.distributed.cavi import cavi, mean_field_value
from solver.distributed.graphs import from_matrix, named_graph
from solver.distributed.model import Model
from solver.distributed.potentials import LogCoshK, LogCoshU, QuadraticK, QuadraticU
from solver.distributed.quadratic import gaussian_values
from solver.distributed.quadrature import value_quadrature


@pytest.mark.parametrize("g", [named_graph("ring", 10), named_graph("star", 9, normalize_mode="row"),
                               named_graph("regular", 40, d=3, seed=1), named_graph("complete", 12, normalize_mode="1/n"),
                               named_graph("erdos_renyi", 30, p=0.2, seed=4)])
def test_cavi_equals_closed_form(g):
    m = Model(1.2, QuadraticU(0.7, 0.9), QuadraticK(1.5), g)
    v, r = gaussian_values(m), cavi(m)
    assert r.converged
    # 1e-9: acceptance tolerance; trapezoid error on the grid is ~exp(-2 pi^2 36) and CAVI stops at 1e-14
    assert r.V_dstr == pytest.approx(v.V_dstr, rel=1e-9)
    np.testing.assert_allclose(r.variances, v.var_dstr, rtol=1e-9)
    np.testing.assert_allclose(r.means, v.mean, rtol=1e-9)


@pytest.mark.parametrize("K", [LogCoshK(2.0), QuadraticK(2.0)])
def test_row_sums_one_equals_mean_field_value(K):
    U = LogCoshU(0.5, 1.0, 0.8, 0.2)
    vbar = mean_field_value(1.0, U, K)
    for g in (named_graph("ring", 12, normalize_mode="row"), named_graph("regular", 20, d=4, seed=2, normalize_mode="row"),
              named_graph("lattice", 16, normalize_mode="row")):
        # two independent fixed-point solvers stopped at 1e-14 in free energy: 1e-9 relative
        assert cavi(Model(1.0, U, K, g)).V_dstr == pytest.approx(vbar, rel=1e-9)
    # not row sums 1 (ring with unit weights, degree 2): strictly different from V_bar
    assert cavi(Model(1.0, U, K, named_graph("ring", 12))).V_dstr > vbar + 1e-3


def test_random_convex_cases_satisfy_the_theorem():
    rng = np.random.default_rng(11)
    for _ in range(6):
        M = np.triu(rng.uniform(0, 2, (3, 3)), 1)
        U = LogCoshU(rng.uniform(0, 1.5), rng.uniform(0, 2), rng.uniform(-1, 1), rng.uniform(-1, 1))
        m = Model(rng.uniform(0.3, 2.0), U, LogCoshK(rng.uniform(0.2, 2.5)), from_matrix(M + M.T))
        gap = cavi(m).V_dstr - value_quadrature(m)
        assert bounds.is_convex(m)
        # both sides accurate to ~1e-12, so the inequalities are checked with 1e-10 slack
        assert -1e-10 <= gap <= bounds.bound(m) + 1e-10
        assert gap > 1e-4  # the coupled case has a genuine gap (the test is not vacuous)
