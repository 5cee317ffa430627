"""AIS within 3 standard errors of quadrature (n = 3) and of the exact quadratic twin (n = 20)."""

from solver.distributed.ais import ais_value
from solver.distributed.cavi import cavi
from solver.distributed.graphs import from_matrix, named_graph
from solver.distributed.model import Model
from solver.distributed.potentials import LogCoshK, LogCoshU, QuadraticK, QuadraticU
from solver.distributed.quadratic import gaussian_values
from solver.distributed.quadrature import value_quadrature


def test_ais_n3_logcosh_against_quadrature():
    m = Model(1.0, LogCoshU(0.5, 1.0, 0.5, 0.3), LogCoshK(2.0), from_matrix([[0, 1, 2], [1, 0, 1], [2, 1, 0]]))
    r = cavi(m)
    a = ais_value(m, r.means, r.variances, particles=2000, temperatures=200, seed=3)
    exact = value_quadrature(m)
    assert abs(a.V - exact) <= 3 * a.V_se  # 3 standard errors (delta-method se; bias ~ se^2 is negligible)
    assert a.V_se < 5e-3 * abs(exact)  # the error bar is tight (0.3% here), so the check above has teeth
    assert abs(r.V_dstr - exact) > 10 * a.V_se  # AIS resolves V from V_dstr


def test_ais_quadratic_twin_n20():
    m = Model(1.0, QuadraticU(0.5, 0.7), QuadraticK(2.0), named_graph("ring", 20))
    r = cavi(m)
    a = ais_value(m, r.means, r.variances, particles=2000, temperatures=200, seed=5)
    v = gaussian_values(m)
    assert abs(a.V - v.V) <= 3 * a.V_se  # 3 standard errors of the exact closed form
    assert a.V_se < 0.1 * (v.V_dstr - v.V)  # error bar small next to the gap V_dstr - V
