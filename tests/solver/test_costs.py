"""Control and state costs: closed forms and exact gradients of the whole objective."""
import numpy as np
import pytest
import torch

from solver import problem_from_dict
from solver.costs import PiecewiseCost, PowerCost, QuadraticInteraction
from solver.objective import Objective


def test_control_costs_of_assumption_2_1():
    u = torch.tensor([[0.3, 0.4], [1.2, 1.6]], dtype=torch.float64)  # |u| = 0.5 and 2
    assert PowerCost(3.0)(u).tolist() == pytest.approx([0.125, 8.0], rel=1e-14)
    assert PiecewiseCost(3.0)(u).tolist() == pytest.approx([0.5 / 3, 8.0 / 3], rel=1e-14)


def test_quadratic_interaction_equals_the_double_sum():
    y = torch.randn(7, 3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    dense = sum(0.5 * ((y[:, None, j] - y[None, :, j]) ** 2).sum(-1).mean() for j in range(3))
    assert float(QuadraticInteraction(1.0, 2).mean_field(y)) == pytest.approx(float(dense), rel=1e-12)


def test_mean_attraction_drift_costs_nothing_along_its_own_flow():
    """y_{j+1} = y_j + h F(y_j): the control u = (y_{j+1} - y_j)/h - F(y_j) vanishes (eq. 49 with drift)."""
    rng = np.random.default_rng(0)
    y0 = rng.normal(size=(6, 2))
    p = problem_from_dict({"dynamics": {"kind": "velocity", "drift": {"kind": "mean_attraction", "strength": 2.0}},
                           "source": {"points": y0.tolist()},
                           "target": {"kind": "gaussian", "mean": [0, 0], "cov": 1.0}, "M": 6})
    path = [y0]
    for _ in range(5):
        path.append(path[-1] - p.h * 2.0 * (path[-1] - path[-1].mean(0)))
    pos = torch.as_tensor(np.stack(path, 1))
    obj = Objective(p)
    assert float(obj.kinetic(pos, obj.variables_from_positions(pos))) < 1e-28


def test_objective_gradient_with_every_term_is_exact():
    """All terms at once (drift, p = 3, obstacles, both potentials, both interactions, mixture target):
    autograd's gradient against central finite differences (torch.autograd.gradcheck)."""
    rng = np.random.default_rng(1)
    p = problem_from_dict({
        "dynamics": {"kind": "velocity", "drift": {"kind": "mean_attraction", "strength": 0.5}},
        "source": {"points": rng.uniform(0, 1, (8, 2)).tolist()},
        "target": {"kind": "mixture", "components": [{"weight": 1, "mean": [2, 2], "cov": 0.2},
                                                     {"weight": 1, "mean": [2, 0], "cov": 0.1}]},
        "obstacles": [{"center": [1, 1], "radius": 0.6}], "M": 4, "p": 3, "eps": 0.1, "delta": 0.3,
        "potential": [{"kind": "quadratic", "center": [1, 0], "weight": 0.3},
                      {"kind": "gaussian", "center": [1.5, 1.5], "height": 2.0, "width": 0.3}],
        "interaction": [{"kind": "gaussian", "strength": 0.5, "width": 0.2}, {"kind": "quadratic", "strength": 0.1}]})
    obj = Objective(p)
    x = torch.as_tensor(rng.uniform(0, 2, obj.variable_shape)).requires_grad_(True)
    e = obj.energies(x.detach())
    assert float(e["obstacle"]) > 0 and float(e["interaction"]) != 0
    assert torch.autograd.gradcheck(obj, (x,), eps=1e-6, atol=1e-5)
