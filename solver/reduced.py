"""Eq. (50) in the terminal states alone, with its derivatives in closed form.

When nothing but the control energy acts before t = 1 (``reducible``: no state cost, no drift, and
minimum-energy paths optimal for psi), the best trajectories for given terminal states Y are the
minimum-energy ones, x_i = o_i + A Y_i (``steering``). So min over all variables of eq. (50) equals

    min_Y  E(Y) = KE(Y) + NE(Y),   KE(Y) = (1/N) sum_i e(o_i + A Y_i),   NE as in eqs. (53), (55),

with N D unknowns and none of the stiff coupling along time. Here KE is written out:

* psi = |u|^2 (any dynamics): e is quadratic, e(x) = x^T H x / 2 + g_i^T x + e_i(0), so
  KE(Y) = (1/N) sum_i [Y_i^T Q Y_i / 2 + q_i^T Y_i + c_i] with Q = A^T H A, q_i = A^T (H o_i + g_i),
  c_i = e_i(o_i). Its least value over Y_i is 0 (no control is admissible and costs nothing), at the
  rest state R_i = -Q^{-1} q_i, so KE(Y) = (1/N) sum_i (Y_i - R_i)^T Q (Y_i - R_i) / 2, computed so
  (gradient and D x D Hessian blocks exact, no automatic differentiation). Expanded, its terms cancel:
  far from the origin c_i ~ |Y_i|^2 and the rounding of the sum is that large (the default scene with
  one source moved to x = 1e6, resting there: 4.7606842 instead of 4.7607390; at x = 1e10 the kinetic
  energy came out at -4681);
* other psi under velocity control: the paths are straight at constant speed, u_i = Y_i - x_i on every
  step, so KE(Y) = (1/N) sum_i psi(Y_i - x_i).

NE's gradient comes from the kernels' fused value-and-gradient sums. For Newton's method the class
gives the Hessian-vector product H v and the D x D diagonal blocks of H (``Curvature``) without forming
H: with T_ik = a_i a_k Hess phi(Y_i - Y_k) the self term contributes (2/eps) c_delta sum_k T_ik (v_i - v_k),
the target term -(2/eps) a_i (Hess (K_delta * m_1))(Y_i) v_i, block by block; for small problems also
the dense Hessian.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from .kernels import gaussian_normalizer, self_curvature
from .lazy import LazyModule, torch
from .objective import Objective, add_to_diagonal_blocks
from .steering import minimum_energy_map, quadratic_structure

blockwise = LazyModule("solver.blockwise")  # numba: compiled on first use

if TYPE_CHECKING:
    from .problem import Problem

ZERO_TERMS = ("potential", "obstacle", "interaction")


def reducible(problem: "Problem") -> bool:
    """Whether eq. (50) reduces exactly to a problem in the terminal states alone: nothing but the
    control energy acts before t = 1 (no state cost, no drift), and the minimum-energy paths are the
    optimal ones for psi (psi = |.|^2, or any psi under velocity control, where constant speed along
    straight lines is optimal by Jensen's inequality)."""
    return (not problem.has_state_cost and not problem.dynamics.couples_particles
            and problem.dynamics.steers_optimally(problem.control_cost))


@dataclass
class Curvature:
    """The Hessian of E at one Y, as a product and its diagonal blocks (never formed whole): H v =
    uncoupled v (block by block) + self_coefficient * self_products(v) (``kernels.self_curvature``)."""

    self_coefficient: "torch.Tensor"  # (N,): the self term's row factor
    self_products: Callable[["torch.Tensor"], "torch.Tensor"]  # its pairs, planned once for all v
    uncoupled: "torch.Tensor"  # (N, D, D): the diagonal blocks of the other terms (control, target)
    blocks: "torch.Tensor"  # (N, D, D): the diagonal blocks of the whole Hessian

    def __call__(self, v: "torch.Tensor") -> "torch.Tensor":
        """H v for v of shape (N, D)."""
        self_term = self.self_coefficient[:, None] * self.self_products(v)
        return blockwise.block_products(self.uncoupled, v) + self_term


class ReducedObjective:
    """E(Y) of eq. (50) for a ``reducible`` problem, Y the (N, D) terminal states."""

    def __init__(self, problem: "Problem", full: Objective | None = None) -> None:
        """``full``: the problem's objective in full trajectories, if one exists already (its control
        energy's structure, computed once, is then shared: ``Objective.cache``)."""
        self.problem = problem
        self.full = full if full is not None else Objective(problem)
        self.weights = self.full.weights
        self.h = self.full.h
        H, _, g, _ = quadratic_structure(self.full)
        self.offset, self.map = minimum_energy_map(self.full)  # o: N x V, A: V x D
        self.quadratic = bool(problem.control_cost.is_quadratic)
        if self.quadratic:
            self.Q = self.map.T @ H @ self.map  # D x D
            q = (self.offset @ H + g) @ self.map  # N x D
            self.rest = -torch.linalg.solve(self.Q, q.T).T  # R_i, where KE_i is least (0)
        else:
            self.start = torch.as_tensor(problem.dynamics.source_states(problem.source), dtype=torch.float64)
        D = problem.dynamics.state_dim
        # d^2 NE / dY_i dY_k from the self term is (2 c_delta / eps) a_i a_k Hess phi: per-row factor
        self.self_coefficient = (2.0 * gaussian_normalizer(problem.delta, D) / problem.eps) * self.weights

    # -- shapes --------------------------------------------------------------------------------
    @property
    def variable_shape(self) -> tuple[int, ...]:
        return (self.problem.N, self.map.shape[1])

    def full_variables(self, Y: "torch.Tensor") -> "torch.Tensor":
        return (self.offset + Y @ self.map.T).reshape(self.full.variable_shape)

    def positions(self, Y: "torch.Tensor") -> "torch.Tensor":
        return self.full.positions(self.full_variables(Y))

    def states(self, Y: "torch.Tensor") -> "torch.Tensor":
        return self.full.states(self.full_variables(Y))

    def variables_from_positions(self, positions: "torch.Tensor") -> "torch.Tensor":
        return self.problem.dynamics.terminal(positions, self.h).clone()

    # -- energies ------------------------------------------------------------------------------
    def kinetic(self, Y: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:
        """(KE, dKE/dY, the D x D Hessian blocks of KE)."""
        N = self.problem.N
        if self.quadratic:
            away = Y - self.rest
            pull = away @ self.Q
            return 0.5 * (pull * away).sum() / N, pull / N, (self.Q / N).expand(N, -1, -1)
        U = (Y - self.start).detach().requires_grad_(True)
        with torch.enable_grad():
            value = self.problem.control_cost(U).sum() / N
            (grad,) = torch.autograd.grad(value, U, create_graph=True)
            D = U.shape[1]
            tangents = torch.eye(D, dtype=U.dtype)[:, None, :].expand(D, N, D)
            (cols,) = torch.autograd.grad(grad, U, tangents, is_grads_batched=True)  # (D, N, D)
        return value.detach(), grad.detach(), cols.permute(1, 2, 0).contiguous()

    def particle_kinetic(self, Y: "torch.Tensor") -> "torch.Tensor":
        """Each particle's share of KE (``kinetic`` is their sum), (N,)."""
        N = self.problem.N
        if self.quadratic:
            away = Y - self.rest
            return 0.5 * ((away @ self.Q) * away).sum(1) / N
        return self.problem.control_cost(Y - self.start).reshape(N, -1).sum(1) / N

    def rest_states(self) -> "torch.Tensor":
        """The terminal states of least control energy, (N, D): where each particle ends without control
        (its source under velocity control)."""
        if self.quadratic:
            return self.rest.clone()
        return self.start.clone()

    def nonlocal_value_and_grad(self, Y: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
        y = Y.detach().requires_grad_(True)
        with torch.enable_grad():
            value = self.full.nonlocal_energy(y)
            (grad,) = torch.autograd.grad(value, y)
        return value.detach(), grad

    def value_and_grad(self, Y: "torch.Tensor") -> tuple[dict[str, float], "torch.Tensor"]:
        ke, gk, _ = self.kinetic(Y)
        ne, gn = self.nonlocal_value_and_grad(Y)
        energies = {"objective": float(ke + ne), "kinetic": float(ke), "nonlocal": float(ne),
                    **{k: 0.0 for k in ZERO_TERMS}}
        return energies, gk + gn

    def __call__(self, Y: "torch.Tensor") -> "torch.Tensor":
        return self.kinetic(Y)[0] + self.full.nonlocal_energy(Y.detach())

    # -- second derivatives --------------------------------------------------------------------
    def curvature(self, Y: "torch.Tensor") -> Curvature:
        """The Hessian at Y as ``Curvature`` (products and diagonal blocks)."""
        p = self.problem
        Y = Y.detach()
        _, _, ke_blocks = self.kinetic(Y)
        # the self term's Hessian is coefficient_i times v -> sum_k a_k Hess phi_ik (v_i - v_k), whose diagonal
        # blocks sum_{k != i} a_k Hess phi_ik come from the pairs its products list (``self_curvature``)
        products, own = self_curvature(Y, self.weights, p.delta)
        uncoupled = ke_blocks + self.full.cross_hessian_blocks(Y)  # the target term's: -(2/eps) a_i Hess (K * m1)(Y_i)
        return Curvature(self.self_coefficient, products, uncoupled,
                         uncoupled + self.self_coefficient[:, None, None] * own)

    def hessian(self, Y: "torch.Tensor") -> "torch.Tensor":
        """The dense Hessian ((N D) x (N D)) for small problems: the Hessian of NE in closed form plus
        the block-diagonal KE."""
        Y = Y.detach()
        N, D = Y.shape
        H = self.full.nonlocal_hessian(Y)
        add_to_diagonal_blocks(H, self.kinetic(Y)[2])
        return H.reshape(N * D, N * D)
