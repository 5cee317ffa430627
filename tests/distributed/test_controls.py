"""Optimal controls: drift formulas and Monte Carlo costs against V and V_dstr."""
import time

import numpy as np
import pytest

from solver.distributed.cavi import cavi
from solver.distributed.controls import (GaussianDistributedDrift, GaussianFullInfoDrift, GridDistributedDrift,
                                         EliminationFullInfoDrift, mc_cost, simulate_paths)
from solver.distributed.elimination import elimination_value
from solver.distributed.graphs import named_graph
from solver.distributed.model import Model
from solver.distributed.potentials import LogCoshK, QuadraticK, QuadraticU
from solver.distributed.quadratic import gaussian_values

MODEL = Model(1.0, QuadraticU(1.0, 0.7), QuadraticK(2.0), named_graph("ring", 8))


def test_cole_hopf_elimination_drift_matches_closed_form_drift():
    """The full-information drift by elimination against (I + tau Q)^{-1}(b 1 - Q x) on a complete graph
    of 3 and a ring of 10, from t = 0 to T (tau -> 0 is where a fixed grid would fail)."""
    cases = [(Model(1.0, QuadraticU(1.0, 0.7), QuadraticK(2.0), named_graph("complete", 3)), 3),
             (Model(2.0, QuadraticU(0.5, 0.3), QuadraticK(2.0), named_graph("ring", 10, weight=0.5)), 10)]
    for m, n in cases:
        x = np.random.default_rng(0).standard_normal((6, n))
        closed, elim = GaussianFullInfoDrift.from_model(m), EliminationFullInfoDrift(m, q=24)
        for t in (0.0, 0.5 * m.T, 0.99 * m.T, m.T):
            # Laplace-centred Gauss-Hermite, 24 nodes per player: observed error 1e-9 at t = 0, 4e-13 after
            np.testing.assert_allclose(elim(t, x), closed(t, x), atol=1e-7)


def test_elimination_drift_converges_in_the_nodes_on_a_log_cosh_ring():
    m = Model(2.0, QuadraticU(0.5, 0.0), LogCoshK(2.0), named_graph("ring", 10, weight=0.5))
    x = np.random.default_rng(0).standard_normal((200, 10))
    reference = EliminationFullInfoDrift(m, q=40)(0.5, x)
    errors = [np.abs(EliminationFullInfoDrift(m, q=q)(0.5, x) - reference).max() for q in (12, 16, 24)]
    # observed 1e-3, 3e-5, 2e-8: spectral convergence; 16 nodes (used below) is 100x below a MC error bar
    assert errors[0] > errors[1] > errors[2] and errors[1] < 2e-4 and errors[2] < 1e-6


def test_elimination_drift_needs_an_eliminable_graph():
    m = Model(1.0, QuadraticU(1.0), LogCoshK(1.0), named_graph("complete", 5))
    with pytest.raises(ValueError, match="^graph: .*fix: "):
        EliminationFullInfoDrift(m)


def test_grid_foellmer_drift_matches_gaussian_formula():
    v = gaussian_values(MODEL)
    gauss = GaussianDistributedDrift(MODEL.T, np.full(8, v.mean), v.var_dstr)
    grid = GridDistributedDrift.from_cavi(MODEL, cavi(MODEL))
    x = np.random.default_rng(1).standard_normal((6, 8))
    for t in (0.0, 0.5, 0.99, 1.0):
        # 40 Gauss-Hermite nodes at tau = T and cubic interpolation on the grid: observed 4e-5
        np.testing.assert_allclose(grid(t, x), gauss(t, x), atol=2e-4)


def test_monte_carlo_costs_agree_with_values_after_bias_correction():
    v = gaussian_values(MODEL)
    full = mc_cost(MODEL, GaussianFullInfoDrift.from_model(MODEL), steps=32, paths=20000, seed=1)
    dstr = mc_cost(MODEL, GaussianDistributedDrift(MODEL.T, np.full(8, v.mean), v.var_dstr), steps=32,
                   paths=20000, seed=2)
    # 3 standard errors of the Richardson estimate (its O(dt^2) bias, ~1e-4, is far below se ~ 2.5e-3)
    assert abs(full.mean - v.V) <= 3 * full.se
    assert abs(dstr.mean - v.V_dstr) <= 3 * dstr.se
    # the CIs separate the two values (gap ~ 0.068 >> se), so the agreement is informative ...
    assert abs(full.mean - v.V_dstr) > 6 * full.se and abs(dstr.mean - v.V) > 6 * dstr.se
    # ... and the plain Euler estimate at dt = T/64 is off by more than 3 se: the O(dt) bias is real
    assert abs(full.raw_fine - v.V) > 3 * full.se


def test_paths_shape_and_start():
    t, X = simulate_paths(MODEL, GaussianFullInfoDrift.from_model(MODEL), steps=10, paths=3, seed=0)
    assert X.shape == (11, 3, 8) and np.all(X[0] == 0) and t[-1] == MODEL.T


def test_distributed_control_cost_on_a_log_cosh_ring_matches_V_dstr_and_exceeds_exact_V():
    """The issue's ring of 10 (log cosh, T = 2): the CAVI control's Monte Carlo cost agrees with the grid
    V_dstr within 3 standard errors (measured 1.6) and lies far above the exact V by elimination (25 se):
    the gap V_dstr - V = 0.047 the lab reports is the cost of not sharing information, seen in simulation."""
    m = Model(2.0, QuadraticU(0.5, 0.0), LogCoshK(2.0), named_graph("ring", 10, weight=0.5))
    r = cavi(m)
    cost = mc_cost(m, GridDistributedDrift.from_cavi(m, r), steps=32, paths=20000, seed=2)
    assert abs(cost.mean - r.V_dstr) <= 3 * cost.se
    assert cost.mean - elimination_value(m).V > 10 * cost.se


def test_full_information_control_cost_on_a_log_cosh_ring_matches_exact_V(measured):
    """The issue's ring of 10 (log cosh, T = 2): the full-information optimal control (Cole-Hopf drift by
    elimination) costs, in simulation, the exact V by elimination within 3 standard errors (measured
    -1.0 se) and lies far below V_dstr (measured 13.6 se): both ends of the gap are seen in simulation."""
    m = Model(2.0, QuadraticU(0.5, 0.0), LogCoshK(2.0), named_graph("ring", 10, weight=0.5))
    V, V_dstr = elimination_value(m).V, cavi(m).V_dstr
    clock = time.perf_counter()
    # 16 steps: the Richardson estimate moved by 5e-4 from 16 to 32 steps (se ~ 3.7e-3 at 5,000 paths)
    cost = mc_cost(m, EliminationFullInfoDrift(m, q=16), steps=16, paths=5000, seed=3)
    measured(f"full-information control on the log cosh ring of 10: cost {cost.mean:.5f} ± {cost.se:.5f} "
             f"(exact V {V:.7f}, V_dstr {V_dstr:.7f}), {time.perf_counter() - clock:.1f} s")
    assert abs(cost.mean - V) <= 3 * cost.se
    assert V_dstr - cost.mean > 6 * cost.se
