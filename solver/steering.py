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

from typing import TYPE_CHECKING

import numpy as np

from .lazy import torch
from .objective import Objective

if TYPE_CHECKING:
    from .problem import Problem


def _energy(objective: Objective, x: torch.Tensor) -> torch.Tensor:
    """sum_i h |u_i|^2: the quadratic control energy (psi = |.|^2), without the 1/N."""
    u = objective.controls(objective.positions(x), x)
    return objective.h * (u * u).sum()


def _terminal(objective: Objective, x: torch.Tensor) -> torch.Tensor:
    return objective.problem.dynamics.terminal(objective.positions(x), objective.h)


def quadratic_structure(objective: Objective) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(H, J, g, Y0): the shared V x V Hessian of sum_i h|u_i|^2 per particle, the shared D x V Jacobian
    of the terminal state, and the per-particle gradient g (N x V) and terminal state Y0 (N x D) at
    zero variables. Computed once per objective."""
    cached = getattr(objective, "_quadratic_structure", None)
    if cached is None:
        cached = _quadratic_structure(objective)
        objective._quadratic_structure = cached
    return cached


def _quadratic_structure(objective: Objective) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    shape = objective.variable_shape
    N, V = shape[0], int(np.prod(shape[1:]))
    zero = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(_energy(objective, zero), zero)
    g = g.reshape(N, V)
    Y0 = _terminal(objective, zero).detach()
    H = torch.empty(V, V, dtype=torch.float64)
    J = torch.empty(Y0.shape[1], V, dtype=torch.float64)
    for k in range(V):  # unit vector k in every particle's block: the blocks are identical
        e = torch.zeros(N, V, dtype=torch.float64)
        e[:, k] = 1.0
        e = e.reshape(shape).requires_grad_(True)
        (gk,) = torch.autograd.grad(_energy(objective, e), e)
        H[:, k] = (gk.reshape(N, V) - g)[0]
        J[:, k] = (_terminal(objective, e).detach() - Y0)[0]
    return 0.5 * (H + H.T), J, g, Y0


def min_energy_variables(objective: Objective, terminal: np.ndarray) -> torch.Tensor:
    """Variables of the minimum-energy trajectories ending exactly at ``terminal`` (N x D)."""
    H, J, g, Y0 = quadratic_structure(objective)
    V, D = H.shape[0], J.shape[0]
    kkt = torch.zeros(V + D, V + D, dtype=torch.float64)
    kkt[:V, :V], kkt[:V, V:], kkt[V:, :V] = H, J.T, J
    rhs = torch.cat([-g, torch.as_tensor(terminal, dtype=torch.float64) - Y0], dim=1)
    sol = torch.linalg.solve(kkt, rhs.T).T
    return sol[:, :V].reshape(objective.variable_shape)


def steering_cost(objective: Objective, points: np.ndarray) -> np.ndarray:
    """C_ik = minimum control energy taking particle i exactly to the state ``points[k]`` (up to a
    constant per particle, which no assignment can change).

    With S = J H^{-1} J^T and z_i = Y_i(0) - J H^{-1} g_i (where particle i ends with the least effort),
    the KKT solution gives C_ik = (points_k - z_i)^T S^{-1} (points_k - z_i) / 2: a squared Mahalanobis
    distance. Under velocity control it is |w_k - y_i,0|^2 / 2 (the W2 cost); under acceleration or
    linear dynamics it is the cost of the two-point boundary problem, the cost for which an OT assignment
    of sources to targets is the right one."""
    H, J, g, Y0 = quadratic_structure(objective)
    Hinv_Jt = torch.linalg.solve(H, J.T)
    S = J @ Hinv_Jt
    z = Y0 - g @ Hinv_Jt
    L = torch.linalg.cholesky(torch.linalg.inv(0.5 * (S + S.T)))  # S^{-1} = L L^T
    a = (z @ L).numpy()
    b = (torch.as_tensor(points, dtype=torch.float64) @ L).numpy()
    return 0.5 * ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


class KineticPreconditioner:
    """x -> H^{-1} x applied to every particle's block: the inverse Hessian of the quadratic control
    energy, the stiff part of eq. (50) (its condition number grows like M^2 for velocity and M^4 for
    acceleration control). Used as the initial inverse Hessian of L-BFGS."""

    def __init__(self, objective: Objective):
        H = quadratic_structure(objective)[0]
        self.chol = torch.linalg.cholesky(H)

    def __call__(self, q: torch.Tensor) -> torch.Tensor:
        flat = q.reshape(q.shape[0], -1)
        return torch.cholesky_solve(flat.T, self.chol).T.reshape(q.shape)


def reducible(problem: "Problem") -> bool:
    """Whether eq. (50) reduces exactly to a problem in the terminal states alone: nothing but the
    control energy acts before t = 1 (no state cost, no drift), and the minimum-energy paths are the
    optimal ones for psi (psi = |.|^2, or any psi under velocity control, where constant speed along
    straight lines is optimal by Jensen's inequality)."""
    return (not problem.has_state_cost and not problem.dynamics.couples_particles
            and problem.dynamics.steers_optimally(problem.control_cost))


class TerminalObjective(Objective):
    """Eq. (50) as a function of the terminal states Y (N x D) alone, for ``reducible`` problems.

    For fixed terminal states the best trajectories are the minimum-energy ones, an affine function of
    Y: x_i = c_i + A Y_i (``min_energy_variables``). So min over all variables of eq. (50) equals min over
    Y of E(c + A Y): the same minimizers with (M-1)/D or more times fewer unknowns, and none of the
    stiff coupling along time that makes the full problem ill-conditioned."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.full = Objective(self.problem)
        H, J, g, Y0 = quadratic_structure(self.full)
        V, D = H.shape[0], J.shape[0]
        kkt = torch.zeros(V + D, V + D, dtype=torch.float64)
        kkt[:V, :V], kkt[:V, V:], kkt[V:, :V] = H, J.T, J
        inv = torch.linalg.inv(kkt)
        self.map = inv[:V, V:]  # V x D
        self.offset = -g @ inv[:V, :V].T - Y0 @ self.map.T  # N x V

    @property
    def variable_shape(self) -> tuple[int, ...]:
        return (self.problem.N, self.map.shape[1])

    def full_variables(self, terminal: torch.Tensor) -> torch.Tensor:
        return (self.offset + terminal @ self.map.T).reshape(self.full.variable_shape)

    def positions(self, variables: torch.Tensor) -> torch.Tensor:
        return self.full.positions(self.full_variables(variables))

    def controls(self, positions: torch.Tensor, variables: torch.Tensor) -> torch.Tensor:
        return self.full.controls(positions, self.full_variables(variables))

    def variables_from_positions(self, positions: torch.Tensor) -> torch.Tensor:
        return self.problem.dynamics.terminal(positions, self.h).clone()
