"""First-order control ydot = u + F(y, mu) (eqs. 47-51).

Variables y_{i,2..M}; y_{i,1} is the source point; u_{i,j} = (y_{i,j+1} - y_{i,j})/h - F(y_{i,j}, mu_j)
(eq. 49). With F = 0 and psi = |.|^2 the control cost is exactly KE of eq. (51). Terminal state y_{i,M}.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..lazy import torch
from ..paths import straight_lines
from ..reading import check_keys, floats, mapping, number, points
from ..registry import DRIFTS, DYNAMICS


@DRIFTS.register
@dataclass(frozen=True)
class MeanAttraction:
    """F(y, mu) = -strength (y - mean mu): each particle drifts toward the current mean."""

    strength: float
    kind: ClassVar[str] = "mean_attraction"

    @classmethod
    def from_spec(cls, spec: dict, where: str = "dynamics.drift") -> "MeanAttraction":
        check_keys(spec, ("kind", "strength"), where)
        return cls(number(spec, "strength", f"{where}.strength"))

    def to_spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "strength": self.strength}

    def __call__(self, positions: "torch.Tensor") -> "torch.Tensor":
        return -self.strength * (positions - positions.mean(dim=0, keepdim=True))


def read_points(spec: dict, where: str, fix: str = "give N points as [[x0, x1], ...]") -> np.ndarray:
    """The ``points`` of a source or particle-target entry."""
    return points(spec.get("points"), f"{where}.points", fix=fix)


@DYNAMICS.register
@dataclass(frozen=True)
class VelocityDynamics:
    """Velocity control dy/dt = u (the W2 problem), optionally with a drift F(y, mu)."""

    dim: int
    drift: Any = None  # a registered drift, or None

    kind: ClassVar[str] = "velocity"
    has_velocities: ClassVar[bool] = False  # the states end with the velocities of the positions
    own_data: ClassVar[bool] = False
    time_coupling: ClassVar[int | None] = 1  # controls are first differences of the variables

    @classmethod
    def from_spec(cls, spec: dict, source: dict, where: str = "dynamics") -> tuple["VelocityDynamics", np.ndarray]:
        check_keys(spec, ("kind", "drift"), where)
        pts = read_points(source, "source")
        drift = spec.get("drift")
        if drift is not None:
            drift = mapping(drift, f"{where}.drift", '{"kind": "mean_attraction", "strength": 1}')
            drift = DRIFTS[DRIFTS.kind_of(drift, f"{where}.drift")].from_spec(drift, f"{where}.drift")
        return cls(pts.shape[1], drift), pts

    def check_M(self, M: int) -> None:
        """One step reaches every terminal position: any M >= 2 will do."""

    def to_spec(self) -> dict[str, Any]:
        return {"kind": self.kind, **({"drift": self.drift.to_spec()} if self.drift is not None else {})}

    @classmethod
    def example_spec(cls, dim: int) -> dict[str, Any]:
        return {"kind": cls.kind}

    def source_spec(self, source: np.ndarray) -> dict[str, Any]:
        return {"points": floats(source)}

    def read_states(self, spec: dict, where: str) -> tuple[np.ndarray, int]:
        """States of a particle target entry: its points (no velocity columns)."""
        return read_points(spec, where, "give at least one target point"), 0

    @property
    def state_dim(self) -> int:
        return self.dim

    def state_names(self) -> list[str]:
        return [f"x{k}" for k in range(self.dim)]

    def source_states(self, source: np.ndarray) -> np.ndarray:
        return source

    @property
    def couples_particles(self) -> bool:
        return self.drift is not None

    @property
    def plain_transport(self) -> bool:
        return self.drift is None

    def steers_optimally(self, control_cost: Any) -> bool:
        """Straight lines at constant speed are optimal for any convex psi (Jensen's inequality)."""
        return True

    def max_move(self, delta: float, h: float) -> float:
        return delta

    def paper_positions(self, source: np.ndarray, centre: np.ndarray, M: int, h: float) -> np.ndarray:
        """Eqs. (56)-(57): straight lines from each source point to the target's centre of mass."""
        return straight_lines(source, np.broadcast_to(centre, source.shape), M)

    # -- math ---------------------------------------------------------------------------------
    def variable_shape(self, n: int, m: int) -> tuple[int, ...]:
        return (n, m - 1, self.dim)

    def positions(self, source: "torch.Tensor", variables: "torch.Tensor", h: float) -> "torch.Tensor":
        return torch.cat([source[:, None, :], variables], dim=1)

    def controls(self, positions: "torch.Tensor", variables: "torch.Tensor", h: float) -> "torch.Tensor":
        u = (positions[:, 1:] - positions[:, :-1]) / h
        if self.drift is not None:
            u = u - self.drift(positions[:, :-1])
        return u

    def terminal(self, positions: "torch.Tensor", h: float) -> "torch.Tensor":
        return positions[:, -1]

    def states(self, positions: "torch.Tensor", h: float) -> "torch.Tensor":
        return positions

    def variables_from_positions(self, positions: "torch.Tensor", h: float) -> "torch.Tensor":
        return positions[:, 1:].clone()

