"""Initial trajectories.

* ``paper`` (eqs. 56-57): every terminal point at the target's centre of mass, straight lines from
  the source to it.
* ``ot``: minimum-energy trajectories (``solver.steering``; straight lines under velocity control) to
  an exact optimal-transport assignment (POT's emd) of the source states to the target (its particles,
  or a blob quantization of a continuum target, ``target_points``): particle i heads to the barycentric
  projection N sum_k P_ik w_k of its row of the plan. For equal-size uniform particle targets this is
  the discrete OT map itself.
* ``source``: particles stay put.
* an explicit (N, M, d) array of positions.
"""
from __future__ import annotations

import threading

import numpy as np
import ot
import torch

from .objective import DTYPE, Objective
from .problem import Problem

#: Largest N x K plan for which the "ot" initialization runs emd (memory and time stay small).
OT_MAX_ENTRIES = 25_000_000
#: Continuum targets with at most this many particles get blob quantizations (below); larger N
#: use the quasi-random quantization directly.
QUANTIZE_MAX_N = 1000
#: Number of blob quantizations tried (seeds seed, seed + 1, ...); the one with the lowest NE is kept.
#: Above ``QUANTIZE_FEW_N`` particles a single one is made (each costs seconds there).
QUANTIZE_TRIES = 4
QUANTIZE_FEW_N = 300


class Cancelled(Exception):
    """Raised inside a start's preparation when its ``cancel`` event is set (the solve was stopped)."""


def straight_lines(start: np.ndarray, end: np.ndarray, M: int) -> np.ndarray:
    """Positions (N, M, d) moving at constant speed from ``start`` (t = 0) to ``end`` (t = 1)."""
    t = np.linspace(0.0, 1.0, M)[None, :, None]
    return (1.0 - t) * start[:, None, :] + t * end[:, None, :]


def source_states(problem: Problem) -> np.ndarray:
    """Initial states in the space of the terminal constraint (x, or (x, v) for acceleration)."""
    if problem.dynamics.kind == "acceleration":
        return np.hstack([problem.source, problem.dynamics.source_velocities])
    return problem.source


def target_size(problem: Problem) -> int:
    """Number of points standing for m_1: its particles or grid cells, or N for continuum targets."""
    target = problem.target
    if target.kind == "particles":
        return len(target.points)
    return len(target.cells.points) if target.kind == "grid" else problem.N


def ot_available(problem: Problem) -> bool:
    """Whether the exact plan of the "ot" start fits in memory and time."""
    return problem.N * target_size(problem) <= OT_MAX_ENTRIES


def blob_quantization(objective: Objective, seed: int,
                      cancel: threading.Event | None = None) -> tuple[np.ndarray, float]:
    """N points minimizing the nonlocal energy alone, NE(Y) = (1/eps)||k_delta * mu_Y - k_delta * m_1||^2:
    the configuration of N particles that best represents m_1 at the resolution delta. Started from a
    small random cluster at the target's mean (spread delta/2), the repulsive self term makes the
    particles expand into an ordered arrangement, as in the paper's gradient descent from eqs. (56)-(57).
    Returns the points and their NE. Raises ``Cancelled`` as soon as ``cancel`` is set."""
    p = objective.problem
    rng = np.random.default_rng(seed)
    start = p.target.mean() + 0.5 * p.delta * rng.normal(size=(p.N, p.target.dim))
    y = torch.tensor(start, dtype=DTYPE, requires_grad=True)
    opt = torch.optim.LBFGS([y], lr=1.0, max_iter=2000, history_size=50, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-10, tolerance_change=1e-14)

    def closure() -> torch.Tensor:
        if cancel is not None and cancel.is_set():
            raise Cancelled
        opt.zero_grad()
        value = objective.nonlocal_energy(y)
        value.backward()
        return value

    opt.step(closure)
    y = y.detach()
    return y.numpy(), float(objective.nonlocal_energy(y))


def target_points(objective: Objective,
                  cancel: threading.Event | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Points and weights standing for m_1 in the OT start: the target's own particles (or grid
    cells); for continuum targets the best of ``QUANTIZE_TRIES`` blob quantizations (lowest NE, which
    in our measurements also gives the lowest final objective), or quasi-random points for large N."""
    p = objective.problem
    if p.target.kind in ("particles", "grid") or p.N > QUANTIZE_MAX_N:
        return p.target.quantization(p.N, p.seed)
    tries = QUANTIZE_TRIES if p.N <= QUANTIZE_FEW_N else 1
    best = min((blob_quantization(objective, p.seed + k, cancel) for k in range(tries)), key=lambda q: q[1])
    return best[0], np.full(p.N, 1.0 / p.N)


def ot_terminal_states(objective: Objective, cancel: threading.Event | None = None) -> np.ndarray:
    """Barycentric projection of the exact OT plan from the source states (weights 1/N) onto the
    target's points, for the cost of steering a particle to a point (``steering_cost``: the squared
    distance under velocity control): particle i heads to N sum_k P_ik w_k."""
    from .steering import steering_cost

    p = objective.problem
    pts, w = target_points(objective, cancel)
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


def initial_variables(objective: Objective, init=None, cancel: threading.Event | None = None) -> torch.Tensor:
    """Free variables of the initial trajectories for ``init`` (default: the problem's own); the
    "ot" start's target quantization stops with ``Cancelled`` once ``cancel`` is set."""
    p = objective.problem
    init = p.init if init is None else init
    if isinstance(init, np.ndarray):
        return objective.variables_from_positions(torch.as_tensor(init, dtype=DTYPE))
    if init == "source":
        return paths_to(objective, source_states(p))
    if init == "ot" and ot_available(p):
        return paths_to(objective, ot_terminal_states(objective, cancel))
    return objective.variables_from_positions(torch.as_tensor(paper_positions(p), dtype=DTYPE))


def initial_positions(problem: Problem, init=None) -> np.ndarray:
    """Initial positions (N, M, d), e.g. to draw before a solve."""
    objective = Objective(problem)
    return objective.positions(initial_variables(objective, init)).detach().numpy()
