"""Loss landscapes (section 4.7).

* ``plane_landscape``: the objective on the plane through an iterate x spanned by two directions,
  E(x + a d1 + b d2) on an (a, b) grid, with d1, d2 orthonormalized and scaled to the length of d1.
  The explorer uses the gradient and the last step as directions.
* ``terminal_landscape``: Fig. 6, the objective of an N = 2, 1-D problem with straight trajectories as
  a function of the two terminal points (y_{1,M}, y_{2,M}).
"""
from __future__ import annotations

import numpy as np
import torch

from .init import straight_lines
from .objective import DTYPE, Objective
from .problem import Problem, problem_from_dict


@torch.no_grad()
def plane_landscape(objective: Objective, x: torch.Tensor, d1: torch.Tensor, d2: torch.Tensor,
                    extent: float = 1.0, n: int = 25) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (a, b, E) with E[j, i] = objective(x + a_i e1 + b_j e2), a, b in [-extent, extent] * |d1|.

    e1 = d1/|d1|, e2 = the part of d2 orthogonal to e1, normalized (a random direction if d2 is parallel).
    """
    scale = float(d1.norm()) or 1.0
    e1 = d1 / scale
    e2 = d2 - (d2 * e1).sum() * e1
    if float(e2.norm()) < 1e-12 * scale:
        e2 = torch.randn_like(e1, generator=torch.Generator().manual_seed(0))
        e2 = e2 - (e2 * e1).sum() * e1
    e2 = e2 / e2.norm()
    a = np.linspace(-extent, extent, n) * scale
    b = np.linspace(-extent, extent, n) * scale
    E = np.empty((n, n))
    for j, bj in enumerate(b):
        for i, ai in enumerate(a):
            E[j, i] = float(objective(x + ai * e1 + bj * e2))
    return a, b, E


def fig6_problem(eps: float, delta: float, source=(0.0, 0.5), target=(1.0, 1.5)) -> Problem:
    """The two-particle 1-D problem of Fig. 6 (M = 2, no obstacles)."""
    return problem_from_dict({
        "name": f"fig6 eps={eps} delta={delta}",
        "source": {"points": [[source[0]], [source[1]]]},
        "target": {"kind": "particles", "points": [[target[0]], [target[1]]]},
        "eps": eps, "delta": delta, "M": 2})


@torch.no_grad()
def terminal_landscape(problem: Problem, y1: np.ndarray, y2: np.ndarray) -> np.ndarray:
    """E[j, i] = objective of straight lines ending at (y1[i], y2[j]) for an N = 2, 1-D problem."""
    if problem.N != 2 or problem.source.shape[1] != 1:
        raise ValueError("terminal_landscape needs a problem with N = 2 particles in 1-D")
    objective = Objective(problem)
    E = np.empty((len(y2), len(y1)))
    for j, b in enumerate(y2):
        for i, a in enumerate(y1):
            pos = straight_lines(problem.source, np.array([[a], [b]]), problem.M)
            E[j, i] = float(objective(objective.variables_from_positions(torch.as_tensor(pos, dtype=DTYPE))))
    return E


def fig6_markers(problem: Problem) -> dict[str, tuple[float, float]]:
    """Terminal points of Fig. 6's markers: source (+), target (x), flipped (pentagon), initial (dot)."""
    z = problem.source[:, 0]
    w = problem.target.points[:, 0]
    c = float(problem.target.mean()[0])
    return {"source": (z[0], z[1]), "target": (w[0], w[1]), "flipped": (w[1], w[0]), "initial": (c, c)}
