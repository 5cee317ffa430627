"""Trust-region Newton in full trajectories stops a particle's step where it would enter an obstacle
(``trust_region.entering_fractions``): outside an obstacle the penalty's Hessian is zero, so the model
cannot see the obstacle a step crosses into. The fraction is checked against the closed-form crossing of
a circle, and along a whole solve no accepted step carries a point from outside into an obstacle."""
from __future__ import annotations

import math

import pytest
import torch

from solver import problem_from_dict
from solver.objective import Objective
from solver.optimizers import OBSTACLE_SMOOTHING, _structured_newton
from solver.trust_region import ENTERING_BAND, entering_fractions

DISC = {"center": [1.0, 0.0], "radius": 0.3}


def straight(objective: Objective) -> torch.Tensor:
    """Variables of straight paths from each source to (2, y_source)."""
    p = objective.problem
    t = torch.linspace(0.0, 1.0, p.M, dtype=torch.float64)[None, :, None]
    src = objective.source
    end = torch.stack([torch.full_like(src[:, 0], 2.0), src[:, 1]], 1)
    return objective.variables_from_positions(src[:, None, :] + t * (end - src)[:, None, :])


def test_a_step_into_a_disc_stops_at_the_edge_of_its_band():
    spec = {"source": {"points": [[0.0, 2.0], [0.0, -2.0]]}, "target": {"kind": "particles",
            "points": [[2.0, 2.0], [2.0, -2.0]]}, "obstacles": [DISC], "eps": 0.1, "M": 3}
    problem = problem_from_dict(spec)
    tau = OBSTACLE_SMOOTHING * DISC["radius"] ** 2
    objective = Objective(problem, obstacle_smoothing=tau)
    x = straight(objective)  # paths at y = +-2, far from the disc
    # particle 0's middle point heads straight for the centre (1, 0) and would end at (1, 0.1), inside;
    # particle 1's middle point moves 1.0 along the x axis, staying far outside
    move = torch.tensor([0.0, 0.1 - 2.0], dtype=torch.float64)
    positions_step = torch.zeros_like(objective.positions(x))
    positions_step[0, 1] = move
    positions_step[1, 1] = torch.tensor([1.0, 0.0], dtype=torch.float64)
    step = objective.variables_from_positions(objective.positions(x) + positions_step) - x
    fractions = entering_fractions(objective, x, step)
    assert fractions is not None and fractions[1] == 1.0
    # the point enters the band's first ENTERING_BAND where r^2 - |y - c|^2 = ENTERING_BAND tau
    crossing = (2.0 - math.sqrt(DISC["radius"] ** 2 - ENTERING_BAND * tau)) / 1.9
    # 30 bisections of the unit interval: 1e-9; the point stops on the outer side of the crossing
    assert crossing - 2e-9 <= float(fractions[0]) <= crossing
    # a step that stays outside every obstacle is not stopped
    assert entering_fractions(objective, x, 0.5 * step) is None


@pytest.mark.parametrize("dynamics", ["velocity", "acceleration"])
def test_no_accepted_newton_step_carries_a_point_into_an_obstacle(dynamics):
    # 30 particles heading straight through two discs: L-BFGS, then Newton on the structured system
    # (under acceleration control the positions are affine in the variables too, through the velocities)
    g = torch.Generator().manual_seed(3)
    src = (torch.rand(30, 2, generator=g, dtype=torch.float64) * 0.6).tolist()
    tgt = (torch.rand(30, 2, generator=g, dtype=torch.float64) * 0.6 + torch.tensor([2.0, 0.0])).tolist()
    spec = {"source": {"points": src}, "target": {"kind": "particles", "points": tgt}, "eps": 0.01, "M": 6,
            "obstacles": [{"center": [1.3, 0.3], "radius": 0.25}, {"center": [0.8, 0.6], "radius": 0.15}],
            "dynamics": {"kind": dynamics}}
    problem = problem_from_dict(spec)
    tau = problem.obstacles.smoothing(OBSTACLE_SMOOTHING)
    objective = Objective(problem, obstacle_smoothing=tau)
    level = problem.obstacles.weight * ENTERING_BAND ** 2 * tau / 2  # the band's hinge at ENTERING_BAND tau
    steps = list(_structured_newton(objective, straight(objective), problem.optimizer, "t", 0, 0))
    newton = [s for s in steps if s.phase.endswith("/newton")]
    assert len(newton) > 5 and newton[-1].status == "converged"
    # the deepest a point outside before an iteration lies after it, in multiples of the stopping level:
    # 1 up to rounding (the penalty there, r^2 - |y - c|^2 at 1e-2 tau, is a difference of terms 1e5
    # times larger, and the crossing was found on the particle's rows alone: measured 1 + 1e-7); without
    # the rule, points entered to 800-2,700 times the level and Newton took 8,123 iterations, not 272
    deepest = 0.0
    for before, after in zip(newton, newton[1:]):
        free = torch.cat(objective.obstacle_terms(objective.positions(before.variables)), 1) <= 0
        deepest = max(deepest, float(torch.cat(objective.obstacle_terms(objective.positions(after.variables)), 1)[free].max()) / level)
    assert deepest <= 1 + 1e-6
