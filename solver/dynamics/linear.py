"""Controllable linear systems ydot = A y + B u (Theorem 1.8(b)).

Controls u in R^m (so Bu in range(B)), piecewise constant: variables u_{i,1..M-1}; states by the
exact zero-order-hold step y_{j+1} = e^{Ah} y_j + (int_0^h e^{As} ds) B u_j. The terminal constraint
acts on the whole state.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..errors import ProblemError
from ..lazy import scipy_linalg, torch
from ..paths import straight_lines
from ..reading import array, check_keys, floats
from ..registry import DYNAMICS
from .velocity import read_points


@DYNAMICS.register
@dataclass(frozen=True)
class LinearDynamics:
    """A controllable linear system dy/dt = A y + B u; the states are the points (from presets)."""

    A: np.ndarray
    B: np.ndarray
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    kind: ClassVar[str] = "linear"
    has_velocities: ClassVar[bool] = False  # the states are the points (no velocity columns)
    time_coupling: ClassVar[int | None] = None  # each control moves every later state
    couples_particles: ClassVar[bool] = False
    own_data: ClassVar[bool] = False
    plain_transport: ClassVar[bool] = False

    @classmethod
    def from_spec(cls, spec: dict, source: dict, where: str = "dynamics") -> tuple["LinearDynamics", np.ndarray]:
        check_keys(spec, ("kind", "A", "B"), where)
        pts = read_points(source, "source")
        A = array(spec.get("A"), f"{where}.A", 2, "give the n x n state matrix")
        B = array(spec.get("B"), f"{where}.B", 2, "give the n x m control matrix")
        n = A.shape[0]
        if A.shape != (n, n):
            raise ProblemError(f"{where}.A", f"must be square (got {A.shape})")
        if B.shape[0] != n:
            raise ProblemError(f"{where}.B", f"must have {n} rows like A (got {B.shape})")
        ctrb = np.hstack([np.linalg.matrix_power(A, k) @ B for k in range(n)])
        if np.linalg.matrix_rank(ctrb) < n:
            raise ProblemError(where, "(A, B) is not controllable (Kalman rank < n); "
                                      "change B so that [B, AB, ..] has full rank")
        if pts.shape[1] != n:
            raise ProblemError("source.points", f"must be full states of dimension {n} for linear "
                                                f"dynamics (got {pts.shape[1]})")
        return cls(A, B), pts

    def check_M(self, M: int) -> None:
        """M - 1 steps of the sampled system y_{j+1} = Ad y_j + Bd u_j (h = 1/(M-1)) must reach every
        state: rank [Bd, Ad Bd, .., Ad^{M-2} Bd] = n. Fewer steps than the controllability index fail (a
        double integrator with one control needs two), as can sampling an oscillation at a multiple of
        its half period (Kalman-Ho-Narendra); then the steering's Gramian is singular."""
        Ad, Bd = self.step_matrices(1.0 / (M - 1))
        n, columns, block = self.state_dim, [], Bd
        for _ in range(min(M - 1, n)):
            columns.append(block)
            block = Ad @ block
        reach = np.hstack(columns)
        if np.linalg.matrix_rank(reach) < n:
            steps = f"{M - 1} step{'s' if M > 2 else ''}"
            raise ProblemError("M", f"with M = {M} ({steps} of the sampled system) not every terminal state is "
                                    "reachable; use more time points")

    def to_spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "A": floats(self.A), "B": floats(self.B)}

    @classmethod
    def example_spec(cls, dim: int) -> dict[str, Any]:
        """The double integrator on (x, v) when dim = 2, else A = 0, B = I (velocity control)."""
        if dim == 2:
            return {"kind": cls.kind, "A": [[0.0, 1.0], [0.0, 0.0]], "B": [[0.0], [1.0]]}
        return {"kind": cls.kind, "A": np.zeros((dim, dim)).tolist(), "B": np.eye(dim).tolist()}

    def source_spec(self, source: np.ndarray) -> dict[str, Any]:
        return {"points": floats(source)}

    def read_states(self, spec: dict, where: str) -> tuple[np.ndarray, int]:
        return read_points(spec, where, "give at least one target state"), 0

    @property
    def dim(self) -> int:
        return self.A.shape[0]

    @property
    def state_dim(self) -> int:
        return self.A.shape[0]

    def state_names(self) -> list[str]:
        return [f"x{k}" for k in range(self.state_dim)]

    def source_states(self, source: np.ndarray) -> np.ndarray:
        return source

    def steers_optimally(self, control_cost: Any) -> bool:
        """The Gramian (minimum-norm) controls are optimal for psi = |u|^2 only."""
        return control_cost.is_quadratic

    def max_move(self, delta: float, h: float) -> float:
        """The variables are controls: a control change of delta/h moves a state by about delta."""
        return delta / h

    def paper_positions(self, source: np.ndarray, centre: np.ndarray, M: int, h: float) -> np.ndarray:
        """Eqs. (56)-(57) in state space (the least-squares controls then follow them)."""
        return straight_lines(source, np.broadcast_to(centre, source.shape), M)

    def step_matrices(self, h: float) -> tuple[np.ndarray, np.ndarray]:
        """(e^{Ah}, int_0^h e^{As} ds B) from one matrix exponential of [[A, B], [0, 0]] h."""
        if h not in self._cache:
            n, m = self.B.shape
            big = np.zeros((n + m, n + m))
            big[:n, :n], big[:n, n:] = self.A, self.B
            E = scipy_linalg.expm(big * h)
            self._cache[h] = (E[:n, :n], E[:n, n:])
        return self._cache[h]

    # -- math ---------------------------------------------------------------------------------
    def variable_shape(self, n: int, m: int) -> tuple[int, ...]:
        return (n, m - 1, self.B.shape[1])

    def positions(self, source: "torch.Tensor", variables: "torch.Tensor", h: float) -> "torch.Tensor":
        """States y_1..y_M of y_{j+1} = Ad y_j + Bd u_j from y_1 = the source, i.e. y_j = sum_{k <= j}
        Ad^{j-k} s_k with s_1 = the source and s_{k+1} = Bd u_k, by a doubling scan: after the rounds with
        shifts 1, 2, 4, .. < M, entry j holds the sum over the last 2^r inputs, so ceil(log2 M) batched
        products replace M - 1 sequential steps (through which automatic differentiation went one small
        product at a time: 65 ms per evaluation and gradient at M = 1,500, for 12 particles)."""
        Ad, Bd = (torch.as_tensor(a, dtype=source.dtype) for a in self.step_matrices(h))
        states = torch.cat([source[:, None, :], variables @ Bd.T], dim=1)
        power, shift = Ad, 1  # power = Ad^shift
        while shift < states.shape[1]:
            states = torch.cat([states[:, :shift], states[:, shift:] + states[:, :-shift] @ power.T], dim=1)
            power, shift = power @ power, 2 * shift
        return states

    def controls(self, positions: "torch.Tensor", variables: "torch.Tensor", h: float) -> "torch.Tensor":
        return variables

    def variables_from_positions(self, positions: "torch.Tensor", h: float) -> "torch.Tensor":
        """Least-squares controls reproducing the given states (exact when they are reachable)."""
        Ad, Bd = (torch.as_tensor(a, dtype=positions.dtype) for a in self.step_matrices(h))
        rhs = positions[:, 1:] - positions[:, :-1] @ Ad.T
        return (rhs @ torch.linalg.pinv(Bd).T).clone()

    def terminal(self, positions: "torch.Tensor", h: float) -> "torch.Tensor":
        return positions[:, -1]

    def states(self, positions: "torch.Tensor", h: float) -> "torch.Tensor":
        return positions
