"""Exact references for checking a solve.

* ``w2sq``: exact squared 2-Wasserstein distance between weighted point clouds (POT's emd).
* ``w2sq_terminal``: that distance from the terminal states of a solve to a particle target.
* ``w2sq_bound``: exact where affordable (emd, or a repaired permutation), else an upper bound from a
  multiscale plan (labelled).
* ``monotone_map_1d``: the 1-D optimal map (monotone rearrangement) between empirical measures of
  equal size (for Fig. 9's grids it is eq. 63's T(y, 1) = y/2 + 2).
* ``bures_map``: the optimal linear map between Gaussians N(m0, S0) -> N(m1, S1),
  T(x) = m1 + A (x - m0), A = S0^{-1/2} (S0^{1/2} S1 S0^{1/2})^{1/2} S0^{-1/2}.
* ``map_errors``: the errors of eqs. (64) (all time points, against the displacement interpolation
  T(y, t) = (1 - t) y + t T(y)) and (65) (terminal time).
* ``summary``: the numbers the CLI writes to summary.json.
"""
from __future__ import annotations

import numpy as np

from .assignment import EXACT_PAIRS, REASSIGN_EXACT_PAIRS, emd_affordable, match
from .init import source_states
from .lazy import ot, scipy_linalg, torch
from .problem import Problem
from .run import Result
from .version import solver_version


def w2sq(x: np.ndarray, y: np.ndarray, a: np.ndarray | None = None, b: np.ndarray | None = None) -> float:
    """Exact W_2^2 between sum_i a_i delta_{x_i} and sum_k b_k delta_{y_k} (uniform if omitted)."""
    a = np.full(len(x), 1.0 / len(x)) if a is None else a
    b = np.full(len(y), 1.0 / len(y)) if b is None else b
    return float(ot.emd2(a, b, ot.dist(x, y), numItermax=10_000_000))


def w2sq_terminal(problem: Problem, states: np.ndarray, repaired_pairs: int = 0) -> float | None:
    """Exact W_2^2 between the terminal states (N, D) of ``states`` (N, M, D) and the problem's
    particle target (full states: (x, v) under acceleration control): POT's emd up to
    emd's budget (``assignment.emd_affordable``), beyond up to ``repaired_pairs`` the repaired multiscale
    permutation (``w2sq_bound``; equal weights). None for continuum targets and where neither gives the
    exact value."""
    if problem.target.empirical is None:
        return None
    points, weights = problem.target.empirical
    pairs = len(states) * len(points)
    if emd_affordable(len(states), len(points)):
        return w2sq(states[:, -1], points, None, weights)
    if pairs > min(repaired_pairs, REASSIGN_EXACT_PAIRS):
        return None
    bound = w2sq_bound(states[:, -1], points, weights)
    return bound["value"] if bound["exact"] else None


def w2sq_bound(x: np.ndarray, y: np.ndarray, b: np.ndarray) -> dict:
    """W_2^2 from sum_i delta_{x_i}/N to sum_k b_k delta_{y_k}: exact within emd's budget
    (``assignment.emd_affordable``: POT's emd; for N equally weighted points from ``assignment.REPAIRED_FROM_PAIRS`` the multiscale
    permutation repaired to the optimal one, as beyond up to ``REASSIGN_EXACT_PAIRS``); otherwise the
    cost of the multiscale transport plan (``solver.assignment``), an upper bound, labelled as such.
    Returns {"value", "exact", "method"}."""
    _, cost, exact = match(x, y, b, repaired_pairs=REASSIGN_EXACT_PAIRS, workers=torch.get_num_threads(),
                           timed=True)
    if exact:
        method = "exact (POT emd, or a multiscale permutation repaired to the optimum by shortest augmenting paths)"
    else:
        method = (f"upper bound: cost of a multiscale transport plan (emd too costly: N K > {EXACT_PAIRS:,}, "
                  f"or N + K too large for N K (assignment.emd_affordable); and the plan is no permutation "
                  f"or N K > {REASSIGN_EXACT_PAIRS:,})")
    return {"value": cost, "exact": exact, "method": method}


