"""Control costs psi and state costs L_N.

Control cost (Assumption 2.1): ``PowerCost`` psi(u) = |u|^p for p > 1 (p = 2 gives KE of eq. 51);
``PiecewiseCost`` psi(u) = |u|/p for |u| <= 1 and |u|^p/p for |u| > 1 (the second example after
Assumption 2.1).

State costs enter the potential energy (eq. 52), PE = 1/(N(M-1)) sum_i sum_{j=1}^M L_N(y_{i,j}):
* ``Obstacles``: L_N(y) = c_Omega sum_k max(r_k^2 - |y - c_k|^2, 0) (eq. 59), c_Omega = 1/(h eps) by
  default (section 4.5).
* ``QuadraticPotential`` / ``GaussianBump``: an external potential V(y).
* ``GaussianInteraction`` (congestion, strength > 0) and ``QuadraticInteraction`` (aggregation):
  L_N(y_i) = (1/N) sum_k W(y_i - y_k), a pairwise interaction at each time point.
Every cost reads the first ``len(center)`` coordinates of the state (the positions).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .kernels import gaussian_pair_sum


@dataclass(frozen=True)
class PowerCost:
    """psi(u) = |u|^p."""

    p: float = 2.0

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        sq = (u * u).sum(-1)
        if self.p == 2.0:
            return sq
        return sq.clamp_min(1e-300) ** (0.5 * self.p)


@dataclass(frozen=True)
class PiecewiseCost:
    """psi(u) = |u|/p for |u| <= 1, |u|^p/p for |u| > 1 (continuous at |u| = 1)."""

    p: float = 2.0

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        r = (u * u).sum(-1).clamp_min(1e-300).sqrt()
        return torch.where(r <= 1.0, r, r ** self.p) / self.p


ControlCost = PowerCost | PiecewiseCost


@dataclass(frozen=True)
class Obstacles:
    """Circular (spherical) obstacles, penalized by eq. (59) with weight c_Omega."""

    centers: np.ndarray  # (K, d)
    radii: np.ndarray  # (K,)
    weight: float

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        """L_N at every point of y (..., D), summed over the obstacles."""
        c = torch.as_tensor(self.centers, dtype=y.dtype)
        r2 = torch.as_tensor(self.radii, dtype=y.dtype) ** 2
        pos = y[..., : c.shape[1]]
        d2 = ((pos[..., None, :] - c) ** 2).sum(-1)
        return self.weight * (r2 - d2).clamp_min(0.0).sum(-1)

    def depth(self, y: np.ndarray) -> np.ndarray:
        """How far each point lies inside the nearest obstacle (<= 0 outside all of them)."""
        pos = y[..., : self.centers.shape[1]]
        dist = np.linalg.norm(pos[..., None, :] - self.centers, axis=-1)
        return (self.radii - dist).max(-1)


@dataclass(frozen=True)
class QuadraticPotential:
    """V(y) = (weight/2) |y - center|^2."""

    center: np.ndarray
    weight: float

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        c = torch.as_tensor(self.center, dtype=y.dtype)
        return 0.5 * self.weight * ((y[..., : c.shape[0]] - c) ** 2).sum(-1)


@dataclass(frozen=True)
class GaussianBump:
    """V(y) = height exp(-|y - center|^2 / (2 width^2)) (a soft obstacle or, with height < 0, a well)."""

    center: np.ndarray
    height: float
    width: float

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        c = torch.as_tensor(self.center, dtype=y.dtype)
        return self.height * torch.exp(-((y[..., : c.shape[0]] - c) ** 2).sum(-1) / (2 * self.width**2))


Potential = Obstacles | QuadraticPotential | GaussianBump


@dataclass(frozen=True)
class GaussianInteraction:
    """W(z) = strength exp(-|z|^2 / (2 width^2)); strength > 0 spreads particles (congestion)."""

    strength: float
    width: float
    dim: int

    def mean_field(self, y: torch.Tensor) -> torch.Tensor:
        """sum_j (1/N^2) sum_{i,k} W(y_ij - y_kj) over the time points j of y (N, M, D)."""
        n = y.shape[0]
        a = torch.full((n,), 1.0 / n, dtype=y.dtype)
        pos = y[..., : self.dim]
        return self.strength * sum(gaussian_pair_sum(pos[:, j], pos[:, j], a, a, self.width)
                                   for j in range(y.shape[1]))


@dataclass(frozen=True)
class QuadraticInteraction:
    """W(z) = (strength/2) |z|^2; strength > 0 pulls particles together (aggregation).

    (1/N^2) sum_{i,k} |y_i - y_k|^2 / 2 = mean|y|^2 - |mean y|^2, so the sum costs O(N).
    """

    strength: float
    dim: int

    def mean_field(self, y: torch.Tensor) -> torch.Tensor:
        pos = y[..., : self.dim]
        return self.strength * ((pos * pos).sum(-1).mean(0) - (pos.mean(0) ** 2).sum(-1)).sum()


Interaction = GaussianInteraction | QuadraticInteraction
