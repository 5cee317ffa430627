"""Minimum-energy steering: the cheapest controls taking every particle exactly to given terminal states.

For psi = |.|^2 and no drift, the control energy is a quadratic form in the free variables and the
terminal state an affine map of them, with the same matrices for every particle:

    KE_i(x_i) = x_i^T H x_i / 2 + g_i^T x_i + c_i,        Y_i(x_i) = J x_i + Y_i(0).

The minimizer of KE_i subject to Y_i(x_i) = Y*_i solves the KKT system
[[H, J^T], [J, 0]] [x_i; lambda_i] = [-g_i; Y*_i - Y_i(0)], one factorization for all particles.
For velocity control this gives straight lines at constant speed (the W2 geodesic), for acceleration
control the discrete analogue of cubic splines, and for linear systems the controllability-Gramian
(minimum-norm) controls. H and J are read off the objective itself by finite differences of its exact
quadratic and affine parts, so the three dynamics share this one routine.
"""
from __future__ import annotations

import threading
from typing import Callable, TypeVar

import numpy as np

from .lazy import torch
from .objective import Objective

T = TypeVar("T")


def _energy(objective: Objective, x: torch.Tensor) -> torch.Tensor:
    """sum_i h |u_i|^2: the quadratic control energy (psi = |.|^2), without the 1/N."""
    u = objective.controls(objective.positions(x), x)
    return objective.h * (u * u).sum()


def _terminal(objective: Objective, x: torch.Tensor) -> torch.Tensor:
    return objective.problem.dynamics.terminal(objective.positions(x), objective.h)


