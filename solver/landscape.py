"""Loss landscapes (section 4.7).

* ``plane_landscape``: the objective on the plane through an iterate x spanned by two directions,
  E(x + a e1 + b e2) on an (a, b) grid, with (e1, e2) = ``plane_basis(d1, d2)`` (orthonormal) and the
  grid scaled to the length of d1.
* ``path_landscape``: the slice the explorer shows during a solve: the plane through the latest of a
  path of iterates spanned by the gradient and the last step, sized to hold the path, with the path
  projected onto it; the grid is as fine as an evaluation budget allows.
* ``terminal_landscape``: Fig. 6, the objective of an N = 2, 1-D problem with straight trajectories as
  a function of the two terminal points (y_{1,M}, y_{2,M}).
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from .lazy import torch
from .objective import Objective
from .paths import straight_lines
from .problem import Problem, problem_from_dict


def plane_basis(d1: "torch.Tensor", d2: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
    """e1 = d1/|d1|, e2 = the part of d2 orthogonal to e1, normalized (a fixed random direction when
    d2 is parallel to d1)."""
    scale = float(d1.norm()) or 1.0
    e1 = d1 / scale
    e2 = d2 - (d2 * e1).sum() * e1
    if float(e2.norm()) < 1e-12 * scale:
        e2 = torch.randn_like(e1, generator=torch.Generator().manual_seed(0))
        e2 = e2 - (e2 * e1).sum() * e1
    return e1, e2 / e2.norm()


def plane_landscape(objective: Objective, x: "torch.Tensor", d1: "torch.Tensor", d2: "torch.Tensor",
                    extent: float = 1.0, n: int = 25) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (a, b, E) with E[j, i] = objective(x + a_i e1 + b_j e2), a, b in [-extent, extent] * |d1|."""
    scale = float(d1.norm()) or 1.0
    e1, e2 = plane_basis(d1, d2)
    a = np.linspace(-extent, extent, n) * scale
    b = np.linspace(-extent, extent, n) * scale
    E = np.empty((n, n))
    with torch.no_grad():
        for j, bj in enumerate(b):
            for i, ai in enumerate(a):
                E[j, i] = float(objective(x + ai * e1 + bj * e2))
    return a, b, E


def path_landscape(objective: Objective, path: list["torch.Tensor"], budget: float = 1.0,
                   sizes: tuple[int, int] = (7, 21)) -> dict[str, Any]:
    """The landscape around the last iterate of ``path`` (variables, oldest first, at least two):
    the plane spanned by the gradient and the last step, extending 1.2 times as far as the farthest
    iterate of the path, on an n x n grid with n in ``sizes`` chosen so that the evaluations take
    about ``budget`` seconds. Returns {"a", "b", "E", "path"}: the grid, the objective on it and the
    path's coordinates in the plane."""
    x = path[-1]
    _, grad = objective.value_and_grad(x)
    step = x - path[-2]
    reach = max(float((xk - x).norm()) for xk in path) * 1.2 or 1e-3
    d1 = grad / (float(grad.norm()) or 1.0) * reach
    clock = time.perf_counter()
    with torch.no_grad():
        float(objective(x))
    per_eval = time.perf_counter() - clock
    n = int(np.clip(np.sqrt(budget / max(per_eval, 1e-6)), *sizes))
    a, b, E = plane_landscape(objective, x, d1, step, extent=1.0, n=n)
    e1, e2 = plane_basis(d1, step)
    coords = np.array([[float(((xk - x) * e1).sum()), float(((xk - x) * e2).sum())] for xk in path])
    return {"a": a, "b": b, "E": E, "path": coords}


def fig6_problem(eps: float, delta: float, source=(0.0, 0.5), target=(1.0, 1.5)) -> Problem:
    """The two-particle 1-D problem of Fig. 6 (M = 2, no obstacles)."""
    return problem_from_dict({
        "name": f"fig6 eps={eps} delta={delta}",
        "source": {"points": [[source[0]], [source[1]]]},
        "target": {"kind": "particles", "points": [[target[0]], [target[1]]]},
        "eps": eps, "delta": delta, "M": 2})


def shows_fig6(problem: Problem) -> bool:
    """Whether ``problem`` is of Fig. 6's form: two particles in 1-D, plain transport to particles."""
    return (problem.N == 2 and problem.source.shape[1] == 1 and problem.dynamics.plain_transport
            and problem.target.empirical is not None)


def terminal_landscape(problem: Problem, y1: np.ndarray, y2: np.ndarray) -> np.ndarray:
    """E[j, i] = objective of straight lines ending at (y1[i], y2[j]) for an N = 2, 1-D problem."""
    if not shows_fig6(problem):
        raise ValueError("terminal_landscape needs a problem with N = 2 particles in 1-D")
    objective = Objective(problem)
    E = np.empty((len(y2), len(y1)))
    with torch.no_grad():
        for j, b in enumerate(y2):
            for i, a in enumerate(y1):
                pos = straight_lines(problem.source, np.array([[a], [b]]), problem.M)
                variables = objective.variables_from_positions(torch.as_tensor(pos, dtype=torch.float64))
                E[j, i] = float(objective(variables))
    return E


def fig6_markers(problem: Problem) -> dict[str, tuple[float, float]]:
    """Terminal points of Fig. 6's markers: source (+), target (x), flipped (pentagon), initial (dot)."""
    z = problem.source[:, 0]
    w = problem.target.points[:, 0]
    c = float(problem.target.mean()[0])
    return {"source": (z[0], z[1]), "target": (w[0], w[1]), "flipped": (w[1], w[0]), "initial": (c, c)}
