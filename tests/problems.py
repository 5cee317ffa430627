"""Small problems whose minimizers are known independently of the solver (after torchdiffeq's
``tests/problems.py``): each carries its exact answer, and every optimizer runs against every problem.

The answers come from the closed forms of the problem, evaluated with numpy / scipy alone:

* ``one_particle``: one particle, velocity control. Straight paths are optimal, so
  E(y) = |y - x0|^2 + (2/eps)(K(0) - K(y - w)) along the segment [x0, w], K the Gaussian of eq. (54);
  with delta = eps = 1 this is strictly convex (E'' >= 2 - 4 max_r K(r)(r^2 - 1) > 1.6; > 1.2 for
  eps = 0.5), and its
  minimizer is the root of E' = 0 found by bisection (brentq).
* ``points_stay_put``: the target is the source cloud. E >= 0, and E = 0 exactly when nobody moves
  (KE = 0) and the terminal cloud is the target (NE = 0); any other configuration has E > 0.
* ``double_integrator``: one particle of the linear system (x, v)' = (v, u), controls piecewise
  constant. The cheapest controls reaching a terminal state Y cost h r^T W^{-1} r, r = Y - A^K y0,
  W = sum_j G_j G_j^T, G_j = A^(K-1-j) B_h (the discrete Gramian, from scipy's expm); the answer
  minimizes that plus the nonlocal energy over Y in R^2 (BFGS to a gradient of 1e-13).
* ``separated_pairs``: pairs of a particle and its target point, so far apart that the problem splits
  into one-particle problems (any dimension, any p), each solved as ``one_particle`` is.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.linalg
import scipy.optimize


def gaussian_samples(N: int, seed: int = 0, **changes) -> dict:
    """Uniform sources on the unit square to N samples of N((2, 1), 0.3^2 I), eps 0.01, M 5 (the scale
    benchmark's scene), with ``changes``. No closed form: its blob objective lies below W2^2 (emd)."""
    rng = np.random.default_rng(seed)
    return {"source": {"points": rng.uniform(0, 1, (N, 2)).tolist()},
            "target": {"kind": "particles", "points": rng.normal([2, 1], 0.3, (N, 2)).tolist()},
            "eps": 0.01, "M": 5, **changes}


@dataclass(frozen=True)
class ExactProblem:
    """A problem file and its exact minimum: the objective and the terminal states (N, D)."""

    name: str
    spec: dict
    objective: float
    terminal: np.ndarray
    lr: float  # a stable learning rate for the first-order methods (gd, adam)


def gaussian(r2: float | np.ndarray, delta: float, dim: int) -> float | np.ndarray:
    """K_delta of eq. (54) at squared distance r2."""
    return np.exp(-r2 / (2 * delta * delta)) / (2 * math.pi * delta * delta) ** (dim / 2)


def one_particle(eps: float = 1.0, M: int = 2) -> ExactProblem:
    """One particle (see the module docstring); the closed form holds for any M (straight paths at
    constant speed cost |y - x0|^2 whatever the time grid) and eps >= 0.5 (E stays strictly convex)."""
    if eps < 0.5:
        raise ValueError("one_particle: eps must be >= 0.5 for the closed form to be the unique minimum")
    x0, w, delta = np.array([0.0, 0.0]), np.array([1.2, 0.5]), 1.0
    L = float(np.linalg.norm(w - x0))

    def energy(s: float) -> float:  # y = x0 + s (w - x0) / L
        return s * s + (2 / eps) * (gaussian(0.0, delta, 2) - gaussian((s - L) ** 2, delta, 2))

    def slope(s: float) -> float:
        return 2 * s + (2 / eps) * gaussian((s - L) ** 2, delta, 2) * (s - L) / delta**2

    s = scipy.optimize.brentq(slope, 0.0, L, xtol=1e-15, rtol=1e-15)
    spec = {"name": "one particle", "source": {"points": [x0.tolist()]},
            "target": {"kind": "particles", "points": [w.tolist()]}, "eps": eps, "delta": delta, "M": M}
    return ExactProblem("one_particle", spec, energy(s), (x0 + s * (w - x0) / L)[None], lr=0.2)


def points_stay_put() -> ExactProblem:
    pts = np.array([[0.0, 0.0], [1.5, 0.2], [0.4, 1.3], [1.2, 1.6]])
    spec = {"name": "points stay put", "source": {"points": pts.tolist()},
            "target": {"kind": "particles", "points": pts.tolist()}, "eps": 1.0, "delta": 1.0, "M": 3}
    return ExactProblem("points_stay_put", spec, 0.0, pts, lr=0.5)


def double_integrator() -> ExactProblem:
    A, B = np.array([[0.0, 1.0], [0.0, 0.0]]), np.array([[0.0], [1.0]])
    y0, w, eps, delta, M = np.array([0.0, 0.5]), np.array([1.0, 0.0]), 1.0, 1.0, 6
    h, K = 1.0 / (M - 1), M - 1
    E = scipy.linalg.expm(np.block([[A, B], [np.zeros((1, 3))]]) * h)
    Ah, Bh = E[:2, :2], E[:2, 2:]
    G = [np.linalg.matrix_power(Ah, K - 1 - j) @ Bh for j in range(K)]
    W = sum(g @ g.T for g in G)
    free = np.linalg.matrix_power(Ah, K) @ y0

    def energy(Y: np.ndarray) -> float:
        r = Y - free
        return h * r @ np.linalg.solve(W, r) + (2 / eps) * (gaussian(0.0, delta, 2) - gaussian(((Y - w) ** 2).sum(), delta, 2))

    def gradient(Y: np.ndarray) -> np.ndarray:
        r = Y - free
        return 2 * h * np.linalg.solve(W, r) + (2 / eps) * gaussian(((Y - w) ** 2).sum(), delta, 2) * (Y - w) / delta**2

    best = scipy.optimize.minimize(energy, w, jac=gradient, method="BFGS", options={"gtol": 1e-13})
    spec = {"name": "double integrator", "dynamics": {"kind": "linear", "A": A.tolist(), "B": B.tolist()},
            "source": {"points": [y0.tolist()]}, "target": {"kind": "particles", "points": [w.tolist()]},
            "eps": eps, "delta": delta, "M": M}
    return ExactProblem("double_integrator", spec, float(best.fun), best.x[None], lr=0.05)


def separated_pairs(seed: int, dim: int, p: float = 2.0) -> ExactProblem:
    """N = 2-6 particles, each a distance L_i in (0.2, 3) delta from its own target point, the pairs 60
    delta apart in dimension ``dim``, velocity control with psi = |u|^p: every Gaussian between two pairs
    underflows to 0 in float64 (exp(-1800)), so the problem splits into N one-particle problems, each
    along its own segment: (1/N) sum_i [s_i^p + (2 / (eps N)) (K(0) - K(s_i - L_i))] (``one_particle``'s
    form with eps N for eps). Each s_i is the lowest root of the derivative (bisection on every sign
    change over a grid of 4,000 cells); eps is drawn so that eps N >= 2 K(0) / delta^2, where the p = 2
    energy is strictly convex."""
    rng = np.random.default_rng(seed)
    N, delta = int(rng.integers(2, 7)), float(rng.uniform(0.05, 1.0))
    peak = gaussian(0.0, delta, dim)
    eps = 2 * peak / (delta**2 * N) * float(rng.uniform(1, 5))
    x = 60 * delta * np.arange(N)[:, None] * np.eye(dim)[0] + rng.normal(size=(N, dim)) * delta
    u = rng.normal(size=(N, dim))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    L = rng.uniform(0.2, 3.0, N) * delta
    a = 2 / (eps * N)
    objective, terminal = 0.0, np.empty((N, dim))
    for i in range(N):
        def energy(s: float) -> float:
            return s**p + a * (peak - gaussian((s - L[i]) ** 2, delta, dim))

        def slope(s: float) -> float:
            return p * s ** (p - 1) + a * gaussian((s - L[i]) ** 2, delta, dim) * (s - L[i]) / delta**2

        grid = np.linspace(1e-12, L[i], 4001)
        signs = np.sign([slope(g) for g in grid])
        roots = [scipy.optimize.brentq(slope, grid[k], grid[k + 1], xtol=1e-15, rtol=1e-15)
                 for k in range(len(grid) - 1) if signs[k] * signs[k + 1] < 0]
        s = min(roots + [float(L[i])], key=energy)
        objective += energy(s) / N
        terminal[i] = x[i] + s * u[i]
    spec = {"name": f"separated pairs ({dim}-D, p = {p})", "source": {"points": x.tolist()},
            "target": {"kind": "particles", "points": (x + u * L[:, None]).tolist()}, "eps": eps,
            "delta": delta, "M": int(rng.choice([2, 3, 6])), "p": p}
    return ExactProblem("separated_pairs", spec, objective, terminal, lr=0.0)  # no first-order runs (lr unused)


PROBLEMS: dict[str, Callable[[], ExactProblem]] = {
    "one_particle": one_particle, "points_stay_put": points_stay_put, "double_integrator": double_integrator}