def quadratic_structure(objective: Objective) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(H, J, g, Y0): the shared V x V Hessian of sum_i h|u_i|^2 per particle, the shared D x V Jacobian
    of the terminal state, and the per-particle gradient g (N x V) and terminal state Y0 (N x D) at
    zero variables. Computed once (``Objective.cache``: shared by the objectives derived from one)."""
    return _cached(objective, "quadratic_structure", lambda: _quadratic_structure(objective))


def _cached(objective: Objective, key: str, compute: Callable[[], T]) -> T:
    """``objective.cache[key]``, computed by ``compute`` once: under the cache's own lock, since a start's
    worker thread and the solve may ask at the same time (both computed it, holding its V x V matrices
    twice: the default scene at M = 4,000 peaked at 2.7 GB in some runs, 2.2 GB in others)."""
    with objective.cache.setdefault("lock", threading.RLock()):  # setdefault is atomic
        if key not in objective.cache:
            objective.cache[key] = compute()
        return objective.cache[key]


#: Unit vectors probed at once by ``_quadratic_structure`` (each a particle of its own: memory about this
#: many trajectories).
PROBES = 256


def _quadratic_structure(objective: Objective) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """H and J column by column: the gradient and the terminal state at each unit vector e_k of one
    particle's variables, less their values at zero. The particles' blocks are identical, so the unit
    vectors are probed as particles of their own, ``PROBES`` at a time, each from the first particle's
    source (particle 0's numbers, as each column was computed before, when every column took a whole
    evaluation of all N particles: a linear system with M = 500 spent 9.7 s here for N = 100, M = 8,000
    hours). With a drift coupling the particles, or data of each particle held by the dynamics (the
    source velocities under acceleration control), a probe moves all of them at once, as before."""
    shape = objective.variable_shape
    N, V = shape[0], int(np.prod(shape[1:]))
    zero = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(_energy(objective, zero), zero)
    g = g.reshape(N, V)
    Y0 = _terminal(objective, zero).detach()
    H = torch.empty(V, V, dtype=torch.float64)
    J = torch.empty(Y0.shape[1], V, dtype=torch.float64)
    dynamics, h = objective.problem.dynamics, objective.h
    if dynamics.couples_particles or dynamics.own_data:
        for k in range(V):  # unit vector k in every particle's block
            e = torch.zeros(N, V, dtype=torch.float64)
            e[:, k] = 1.0
            e = e.reshape(shape).requires_grad_(True)
            (gk,) = torch.autograd.grad(_energy(objective, e), e)
            H[:, k] = (gk.reshape(N, V) - g)[0]
            J[:, k] = (_terminal(objective, e).detach() - Y0)[0]
        return 0.5 * (H + H.T), J, g, Y0
    for start in range(0, V, PROBES):
        count = min(PROBES, V - start)
        e = torch.zeros(count, V, dtype=torch.float64)
        e[torch.arange(count), start + torch.arange(count)] = 1.0
        e = e.reshape((count,) + tuple(shape[1:])).requires_grad_(True)
        source = objective.source[:1].expand((count,) + tuple(objective.source.shape[1:]))
        positions = dynamics.positions(source, e, h)
        u = dynamics.controls(positions, e, h)
        (gk,) = torch.autograd.grad(h * (u * u).sum(), e)
        H[:, start:start + count] = (gk.reshape(count, V) - g[0]).T
        J[:, start:start + count] = (dynamics.terminal(positions, h).detach() - Y0[0]).T
    return 0.5 * (H + H.T), J, g, Y0


def kinetic_factor(objective: Objective) -> torch.Tensor:
    """The Cholesky factor of H (``quadratic_structure``), V x V lower triangular: every use of H^{-1}
    solves with it (V^3 / 3 operations once, then V^2 per right-hand side). Computed once (``Objective.cache``)."""
    return _cached(objective, "kinetic_factor", lambda: torch.linalg.cholesky(quadratic_structure(objective)[0]))


def terminal_gramian(objective: Objective) -> tuple[torch.Tensor, torch.Tensor]:
    """(H^{-1} J^T (V x D), S = J H^{-1} J^T (D x D, symmetrized)): how the least control energy reaches
    the terminal states, shared by ``minimum_energy_map`` and ``steering_coordinates``. Computed once."""
    def compute() -> tuple[torch.Tensor, torch.Tensor]:
        J = quadratic_structure(objective)[1]
        Hinv_Jt = torch.cholesky_solve(J.T, kinetic_factor(objective))
        S = J @ Hinv_Jt
        return Hinv_Jt, 0.5 * (S + S.T)
    return _cached(objective, "terminal_gramian", compute)


def minimum_energy_map(objective: Objective) -> tuple[torch.Tensor, torch.Tensor]:
    """(o, A): particle i's minimum-energy variables ending at a terminal state y are x_i = o_i + A y,
    o (N x V), A (V x D). Computed once (``Objective.cache``).

    The KKT system's solution by its blocks, with the factor of H only (no (V + D)^2 inverse: at
    M = 3,000 under velocity control that inverse took 14 s and several V x V copies): the free minimizer
    f_i = -H^{-1} g_i, S = J H^{-1} J^T and A = H^{-1} J^T S^{-1}; then x_i = f_i + A (y - Y0_i - J f_i)
    meets J x_i = y - Y0_i and H x_i + g_i = J^T lambda_i, so o_i = f_i - A (Y0_i + J f_i)."""
    def compute() -> tuple[torch.Tensor, torch.Tensor]:
        _, J, g, Y0 = quadratic_structure(objective)
        Hinv_Jt, S = terminal_gramian(objective)
        A = torch.linalg.solve(S, Hinv_Jt.T).T  # H^{-1} J^T S^{-1}
        free = -torch.cholesky_solve(g.T, kinetic_factor(objective)).T  # N x V
        return free - (Y0 + free @ J.T) @ A.T, A
    return _cached(objective, "minimum_energy_map", compute)


def min_energy_variables(objective: Objective, terminal: np.ndarray) -> torch.Tensor:
    """Variables of the minimum-energy trajectories ending exactly at ``terminal`` (N x D)."""
    offset, A = minimum_energy_map(objective)
    return (offset + torch.as_tensor(terminal, dtype=torch.float64) @ A.T).reshape(objective.variable_shape)


def steering_coordinates(objective: Objective) -> tuple[np.ndarray, np.ndarray]:
    """(z L, L): coordinates in which the cost of steering particle i to a state y is |y L - (z L)_i|^2 / 2.

    With S = J H^{-1} J^T and z_i = Y_i(0) - J H^{-1} g_i (where particle i ends with the least effort),
    the KKT solution gives the minimum control energy to reach y (up to a constant per particle, which
    no assignment can change) as (y - z_i)^T S^{-1} (y - z_i) / 2: a squared Mahalanobis distance, so
    with S^{-1} = L L^T squared Euclidean distances in the coordinates y L. Under velocity control
    L = I and z_i is the source (the W2 cost); under acceleration or linear dynamics it is the cost of
    the two-point boundary problem, the cost for which an OT assignment of sources to targets is right."""
    _, _, g, Y0 = quadratic_structure(objective)
    Hinv_Jt, S = terminal_gramian(objective)
    z = Y0 - g @ Hinv_Jt
    L = torch.linalg.cholesky(torch.linalg.inv(S))  # S^{-1} = L L^T
    return (z @ L).numpy(), L.numpy()


class KineticPreconditioner:
    """x -> H^{-1} x applied to every particle's block: the inverse Hessian of the quadratic control
    energy, the stiff part of eq. (50) (its condition number grows like M^2 for velocity and M^4 for
    acceleration control). Used as the initial inverse Hessian of L-BFGS."""

    def __init__(self, objective: Objective):
        self.chol = kinetic_factor(objective)

    def __call__(self, q: torch.Tensor) -> torch.Tensor:
        flat = q.reshape(q.shape[0], -1)
        return torch.cholesky_solve(flat.T, self.chol).T.reshape(q.shape)
