"""The fully discrete objective (eq. 50): control energy + potential energy + nonlocal energy.

    E(y) = KE(y) + PE(y) + NE(y)
    KE = (1/N) sum_i sum_j h psi(u_{i,j})                    (eqs. 46, 49, 51; section 4.6 for acceleration)
    PE = 1/(N(M-1)) sum_i sum_{j=1}^M L_N(y_{i,j})             (eq. 52; obstacles eq. 59, potentials V)
         + (1/(M-1)) sum_{j=1}^M (1/N^2) sum_{i,k} W(y_{i,j} - y_{k,j})    (pairwise interactions)
    NE = (1/eps) [ (1/N^2) sum_{ik} K_delta(Y_i - Y_k) - (2/N) sum_i (K_delta*m_1)(Y_i) + C_{delta,m_1} ]
                                                              (eqs. 53, 55, with the constant kept)

where Y_i is the terminal state (y_{i,M}, or (x_{i,M}, v_{i,M}) under acceleration control). With the
constant, NE = (1/eps) ||k_delta * mu_1 - k_delta * m_1||^2 >= 0 (up to rounding).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .kernels import gaussian_normalizer, gaussian_self_hessian, hessian_blocks, mollifier_pair_sum
from .lazy import torch

if TYPE_CHECKING:
    from .problem import Problem


def add_to_diagonal_blocks(H: torch.Tensor, blocks: torch.Tensor) -> None:
    """H[i, :, i, :] += blocks[i] for a Hessian H of shape (N, D, N, D), in place, each diagonal block
    then made exactly symmetric (sums such as ``hessian_blocks`` are symmetric only to rounding)."""
    diagonal = H.diagonal(dim1=0, dim2=2)  # (D, D, N): a view of the blocks
    diagonal.add_(blocks.permute(1, 2, 0))
    diagonal.copy_(0.5 * (diagonal + diagonal.transpose(0, 1)))


@dataclass
class Objective:
    """Callable pieces of eq. (50) for one problem, with torch tensors prepared once.

    ``obstacle_smoothing`` tau > 0 replaces the kink of eq. (59) by its Huber smoothing (``hinge``),
    for optimizers that need a differentiable objective; 0 (the default) is the paper's objective.
    ``cache`` holds what depends on the problem alone and is computed once (the control energy's
    structure and factor: ``steering``); objectives derived by ``dataclasses.replace`` (another
    smoothing) share it."""

    problem: "Problem"
    obstacle_smoothing: float = 0.0
    cache: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        p = self.problem
        self.h = p.h
        self.source = torch.as_tensor(p.source, dtype=torch.float64)
        self.weights = torch.full((p.N,), 1.0 / p.N, dtype=torch.float64)
        self.constant = p.target.constant(p.delta)

    # -- shapes ------------------------------------------------------------------------------
    @property
    def variable_shape(self) -> tuple[int, ...]:
        return self.problem.dynamics.variable_shape(self.problem.N, self.problem.M)

    def positions(self, variables: torch.Tensor) -> torch.Tensor:
        """Trajectories (N, M, d) from the free variables (source and fixed points prepended)."""
        return self.problem.dynamics.positions(self.source, variables, self.h)

    def variables_from_positions(self, positions: torch.Tensor) -> torch.Tensor:
        return self.problem.dynamics.variables_from_positions(positions, self.h)

    @functools.cached_property
    def position_jacobian(self) -> torch.Tensor:
        """(M d, V): the derivative of a particle's positions (flattened) by its own V variables, the
        same for every particle and every iterate (positions are affine in the variables under every
        dynamics), so computed once."""
        x = torch.zeros(self.variable_shape, dtype=torch.float64)
        jacobian = torch.autograd.functional.jacobian(lambda v: self.positions(v)[0].reshape(-1), x, vectorize=True)
        return jacobian[:, 0].reshape(-1, x[0].numel())

    # -- energies ----------------------------------------------------------------------------
    def controls(self, positions: torch.Tensor, variables: torch.Tensor) -> torch.Tensor:
        """u_{i,j} (N, M-1 or M-2, m): finite differences of the positions (eq. 49), or the variables
        themselves for linear dynamics."""
        return self.problem.dynamics.controls(positions, variables, self.h)

    def kinetic(self, positions: torch.Tensor, variables: torch.Tensor) -> torch.Tensor:
        u = self.controls(positions, variables)
        return self.h * self.problem.control_cost(u).sum() / self.problem.N

    def obstacle(self, positions: torch.Tensor) -> torch.Tensor:
        """h/N sum_ij L(y_ij) (eq. 59 at the time points) plus, with ``obstacle_segments``, the same
        weight times the penalty of every segment [y_ij, y_i,j+1] at its deepest point."""
        if self.problem.obstacles is None:
            return positions.new_zeros(())
        return sum(terms.sum() for terms in self.obstacle_terms(positions)) * self.h / self.problem.N

    def obstacle_terms(self, positions: torch.Tensor) -> list[torch.Tensor]:
        """The obstacle penalty at each particle's time points, (N, M), and with ``obstacle_segments`` along
        its segments, (N, M - 1): the terms ``obstacle`` sums (weighted by c_Omega, not by h/N)."""
        ob = self.problem.obstacles
        terms = [ob(positions, self.obstacle_smoothing)]
        if ob.segments:
            terms.append(ob.segment_penalty(positions[:, :-1], positions[:, 1:], self.obstacle_smoothing))
        return terms

    def potential_field(self, positions: torch.Tensor) -> torch.Tensor:
        total = positions.new_zeros(())
        for V in self.problem.potentials:
            total = total + V(positions).sum() * self.h / self.problem.N
        return total

    def interaction(self, positions: torch.Tensor) -> torch.Tensor:
        total = positions.new_zeros(())
        for W in self.problem.interactions:
            total = total + W.mean_field(positions) * self.h
        return total

    def nonlocal_energy(self, terminal: torch.Tensor) -> torch.Tensor:
        p = self.problem
        a = self.weights
        self_term = mollifier_pair_sum(terminal, terminal, a, a, p.delta)
        cross = p.target.cross_term(terminal, a, p.delta)
        return (self_term - 2.0 * cross + self.constant) / p.eps

    def cross_hessian_blocks(self, terminal: torch.Tensor) -> torch.Tensor:
        """(N, D, D): the Hessian blocks of the target term -(2/eps) sum_i a_i (K_delta * m_1)(Y_i) of NE,
        block-diagonal since each term involves one particle. For targets given by point masses
        (particles, grid cells) the kernel sums them in closed form; otherwise D batched Hessian-vector
        products of the closed-form (K_delta * m_1) give the blocks."""
        p = self.problem
        y = terminal.detach()
        N, D = y.shape
        if p.target.discrete:
            points, mass = p.target.quantization(N, p.seed)
            B = hessian_blocks(y, torch.as_tensor(points, dtype=y.dtype), torch.as_tensor(mass, dtype=y.dtype), p.delta)
            return (-2.0 * gaussian_normalizer(p.delta, D) / p.eps) * self.weights[:, None, None] * B
        y = y.clone().requires_grad_(True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(p.target.cross_term(y, self.weights, p.delta), y, create_graph=True)
            tangents = torch.eye(D, dtype=y.dtype)[:, None, :].expand(D, N, D)
            (Ht,) = torch.autograd.grad(g, y, tangents, is_grads_batched=True)  # (D, N, D): column k of block i
        return (-2.0 / p.eps) * Ht.permute(1, 2, 0)

    def nonlocal_hessian(self, terminal: torch.Tensor) -> torch.Tensor:
        """Hessian (N, D, N, D) of NE in the terminal states: the self term in closed form
        (``gaussian_self_hessian``), plus the block-diagonal target term (``cross_hessian_blocks``)."""
        p = self.problem
        N, D = terminal.shape
        H = gaussian_self_hessian(terminal.detach(), self.weights, p.delta, gaussian_normalizer(p.delta, D) / p.eps)
        add_to_diagonal_blocks(H, self.cross_hessian_blocks(terminal))
        return H

    def energies(self, variables: torch.Tensor) -> dict[str, torch.Tensor]:
        """All terms of eq. (50) as scalar tensors (differentiable in ``variables``)."""
        pos = self.positions(variables)
        ke = self.kinetic(pos, variables)
        ob = self.obstacle(pos)
        pe = ob + self.potential_field(pos)
        it = self.interaction(pos)
        ne = self.nonlocal_energy(self.problem.dynamics.terminal(pos, self.h))
        return {"objective": ke + pe + it + ne, "kinetic": ke, "nonlocal": ne, "potential": pe,
                "obstacle": ob, "interaction": it}

    def __call__(self, variables: torch.Tensor) -> torch.Tensor:
        return self.energies(variables)["objective"]

    def value_and_grad(self, variables: torch.Tensor) -> tuple[dict[str, float], torch.Tensor]:
        x = variables.detach().requires_grad_(True)
        e = self.energies(x)
        (g,) = torch.autograd.grad(e["objective"], x)
        return {k: float(v.detach()) for k, v in e.items()}, g

    def states(self, variables: torch.Tensor) -> torch.Tensor:
        """Full states (N, M, D) for output: positions, plus velocities under acceleration control."""
        return self.problem.dynamics.states(self.positions(variables), self.h)