def monotone_map_1d(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Image of each source point under the 1-D OT map between equal-size empirical measures."""
    order = np.argsort(source.ravel(), kind="stable")
    image = np.empty(len(order))
    image[order] = np.sort(target.ravel())
    return image


def bures_map(m0: np.ndarray, S0: np.ndarray, m1: np.ndarray, S1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(A, b) of the optimal affine map T(x) = A x + b from N(m0, S0) to N(m1, S1)."""
    r0 = np.real(scipy_linalg.sqrtm(S0))
    r0inv = np.linalg.inv(r0)
    A = r0inv @ np.real(scipy_linalg.sqrtm(r0 @ S1 @ r0)) @ r0inv
    A = 0.5 * (A + A.T)
    return A, m1 - A @ m0


def exact_map(problem: Problem) -> np.ndarray | None:
    """Where the exact OT map sends each source point, when it is known: plain transport in 1-D to
    a particle target of N equal weights (the monotone rearrangement); None otherwise."""
    p = problem
    if p.target.empirical is None or not p.dynamics.plain_transport or p.source.shape[1] != 1:
        return None
    points, weights = p.target.empirical
    if len(points) != p.N or not np.allclose(weights, 1.0 / p.N):
        return None
    return monotone_map_1d(p.source, points)[:, None]


def map_errors(positions: np.ndarray, image: np.ndarray) -> dict[str, float]:
    """Eqs. (64), (65) for trajectories (N, M, d) against the map sending y_{i,1} to ``image[i]``."""
    N, M, _ = positions.shape
    t = np.linspace(0.0, 1.0, M)[None, :, None]
    exact = (1.0 - t) * positions[:, :1] + t * image[:, None, :]
    all_times = np.sqrt(((positions[:, 1:] - exact[:, 1:]) ** 2).sum(-1).sum() / (N * (M - 1)))
    terminal = np.sqrt(((positions[:, -1] - image) ** 2).sum(-1).mean())
    return {"error_all_times": float(all_times), "error_terminal": float(terminal)}


def summary(result: Result) -> dict:
    """Numbers describing a finished solve (written as summary.json by the CLI)."""
    p, snap = result.problem, result.final
    out = {"name": p.name, **snap.energies, "iterations": snap.iteration, "evaluations": snap.evaluations,
           "seconds": snap.elapsed, "status": snap.status, "N": p.N, "M": p.M, "eps": p.eps,
           "delta": p.delta, "method": p.optimizer.method, "dynamics": p.dynamics.kind,
           "target": p.target.kind, "grad_norm": snap.grad_norm, "seed": p.seed, "solver_version": solver_version()}
    if p.target.empirical is not None:
        points, weights = p.target.empirical
        for key, x in (("w2sq_exact", source_states(p)), ("w2sq_terminal", snap.states[:, -1])):
            bound = w2sq_bound(x, points, weights)
            out[key] = bound["value"] if bound["exact"] else None
            if not bound["exact"]:
                out[key + "_upper"] = bound["value"]
                out[key + "_note"] = bound["method"]
        image = exact_map(p)
        if image is not None:
            out.update(map_errors(result.positions, image))
    if p.obstacles is not None:
        out.update(obstacle_depths(p, result.positions))
    return out


def obstacle_depths(problem: Problem, positions: np.ndarray) -> dict[str, float]:
    """The deepest penetration into any obstacle (<= 0: outside all) at the time points,
    ``max_obstacle_depth``, and along the straight segments between them as drawn and exported,
    ``max_obstacle_depth_segments``."""
    positions = positions[..., : problem.dynamics.dim]
    return {"max_obstacle_depth": float(problem.obstacles.depth(positions).max()),
            "max_obstacle_depth_segments": problem.obstacles.path_depth(positions)}

