"""The shared quadratic structure of the control energy (``steering.quadratic_structure``): H, J, g and
Y0 reproduce the energy and the terminal states they stand for, for each dynamics whose particles move
independently (probed as particles of their own, or all at once under acceleration control)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import solver
from solver.dynamics.linear import LinearDynamics
from solver.objective import Objective
from solver.steering import PROBES, min_energy_variables, quadratic_structure

RNG = np.random.default_rng(5)
CASES = {
    "velocity 2-D": ({"kind": "velocity"}, {"points": RNG.uniform(0, 1, (6, 2)).tolist()}, 9),
    "acceleration 1-D": ({"kind": "acceleration"}, {"points": RNG.uniform(0, 1, (6, 1)).tolist(),
                                                   "velocities": RNG.normal(0, 1, (6, 1)).tolist()}, 8),
    "linear system": ({"kind": "linear", "A": [[0.3, 1.0], [0.2, -0.5]], "B": [[0.2], [1.0]]},
                      {"points": RNG.uniform(0, 1, (6, 2)).tolist()}, 12),
    # more unit vectors than one batch of probes: (M - 1) controls of one coordinate
    "linear system, M > PROBES": ({"kind": "linear", "A": [[0.0, 1.0], [-1.0, 0.0]], "B": [[0.0], [1.0]]},
                                  {"points": RNG.uniform(0, 1, (3, 2)).tolist()}, PROBES + 40),
}  # (with a drift coupling the particles the energy is no sum of identical blocks: not checked here)


def case_objective(case: str) -> Objective:
    """The objective of ``CASES[case]`` with a Gaussian target of the terminal states' dimension."""
    dynamics, source, M = CASES[case]
    target_dim = 2 * len(source["points"][0]) if dynamics["kind"] == "acceleration" else len(source["points"][0])
    return Objective(solver.problem_from_dict({"dynamics": dynamics, "source": source, "M": M, "target": {
        "kind": "gaussian", "mean": [1.0] * target_dim, "cov": 0.1}}))


@pytest.mark.parametrize("case", list(CASES))
def test_the_quadratic_structure_reproduces_the_energy_and_the_terminal_states(case):
    """At random variables x (every particle's block x_i), sum_i h |u_i|^2 = sum_i (x_i H x_i / 2 + g_i x_i
    + e_i(0)) and the terminal states are Y0_i + J x_i: exact for a quadratic energy and an affine
    terminal map, so to rounding (1e-10 relative: sums of ~V^2 products of O(1) numbers)."""
    objective = case_objective(case)
    problem = objective.problem
    H, J, g, Y0 = quadratic_structure(objective)
    N, V = g.shape
    x = torch.as_tensor(RNG.normal(0, 1, (N, V)))
    shaped = x.reshape(objective.variable_shape)
    u = objective.controls(objective.positions(shaped), shaped)
    energy = float(objective.h * (u * u).sum())
    zero = torch.zeros(objective.variable_shape, dtype=torch.float64)
    u0 = objective.controls(objective.positions(zero), zero)
    model = float(0.5 * ((x @ H) * x).sum() + (g * x).sum() + objective.h * (u0 * u0).sum())
    assert model == pytest.approx(energy, rel=1e-10)
    terminal = problem.dynamics.terminal(objective.positions(shaped), objective.h)
    assert torch.allclose(Y0 + x @ J.T, terminal, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", list(CASES))
def test_the_minimum_energy_map_solves_the_kkt_system(case):
    """x_i = o_i + A y (``minimum_energy_map``, from the factor of H alone) is the solution of the KKT
    system [[H, J^T], [J, 0]] [x_i; lambda_i] = [-g_i; y - Y0_i] solved whole: the same variables to
    1e-9 relative (both are backward stable; the condition of these systems is below 1e6)."""
    objective = case_objective(case)
    H, J, g, Y0 = quadratic_structure(objective)
    V, D = H.shape[0], J.shape[0]
    y = torch.as_tensor(RNG.normal(0, 1, (g.shape[0], D)))
    kkt = torch.zeros(V + D, V + D, dtype=torch.float64)
    kkt[:V, :V], kkt[:V, V:], kkt[V:, :V] = H, J.T, J
    whole = torch.linalg.solve(kkt, torch.cat([-g, y - Y0], dim=1).T).T[:, :V]
    x = min_energy_variables(objective, y.numpy()).reshape(g.shape)
    assert torch.allclose(x, whole, rtol=1e-9, atol=1e-9 * float(whole.abs().max()))
    assert torch.allclose(Y0 + x @ J.T, y, rtol=1e-10, atol=1e-10)  # it ends where it is asked to


@pytest.mark.parametrize("M", [2, 3, 5, 17, 64, 257])
def test_linear_states_by_the_doubling_scan_follow_the_step_recursion(M):
    """``LinearDynamics.positions`` (a doubling scan: ceil(log2 M) batched products) against the
    definition, y_1 = source, y_{j+1} = Ad y_j + Bd u_j step by step, on a non-normal, damped system and
    non-powers of two: equal to 1e-13 of the largest state (the two orders of summation differ by a few
    roundings per term, ~1e-14 measured at M = 257)."""
    dynamics = LinearDynamics(np.array([[0.3, 1.0], [-0.7, -0.2]]), np.array([[0.2, 0.0], [1.0, 0.5]]))
    h = 1.0 / (M - 1)
    Ad, Bd = (torch.as_tensor(a) for a in dynamics.step_matrices(h))
    source = torch.as_tensor(RNG.normal(0, 1, (7, 2)))
    controls = torch.as_tensor(RNG.normal(0, 1, (7, M - 1, 2)))
    states = [source]
    for j in range(M - 1):
        states.append(states[-1] @ Ad.T + controls[:, j] @ Bd.T)
    expected = torch.stack(states, dim=1)
    scanned = dynamics.positions(source, controls, h)
    assert scanned.shape == expected.shape
    assert float((scanned - expected).abs().max()) <= 1e-13 * float(expected.abs().max())
