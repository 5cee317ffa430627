"""Dynamics: how the free optimization variables become trajectories, controls and terminal states.

All three share the time grid t_j = (j-1) h, j = 1..M, h = 1/(M-1) (eq. 48), and the control cost
(1/N) sum_i sum_j h psi(u_{i,j}), the Riemann sum of (1/N) sum_i int_0^1 psi(u_i(t)) dt (eq. 46).

* ``VelocityDynamics`` (eqs. 47-51): ydot = u + F(y, mu). Variables y_{i,2..M}; y_{i,1} is the
  source point; u_{i,j} = (y_{i,j+1} - y_{i,j})/h - F(y_{i,j}, mu_j) (eq. 49). With F = 0 and
  psi = |.|^2 the control cost is exactly KE of eq. (51). Terminal state y_{i,M}.
* ``AccelerationDynamics`` (section 4.6, eqs. 60-62): xddot = a. Variables x_{i,3..M};
  x_{i,1} = x_{i,0}, x_{i,2} = x_{i,0} + h v_{i,0}; a_{i,j} = (x_{i,j} - 2x_{i,j+1} + x_{i,j+2})/h^2,
  so h sum_j |a_{i,j}|^2 = (M-1)^3 |ddiff(x_i)|^2 (the CC of section 4.6). Terminal state
  (x_{i,M}, v_{i,M}) with v_{i,M} = (x_{i,M} - x_{i,M-1})/h.
* ``LinearDynamics`` (Theorem 1.8(b)): ydot = A y + B u, controls u in R^m (so Bu in range(B)).
  Variables u_{i,1..M-1}, piecewise constant; states by the exact zero-order-hold step
  y_{j+1} = e^{Ah} y_j + (int_0^h e^{As} ds) B u_j. The terminal constraint acts on the whole state.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import scipy.linalg
import torch

Drift = Callable[[torch.Tensor], torch.Tensor]  # positions (N, M, d) -> drift (N, M, d)


@dataclass(frozen=True)
class VelocityDynamics:
    """First-order control ydot = u (+ an optional particle-dependent drift F(y, mu))."""

    dim: int
    drift: Drift | None = None
    kind = "velocity"

    @property
    def state_dim(self) -> int:
        return self.dim

    def state_names(self) -> list[str]:
        return [f"x{k}" for k in range(self.dim)]

    def variable_shape(self, n: int, m: int) -> tuple[int, ...]:
        return (n, m - 1, self.dim)

    def positions(self, source: torch.Tensor, variables: torch.Tensor, h: float) -> torch.Tensor:
        return torch.cat([source[:, None, :], variables], dim=1)

    def controls(self, positions: torch.Tensor, variables: torch.Tensor, h: float) -> torch.Tensor:
        u = (positions[:, 1:] - positions[:, :-1]) / h
        if self.drift is not None:
            u = u - self.drift(positions[:, :-1])
        return u

    def terminal(self, positions: torch.Tensor, h: float) -> torch.Tensor:
        return positions[:, -1]

    def states(self, positions: torch.Tensor, h: float) -> torch.Tensor:
        return positions

    def variables_from_positions(self, positions: torch.Tensor, h: float) -> torch.Tensor:
        return positions[:, 1:].clone()


@dataclass(frozen=True)
class AccelerationDynamics:
    """Second-order control xddot = a, state (x, v) in R^{2d} (section 4.6)."""

    dim: int
    source_velocities: np.ndarray
    kind = "acceleration"

    @property
    def state_dim(self) -> int:
        return 2 * self.dim

    def state_names(self) -> list[str]:
        return [f"x{k}" for k in range(self.dim)] + [f"v{k}" for k in range(self.dim)]

    def variable_shape(self, n: int, m: int) -> tuple[int, ...]:
        return (n, m - 2, self.dim)

    def positions(self, source: torch.Tensor, variables: torch.Tensor, h: float) -> torch.Tensor:
        v0 = torch.as_tensor(self.source_velocities, dtype=source.dtype)
        return torch.cat([source[:, None, :], (source + h * v0)[:, None, :], variables], dim=1)

    def controls(self, positions: torch.Tensor, variables: torch.Tensor, h: float) -> torch.Tensor:
        return (positions[:, :-2] - 2 * positions[:, 1:-1] + positions[:, 2:]) / (h * h)

    def velocities(self, positions: torch.Tensor, h: float) -> torch.Tensor:
        v0 = torch.as_tensor(self.source_velocities, dtype=positions.dtype)
        return torch.cat([v0[:, None, :], (positions[:, 1:] - positions[:, :-1]) / h], dim=1)

    def terminal(self, positions: torch.Tensor, h: float) -> torch.Tensor:
        return torch.cat([positions[:, -1], (positions[:, -1] - positions[:, -2]) / h], dim=1)

    def states(self, positions: torch.Tensor, h: float) -> torch.Tensor:
        return torch.cat([positions, self.velocities(positions, h)], dim=2)

    def variables_from_positions(self, positions: torch.Tensor, h: float) -> torch.Tensor:
        return positions[:, 2:].clone()


@dataclass(frozen=True)
class LinearDynamics:
    """ydot = A y + B u with piecewise-constant controls, discretized exactly (zero-order hold)."""

    A: np.ndarray
    B: np.ndarray
    kind = "linear"
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def dim(self) -> int:
        return self.A.shape[0]

    @property
    def state_dim(self) -> int:
        return self.A.shape[0]

    def state_names(self) -> list[str]:
        return [f"x{k}" for k in range(self.state_dim)]

    def variable_shape(self, n: int, m: int) -> tuple[int, ...]:
        return (n, m - 1, self.B.shape[1])

    def step_matrices(self, h: float) -> tuple[np.ndarray, np.ndarray]:
        """(e^{Ah}, int_0^h e^{As} ds B) from one matrix exponential of [[A, B], [0, 0]] h."""
        if h not in self._cache:
            n, m = self.B.shape
            big = np.zeros((n + m, n + m))
            big[:n, :n], big[:n, n:] = self.A, self.B
            E = scipy.linalg.expm(big * h)
            self._cache[h] = (E[:n, :n], E[:n, n:])
        return self._cache[h]

    def positions(self, source: torch.Tensor, variables: torch.Tensor, h: float) -> torch.Tensor:
        Ad, Bd = (torch.as_tensor(a, dtype=source.dtype) for a in self.step_matrices(h))
        states = [source]
        for j in range(variables.shape[1]):  # a loop over time steps, vectorized over particles
            states.append(states[-1] @ Ad.T + variables[:, j] @ Bd.T)
        return torch.stack(states, dim=1)

    def controls(self, positions: torch.Tensor, variables: torch.Tensor, h: float) -> torch.Tensor:
        return variables

    def variables_from_positions(self, positions: torch.Tensor, h: float) -> torch.Tensor:
        """Least-squares controls reproducing the given states (exact when they are reachable)."""
        Ad, Bd = (torch.as_tensor(a, dtype=positions.dtype) for a in self.step_matrices(h))
        rhs = positions[:, 1:] - positions[:, :-1] @ Ad.T
        return (rhs @ torch.linalg.pinv(Bd).T).clone()

    def terminal(self, positions: torch.Tensor, h: float) -> torch.Tensor:
        return positions[:, -1]

    def states(self, positions: torch.Tensor, h: float) -> torch.Tensor:
        return positions



Dynamics = VelocityDynamics | AccelerationDynamics | LinearDynamics


@dataclass(frozen=True)
class MeanAttraction:
    """F(y, mu) = -strength (y - mean(mu)): each particle drifts toward the current mean."""

    strength: float

    def __call__(self, positions: torch.Tensor) -> torch.Tensor:
        return -self.strength * (positions - positions.mean(dim=0, keepdim=True))
