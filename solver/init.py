"""Initial trajectories.

* ``paper`` (eqs. 56-57): every terminal point at the target's centre of mass, straight lines from
  the source to it.
* ``ot``: minimum-energy trajectories (``solver.steering``; straight lines under velocity control) to
  an exact optimal-transport assignment (POT's emd) of the source states to the target (its particles,
  or a quasi-random quantization of a continuum target): particle i heads to the barycentric projection
  N sum_k P_ik w_k of its row of the plan. For equal-size uniform particle targets this is the discrete
  OT map itself.
* ``source``: particles stay put.
* an explicit (N, M, d) array of positions.
"""
from __future__ import annotations

import numpy as np
import ot
import torch

from .objective import DTYPE, Objective
from .problem import Problem

#: Largest N x K plan for which the "ot" initialization runs emd (memory and time stay small).
OT_MAX_ENTRIES = 25_000_000


def straight_lines(start: np.ndarray, end: np.ndarray, M: int) -> np.ndarray:
    """Positions (N, M, d) moving at constant speed from ``start`` (t = 0) to ``end`` (t = 1)."""
    t = np.linspace(0.0, 1.0, M)[None, :, None]
    return (1.0 - t) * start[:, None, :] + t * end[:, None, :]


def source_states(problem: Problem) -> np.ndarray:
    """Initial states in the space of the terminal constraint (x, or (x, v) for acceleration)."""
    if problem.dynamics.kind == "acceleration":
        return np.hstack([problem.source, problem.dynamics.source_velocities])
    return problem.source


def ot_available(problem: Problem) -> bool:
    """Whether the exact plan of the "ot" start fits in memory and time."""
    return problem.N * len(problem.target.quantization(problem.N, problem.seed)[0]) <= OT_MAX_ENTRIES


def ot_terminal_states(objective: Objective) -> np.ndarray:
    """Barycentric projection of the exact OT plan from the source states (weights 1/N) onto the
    target's points, for the cost of steering a particle to a point (``steering_cost``: the squared
    distance under velocity control): particle i heads to N sum_k P_ik w_k."""
    from .steering import steering_cost

    p = objective.problem
    pts, w = p.target.quantization(p.N, p.seed)
    cost = steering_cost(objective, pts)
    plan = ot.emd(np.full(p.N, 1.0 / p.N), w, cost / cost.max(), numItermax=10_000_000)
    return (plan @ pts) / plan.sum(1, keepdims=True)


def paths_to(objective: Objective, terminal: np.ndarray) -> torch.Tensor:
    """Variables of trajectories ending at the given terminal states: minimum-energy steering, or
    straight lines in position when a particle-dependent drift couples the particles."""
    from .steering import min_energy_variables

    p = objective.problem
    if getattr(p.dynamics, "drift", None) is None:
        return min_energy_variables(objective, terminal)
    pos = straight_lines(p.source, terminal[:, : p.source.shape[1]], p.M)
    return objective.variables_from_positions(torch.as_tensor(pos, dtype=DTYPE))


def paper_positions(problem: Problem) -> np.ndarray:
    """Eqs. (56)-(57): straight lines from each source point to the target's centre of mass (under
    acceleration control, from the second point x_0 + h v_0, which is fixed)."""
    d = problem.source.shape[1]
    centre = np.broadcast_to(problem.target.mean()[:d], (problem.N, d))
    if problem.dynamics.kind == "acceleration":
        second = problem.source + problem.h * problem.dynamics.source_velocities
        return np.concatenate([problem.source[:, None], straight_lines(second, centre, problem.M - 1)], 1)
    return straight_lines(problem.source, centre, problem.M)


def initial_variables(objective: Objective, init=None) -> torch.Tensor:
    """Free variables of the initial trajectories for ``init`` (default: the problem's own)."""
    p = objective.problem
    init = p.init if init is None else init
    if isinstance(init, np.ndarray):
        return objective.variables_from_positions(torch.as_tensor(init, dtype=DTYPE))
    if init == "source":
        return paths_to(objective, source_states(p))
    if init == "ot" and ot_available(p):
        return paths_to(objective, ot_terminal_states(objective))
    return objective.variables_from_positions(torch.as_tensor(paper_positions(p), dtype=DTYPE))


def initial_positions(problem: Problem, init=None) -> np.ndarray:
    """Initial positions (N, M, d), e.g. to draw before a solve."""
    objective = Objective(problem)
    return objective.positions(initial_variables(objective, init)).detach().numpy()
