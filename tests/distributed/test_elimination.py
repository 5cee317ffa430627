"""Exact V by variable elimination: the quadratic closed form on sparse graphs, quadrature for n = 3."""
import pytest

from solver.distributed.elimination import eliminable, elimination_order, elimination_value
from solver.distributed.graphs import from_matrix, named_graph
from solver.distributed.model import Model
from solver.distributed.potentials import LogCoshK, LogCoshU, QuadraticK, QuadraticU
from solver.distributed.quadratic import gaussian_values
from solver.distributed.quadrature import value_quadrature


@pytest.mark.parametrize("kind,width", [("path", 1), ("tree", 1), ("star", 1), ("ring", 2)])
@pytest.mark.parametrize("n", [5, 12, 40])
def test_elimination_equals_the_closed_form(kind, width, n):
    """Quadratic U and K: the closed form (Gaussian integrals) to 1e-10 (measured: 4e-15; the trapezoid
    rule on a Gaussian integrand at 6 points per standard deviation errs by ~exp(-2 pi^2 36))."""
    m = Model(2.0, QuadraticU(0.5, 0.3), QuadraticK(1.5), named_graph(kind, n, weight=0.5))
    e = elimination_value(m)
    assert e.width == width
    assert e.V == pytest.approx(gaussian_values(m).V, abs=1e-10)
    assert e.V_err < 1e-10


def test_elimination_equals_tensor_quadrature_on_a_log_cosh_triangle():
    """n = 3 with every pair coupled (a cycle): the brute-force tensor quadrature, to 1e-10."""
    m = Model(1.0, LogCoshU(0.5, 1.0, 0.5, 0.3), LogCoshK(2.0), from_matrix([[0, 1, 2], [1, 0, 1], [2, 1, 0]]))
    assert elimination_value(m).V == pytest.approx(value_quadrature(m), abs=1e-10)


def test_what_can_be_eliminated():
    assert eliminable(named_graph("ring", 30)) and eliminable(named_graph("tree", 31))
    assert not eliminable(named_graph("complete", 5))
    assert not eliminable(named_graph("lattice", 16, rows=4))
    assert elimination_order(named_graph("star", 8))[1] == 1  # leaves first: one neighbour at a time
