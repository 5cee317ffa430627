"""Second-order control xddot = a, state (x, v) in R^{2d} (section 4.6, eqs. 60-62).

Variables x_{i,3..M}; x_{i,1} = x_{i,0}, x_{i,2} = x_{i,0} + h v_{i,0};
a_{i,j} = (x_{i,j} - 2x_{i,j+1} + x_{i,j+2})/h^2, so h sum_j |a_{i,j}|^2 = (M-1)^3 |ddiff(x_i)|^2 (the CC
of section 4.6). Terminal state (x_{i,M}, v_{i,M}) with v_{i,M} = (x_{i,M} - x_{i,M-1})/h.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import ProblemError
from ..lazy import torch
from ..paths import straight_lines
from ..reading import array, check_keys, floats
from ..registry import DYNAMICS
from .velocity import read_points


def read_velocities(spec: dict, where: str, positions: np.ndarray) -> np.ndarray:
    """``velocities`` of a source or target entry, one per point (zeros when absent)."""
    value = spec.get("velocities")
    if value is None:
        return np.zeros_like(positions)
    v = array(value, f"{where}.velocities", 2, "give one velocity per point")
    if v.shape != positions.shape:
        raise ProblemError(f"{where}.velocities", f"must have the shape of {where}.points {positions.shape} "
                                                  f"(got {v.shape})")
    return v


@DYNAMICS.register
@dataclass(frozen=True)
class AccelerationDynamics:
    """Acceleration control d2y/dt2 = u on states (position, velocity), with source velocities (Fig. 5)."""

    dim: int
    source_velocities: np.ndarray

    kind: ClassVar[str] = "acceleration"
    has_velocities: ClassVar[bool] = True  # the states end with the velocities of the positions
    time_coupling: ClassVar[int | None] = 2  # controls are second differences of the variables
    couples_particles: ClassVar[bool] = False
    own_data: ClassVar[bool] = True  # positions() reads each particle's source velocity, held here
    plain_transport: ClassVar[bool] = False

    @classmethod
    def from_spec(cls, spec: dict, source: dict, where: str = "dynamics") -> tuple["AccelerationDynamics", np.ndarray]:
        check_keys(spec, ("kind",), where)
        pts = read_points(source, "source")
        return cls(pts.shape[1], read_velocities(source, "source", pts)), pts

    def check_M(self, M: int) -> None:
        """The terminal state (x_M, v_M) needs two free time points (x_1, x_2 are fixed by the source's
        position and velocity): M >= 4. At M = 3 the terminal states form a d-dimensional affine set in
        R^{2d} and the minimum-energy steering's Gramian is singular."""
        if M < 4:
            raise ProblemError("M", f"must be >= 4 under acceleration control (got {M}): the terminal position "
                                    "and velocity need two free time points; use M >= 4")

    def to_spec(self) -> dict[str, Any]:
        return {"kind": self.kind}

    @classmethod
    def example_spec(cls, dim: int) -> dict[str, Any]:
        return {"kind": cls.kind}

    def source_spec(self, source: np.ndarray) -> dict[str, Any]:
        return {"points": floats(source), "velocities": floats(self.source_velocities)}

    def read_states(self, spec: dict, where: str) -> tuple[np.ndarray, int]:
        """(x, v) of a particle target entry: ``points`` and ``velocities`` (zeros when absent)."""
        pts = read_points(spec, where, "give at least one target point")
        return np.hstack([pts, read_velocities(spec, where, pts)]), pts.shape[1]

    @property
    def state_dim(self) -> int:
        return 2 * self.dim

    def state_names(self) -> list[str]:
        return [f"x{k}" for k in range(self.dim)] + [f"v{k}" for k in range(self.dim)]

    def source_states(self, source: np.ndarray) -> np.ndarray:
        return np.hstack([source, self.source_velocities])

    def steers_optimally(self, control_cost: Any) -> bool:
        """The minimum-energy (spline) paths are optimal for psi = |a|^2 only."""
        return control_cost.is_quadratic

    def max_move(self, delta: float, h: float) -> float:
        return delta

    def paper_positions(self, source: np.ndarray, centre: np.ndarray, M: int, h: float) -> np.ndarray:
        """Eqs. (56)-(57) from the second point x_0 + h v_0, which is fixed."""
        second = source + h * self.source_velocities
        lines = straight_lines(second, np.broadcast_to(centre, source.shape), M - 1)
        return np.concatenate([source[:, None], lines], 1)

    # -- math ---------------------------------------------------------------------------------
    def variable_shape(self, n: int, m: int) -> tuple[int, ...]:
        return (n, m - 2, self.dim)

    def positions(self, source: "torch.Tensor", variables: "torch.Tensor", h: float) -> "torch.Tensor":
        v0 = torch.as_tensor(self.source_velocities, dtype=source.dtype)
        return torch.cat([source[:, None, :], (source + h * v0)[:, None, :], variables], dim=1)

    def controls(self, positions: "torch.Tensor", variables: "torch.Tensor", h: float) -> "torch.Tensor":
        return (positions[:, :-2] - 2 * positions[:, 1:-1] + positions[:, 2:]) / (h * h)

    def velocities(self, positions: "torch.Tensor", h: float) -> "torch.Tensor":
        v0 = torch.as_tensor(self.source_velocities, dtype=positions.dtype)
        return torch.cat([v0[:, None, :], (positions[:, 1:] - positions[:, :-1]) / h], dim=1)

    def terminal(self, positions: "torch.Tensor", h: float) -> "torch.Tensor":
        return torch.cat([positions[:, -1], (positions[:, -1] - positions[:, -2]) / h], dim=1)

    def states(self, positions: "torch.Tensor", h: float) -> "torch.Tensor":
        return torch.cat([positions, self.velocities(positions, h)], dim=2)

    def variables_from_positions(self, positions: "torch.Tensor", h: float) -> "torch.Tensor":
        return positions[:, 2:].clone()
